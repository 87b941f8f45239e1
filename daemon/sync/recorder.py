"""What the daemon's metrics learn from one library's passes (``daemon.metrics`` holds the families).

The runner calls it after each pass; the engine itself (planner, executor, ``sync --once``) knows
nothing of metrics. The HTTP layer records requests and rate-limit waits itself.
"""

from __future__ import annotations

import time

from daemon.metrics.families import Metrics
from daemon.metrics.stored import read_figures, set_figures
from daemon.state.store import StateStore
from daemon.sync.library import PassSummary


class PassRecorder:
    """Feeds one library's figures into ``metrics``."""

    def __init__(self, metrics: Metrics, library: str) -> None:
        self.metrics = metrics
        self.library = library

    async def start(self, store: StateStore, lib: int) -> None:
        """The gauges as the store has them, before the first pass of a session (a library that fails
        from the start still shows its tracked files, backoff and last success)."""
        set_figures(self.metrics, self.library, await read_figures(store, lib))

    async def finished(self, summary: PassSummary, store: StateStore, lib: int, tracked: int) -> None:
        """After a completed pass or idle poll (``summary.quiet``: nothing else changed, nothing to count;
        ``tracked`` is then not read). ``tracked``: the synced files the runner counted after the pass."""
        self.metrics.succeeded(self.library, time.time())
        if summary.quiet:
            return
        m, name = self.metrics, self.library
        m.finished_pass(name, summary.duration_ms / 1000)
        m.outcomes(name, summary.outcomes)
        m.transferred(name, "up", summary.outcomes[("upload", "done")], summary.bytes_up)
        m.transferred(name, "down", summary.outcomes[("download", "done")], summary.bytes_down)
        m.library_gauges(
            name,
            tracked=tracked,
            in_backoff=len(await store.failures(lib)),
            gate_held=bool(summary.gate_reasons),
        )
