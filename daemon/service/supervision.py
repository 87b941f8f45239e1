"""Supervision of the library runners: each in its own cancel scope, started and stopped alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup

from daemon.bandwidth import Bandwidth, use_throttle
from daemon.config import LibraryConfig
from daemon.control import ControlDir
from daemon.metrics.families import Metrics
from daemon.state.store import StateStore
from daemon.sync.runner import LibraryRunner, ProviderFactory

log = structlog.get_logger("daemon.service")

FULL_LISTINGS_AT_ONCE = 4
"""Full remote listings the daemon's libraries run at the same time (the others wait their turn): each
holds pages of its listing in memory, and libraries that start together list together."""


@dataclass
class RunnerHandle:
    """One running library: its runner, the scope that cancels it, and the event set when it ended."""

    runner: LibraryRunner
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)


class Supervisor:
    """The runners by library name; :meth:`start` puts one in the task group, :meth:`stop` ends some."""

    def __init__(
        self,
        provider_factory: ProviderFactory,
        on_change: Callable[[], None],
        metrics: Metrics | None = None,
        bandwidth: Bandwidth | None = None,
    ) -> None:
        self.provider_factory = provider_factory
        self.metrics = metrics
        self.on_change = on_change
        self.bandwidth = bandwidth or Bandwidth()
        self.handles: dict[str, RunnerHandle] = {}
        self.listing_slots = anyio.CapacityLimiter(FULL_LISTINGS_AT_ONCE)

    def start(self, tg: TaskGroup, store: StateStore, library: LibraryConfig, state_dir: Path) -> None:
        runner = LibraryRunner(
            library,
            store,
            provider_factory=self.provider_factory,
            on_change=self.on_change,
            control=ControlDir(state_dir),
            metrics=self.metrics,
            listing_slots=self.listing_slots,
        )
        handle = RunnerHandle(runner)
        self.handles[library.name] = handle
        tg.start_soon(self._supervise, handle, self.bandwidth, name=f"library {library.name}")
        log.info("library_started", library=library.name, local_path=str(library.local_path))

    @staticmethod
    async def _supervise(handle: RunnerHandle, bandwidth: Bandwidth) -> None:
        try:
            with handle.scope, use_throttle(bandwidth.throttle(handle.runner.config.name)):
                await handle.runner.run()
        finally:
            handle.done.set()

    async def stop(self, names: list[str], stop_timeout: float) -> None:
        """Graceful stop of ``names``: no new work, ``stop_timeout`` for passes in flight, then cancel."""
        handles = [self.handles.pop(n) for n in names if n in self.handles]
        for handle in handles:
            handle.runner.request_stop()
        with anyio.move_on_after(stop_timeout):
            for handle in handles:
                await handle.done.wait()
        for handle in handles:
            if not handle.done.is_set():
                log.warning(
                    "library_stop_timeout",
                    library=handle.runner.config.name,
                    stop_timeout_s=stop_timeout,
                    next_step="transfers in flight are aborted; their temp files are removed",
                )
                handle.scope.cancel()
        for handle in handles:
            await handle.done.wait()
            log.info("library_stopped", library=handle.runner.config.name)
