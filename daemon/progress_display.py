"""The progress display of ``libmirror sync`` on a terminal (rich): files and bytes done of the pass's
planned total, rate, ETA and errors, refreshed a few times a second below the usual log lines.

Shown only when stdout is a terminal and the log format is not JSON; otherwise nothing but the log lines.
While it is shown, log lines are printed through rich's console so they scroll above the display
instead of tearing it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from daemon.logs import configure_logging
from daemon.sync.progress import PassProgress

REFRESH_PER_SECOND = 4


def wanted(log_format: str | None) -> bool:
    """Whether ``sync`` shows the display: stdout is a terminal and the logs are not JSON lines."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and log_format != "json"


class _Display:
    def __init__(self, name: str, progress: PassProgress) -> None:
        self.name = name
        self.progress = progress

    def __rich__(self) -> RenderableType:
        if not self.progress.active:
            return Text(f"[{self.name}] observing and planning...", style="dim")
        snap = self.progress.snapshot()
        bar = ProgressBar(total=max(snap.files_total, 1), completed=snap.files_done, width=30)
        return Group(Text(f"[{self.name}] {snap.line()}", overflow="ellipsis", no_wrap=True), bar)


class _ConsoleLines:
    """A text stream for the log lines that prints them through rich's console (above the display)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write(self, text: str) -> int:
        line = text[:-1] if text.endswith("\n") else text
        self.console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return True


@contextmanager
def shown(
    name: str, progress: PassProgress, log_format: Literal["json", "console"] | None, level: str
) -> Iterator[None]:
    """Show ``progress`` of library ``name`` for the duration of the block, then its final line."""
    console = Console(file=sys.stdout)
    with Live(_Display(name, progress), console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True):
        configure_logging(log_format or "console", level, stream=cast(TextIO, _ConsoleLines(console)))
        try:
            yield
        finally:
            configure_logging(log_format, level)
    if progress.active:
        console.print(f"[{name}] {progress.snapshot().line()}", markup=False, highlight=False)
