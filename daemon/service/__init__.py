"""``libmirror run``: the long-running process.

One anyio task group holds a :class:`~daemon.sync.runner.LibraryRunner` per library (each inside its
own cancel scope, so one can be stopped or replaced alone), the signal handler and the systemd
watchdog. Its parts: ``supervision`` (the runners), ``signals`` (stop and reload), ``notify`` (the
STATUS= line and the watchdog). Signals:

- SIGTERM / SIGINT: ``STOPPING=1``; every runner stops taking new work, passes in flight get
  ``stop_timeout`` seconds to finish, then they are cancelled (the runner removes partial downloads);
  exit code 0.
- SIGHUP: ``RELOADING=1``; the config is read again. An invalid file is logged and ignored (the old
  config keeps running). Otherwise removed libraries stop, new ones start, changed ones restart;
  untouched ones keep running undisturbed. ``READY=1`` follows.

With ``metrics_listen`` set, ``GET /metrics`` is served (``daemon.metrics.server``) from before the
first library starts until the process ends; an address that cannot be bound stops the start-up with
:class:`~daemon.metrics.server.MetricsBindError`. A new ``metrics_listen`` needs a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup

from daemon.bandwidth import Bandwidth
from daemon.config import Config, LibraryConfig, load_config
from daemon.metrics.families import METRICS, Metrics
from daemon.metrics.listen import parse_listen
from daemon.metrics.server import serve_metrics
from daemon.sdnotify import Notifier, watchdog_interval
from daemon.service.notify import status_line, watchdog
from daemon.service.signals import library_changes, read_reloaded, receive_signals
from daemon.service.supervision import RunnerHandle, Supervisor
from daemon.state.store import StateStore
from daemon.sync.runner import ProviderFactory, _default_factory

log = structlog.get_logger(__name__)

_Handle = RunnerHandle  # its former name


class Service:
    """Owns the store and the runners; :meth:`run` returns the process exit code."""

    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        loader: Callable[[Path], Config] = load_config,
        on_reload: Callable[[Config], None] | None = None,
        provider_factory: ProviderFactory = _default_factory,
        metrics: Metrics = METRICS,
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.loader = loader
        self.on_reload = on_reload
        self.metrics = metrics
        self.bandwidth = Bandwidth()
        self.runners = Supervisor(
            provider_factory, on_change=self._publish_status, metrics=metrics, bandwidth=self.bandwidth
        )
        self._store: StateStore | None = None
        self._tg: TaskGroup | None = None
        self._stop = anyio.Event()

    @property
    def handles(self) -> dict[str, RunnerHandle]:
        """The running libraries by name."""
        return self.runners.handles

    async def run(self) -> int:
        self._store = await StateStore.open(self.config.state_dir)
        try:
            # the endpoint first: an address that cannot be bound stops the start-up before any library
            async with self._metrics_endpoint(), anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(receive_signals, self._stop, tg.cancel_scope, self.reload)
                self._configure_bandwidth()
                tg.start_soon(self.bandwidth.follow_schedules, name="bwlimit schedules")
                interval = watchdog_interval()
                if interval is not None:
                    tg.start_soon(watchdog, self.notifier, interval)
                for library in self.config.libraries:
                    self._start(library)
                log.info(
                    "daemon_started",
                    config=str(self.config.path),
                    libraries=[lib.name for lib in self.config.libraries],
                    watchdog_s=interval,
                )
                self.notifier.ready(self.status_line())
                await self._stop.wait()
                self.notifier.stopping()
                log.info("daemon_stopping", stop_timeout_s=self.config.stop_timeout)
                await self.runners.stop(list(self.handles), self.config.stop_timeout)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._store.close()
            self.notifier.close()
        log.info("daemon_stopped")
        return 0

    def _metrics_endpoint(self) -> AbstractAsyncContextManager[None]:
        if not self.config.metrics_listen:
            return nullcontext()
        return serve_metrics(self.metrics, parse_listen(self.config.metrics_listen))

    def request_stop(self) -> None:
        self._stop.set()

    def _start(self, library: LibraryConfig) -> None:
        assert self._tg is not None and self._store is not None
        self.runners.start(self._tg, self._store, library, self.config.state_dir)

    async def reload(self) -> None:
        """SIGHUP: the config read again; removed libraries stop, changed ones restart, new ones start."""
        self.notifier.reloading()
        new = read_reloaded(self.loader, self.config)
        if new is None:
            self.notifier.ready(self.status_line())
            return
        changes = library_changes(self.config, new)
        fresh = {lib.name: lib for lib in new.libraries}
        if new.metrics_listen != self.config.metrics_listen:
            log.warning(
                "config_metrics_listen_unchanged",
                configured=new.metrics_listen,
                in_use=self.config.metrics_listen,
                next_step="a new metrics_listen takes effect only after a restart",
            )
        self.config = replace(new, state_dir=self.config.state_dir, metrics_listen=self.config.metrics_listen)
        if self.on_reload is not None:
            self.on_reload(self.config)
        self._configure_bandwidth()  # new limits apply to transfers in flight; no library restarts for them
        await self.runners.stop(changes.removed + changes.changed, self.config.stop_timeout)
        for name in changes.removed:
            self.metrics.forget_library(name)
        for name in changes.changed + changes.added:
            self._start(fresh[name])
        log.info("config_reloaded", added=changes.added, removed=changes.removed, changed=changes.changed)
        self.notifier.ready(self.status_line())

    def _configure_bandwidth(self) -> None:
        self.bandwidth.configure(self.config.bwlimit, {lib.name: lib.bwlimit for lib in self.config.libraries})

    def status_line(self) -> str:
        """One line for systemd's STATUS=: each library's state, files, last pass, errors, gates."""
        return status_line(self.handles)

    def _publish_status(self) -> None:
        self.notifier.status(self.status_line())


async def run_service(config: Config, *, on_reload: Callable[[Config], None] | None = None) -> int:
    """Entry point used by ``libmirror run``."""
    return await Service(config, on_reload=on_reload).run()


__all__ = ["RunnerHandle", "Service", "_Handle", "run_service"]
