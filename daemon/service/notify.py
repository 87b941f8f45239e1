"""What systemd sees: the STATUS= line built from every runner's state, and the watchdog pings."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from daemon.sdnotify import Notifier
from daemon.service.supervision import RunnerHandle


def status_line(handles: Mapping[str, RunnerHandle]) -> str:
    """One line for systemd's STATUS=: each library's state, files, last pass, errors, gates."""
    parts = []
    for name, handle in sorted(handles.items()):
        s = handle.runner.state
        text = f"{name}: {s.state}, {s.files} files"
        if s.last_pass:
            text += f", last pass {s.last_pass}"
        if s.errors:
            text += f", {s.errors} errors"
        if s.watcher_mode:
            text += f", watcher: {s.watcher_mode}"
        if s.state == "syncing" and s.progress:
            text += f" ({s.progress})"
        if s.state in ("halted", "retrying") and s.detail:
            text += f" ({s.detail[:160]})"
        parts.append(text)
    return "; ".join(parts) or "no libraries"


async def watchdog(notifier: Notifier, interval: float) -> None:
    """Pings systemd's watchdog every ``interval`` seconds, forever.

    It runs on the event loop: if the loop stalls, the pings stop and systemd restarts us."""
    while True:
        notifier.watchdog()
        await anyio.sleep(interval)
