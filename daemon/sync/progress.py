"""How far a pass has come: files and bytes done of the planned total, rate, ETA and errors.

The pass tells a ``PassProgress`` what its first round planned (``planned``) and each action's outcome
(``advanced``, ``failed``); whoever shows it (the terminal display of ``sync``, the daemon's STATUS line
and ``libmirror status``) reads ``snapshot()``. Counting is a few additions per action: no clock read,
no I/O, no lock (one event loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.vocab import Action, Download, Upload

TRANSFERS = (Download, Upload)


def planned_bytes(action: Action) -> int:
    """The bytes a transfer is expected to move (the size the observation saw); 0 for other kinds."""
    if isinstance(action, Download) and action.remote is not None:
        return action.remote.size or 0
    if isinstance(action, Upload) and action.local is not None:
        return action.local.size or 0
    return 0


@dataclass(frozen=True)
class ProgressSnapshot:
    """One reading of a pass's progress (what ``status --json`` shows under ``progress``)."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    errors: int
    elapsed_s: float
    rate_bytes_per_s: float
    files_per_s: float
    eta_s: float | None

    def line(self) -> str:
        """``412/10000 files, 12.3 MiB/400.0 MiB, 2.1 MiB/s, ETA 3m10s, 0 errors``."""
        eta = "ETA " + format_duration(self.eta_s) if self.eta_s is not None else "ETA unknown"
        return (
            f"{self.files_done}/{self.files_total} files, {format_bytes(self.bytes_done)}/"
            f"{format_bytes(self.bytes_total)}, {format_bytes(self.rate_bytes_per_s)}/s, {eta}, "
            f"{self.errors} errors"
        )

    def as_json(self) -> dict[str, int | float | None]:
        return {
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 1),
            "rate_bytes_per_s": round(self.rate_bytes_per_s),
            "files_per_s": round(self.files_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s),
        }


class PassProgress:
    """Totals of one pass: ``files`` are the transfers (downloads and uploads) the first round planned;
    other actions (folders, moves, deletes) are quick and not counted. Later rounds add what they plan
    beyond the first (``planned`` again)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.files_total = 0
        self.bytes_total = 0
        self.files_done = 0
        self.bytes_done = 0
        self.errors = 0
        # the planned transfers not yet done or failed: a later round that re-plans one does not count it
        # again; done ones are forgotten, so a pass of 100,000 transfers holds only those still to come
        # (DESIGN rule 8; a large round plans in windows of paths)
        self._seen: set[str] = set()

    def planned(self, work: Sequence[Action]) -> None:
        for action in work:
            if isinstance(action, TRANSFERS) and action.path not in self._seen:
                self._seen.add(action.path)
                self.files_total += 1
                self.bytes_total += planned_bytes(action)

    def advanced(self, action: Action, moved: int) -> None:
        if isinstance(action, TRANSFERS):
            self._seen.discard(action.path)
            self.files_done += 1
            self.bytes_done += moved
            # a file that grew since it was observed must not end the pass above 100 %
            self.bytes_total = max(self.bytes_total, self.bytes_done)
            self.files_total = max(self.files_total, self.files_done)

    def failed(self, action: Action) -> None:
        self._seen.discard(action.path)  # a failed path is left out for the rest of the pass
        self.errors += 1

    @property
    def active(self) -> bool:
        """Whether there is anything to show: a pass that transfers nothing has no progress to speak of."""
        return self.files_total > 0

    def snapshot(self) -> ProgressSnapshot:
        elapsed = max(self._clock() - self.started, 1e-9)
        rate = self.bytes_done / elapsed
        files_rate = self.files_done / elapsed
        eta: float | None = None
        if self.files_done and self.files_total >= self.files_done:
            # the slower of the two estimates: many small files are bound by files, large ones by bytes
            by_files = (self.files_total - self.files_done) / files_rate
            by_bytes = (self.bytes_total - self.bytes_done) / rate if rate > 0 else 0.0
            eta = max(by_files, by_bytes)
        return ProgressSnapshot(
            self.files_done,
            self.files_total,
            self.bytes_done,
            self.bytes_total,
            self.errors,
            elapsed,
            rate,
            files_rate,
            eta,
        )


def format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
