"""``libmirror run``: the long-running process.

One anyio task group holds a :class:`~daemon.sync.runner.LibraryRunner` per library (each inside its
own cancel scope, so one can be stopped or replaced alone), the signal handler and the systemd
watchdog. Signals:

- SIGTERM / SIGINT: ``STOPPING=1``; every runner stops taking new work, passes in flight get
  ``stop_timeout`` seconds to finish, then they are cancelled (the runner removes partial downloads);
  exit code 0.
- SIGHUP: ``RELOADING=1``; the config is read again. An invalid file is logged and ignored (the old
  config keeps running). Otherwise removed libraries stop, new ones start, changed ones restart;
  untouched ones keep running undisturbed. ``READY=1`` follows.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup

from daemon.config import Config, ConfigError, LibraryConfig, load_config
from daemon.control import ControlDir
from daemon.sdnotify import Notifier, watchdog_interval
from daemon.state.store import StateStore
from daemon.sync.runner import LibraryRunner, ProviderFactory, _default_factory

log = structlog.get_logger(__name__)


@dataclass
class _Handle:
    runner: LibraryRunner
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)


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
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.loader = loader
        self.on_reload = on_reload
        self.provider_factory = provider_factory
        self.handles: dict[str, _Handle] = {}
        self._store: StateStore | None = None
        self._tg: TaskGroup | None = None
        self._stop = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> int:
        self._store = await StateStore.open(self.config.state_dir)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._signals, tg.cancel_scope)
                interval = watchdog_interval()
                if interval is not None:
                    tg.start_soon(self._watchdog, interval)
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
                await self._stop_all(list(self.handles))
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._store.close()
            self.notifier.close()
        log.info("daemon_stopped")
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if not self._stop.is_set():
                        await self.reload()
                elif self._stop.is_set():
                    log.warning("daemon_stop_forced", signal=signal.Signals(signum).name)
                    scope.cancel()  # a second TERM/INT: do not wait for transfers
                else:
                    log.info("signal_received", signal=signal.Signals(signum).name)
                    self._stop.set()

    async def _watchdog(self, interval: float) -> None:
        # runs on the event loop: if the loop stalls, the pings stop and systemd restarts us
        while True:
            self.notifier.watchdog()
            await anyio.sleep(interval)

    # -- libraries ---------------------------------------------------------------------------------
    def _start(self, library: LibraryConfig) -> None:
        assert self._tg is not None and self._store is not None
        runner = LibraryRunner(
            library,
            self._store,
            provider_factory=self.provider_factory,
            on_change=self._publish_status,
            control=ControlDir(self.config.state_dir),
        )
        handle = _Handle(runner)
        self.handles[library.name] = handle
        self._tg.start_soon(self._supervise, handle, name=f"library {library.name}")
        log.info("library_started", library=library.name, local_path=str(library.local_path))

    async def _supervise(self, handle: _Handle) -> None:
        try:
            with handle.scope:
                await handle.runner.run()
        finally:
            handle.done.set()

    async def _stop_all(self, names: list[str]) -> None:
        """Graceful stop of ``names``: no new work, ``stop_timeout`` for passes in flight, then cancel."""
        handles = [self.handles.pop(n) for n in names if n in self.handles]
        for handle in handles:
            handle.runner.request_stop()
        with anyio.move_on_after(self.config.stop_timeout):
            for handle in handles:
                await handle.done.wait()
        for handle in handles:
            if not handle.done.is_set():
                log.warning(
                    "library_stop_timeout",
                    library=handle.runner.config.name,
                    stop_timeout_s=self.config.stop_timeout,
                    next_step="transfers in flight are aborted; their temp files are removed",
                )
                handle.scope.cancel()
        for handle in handles:
            await handle.done.wait()
            log.info("library_stopped", library=handle.runner.config.name)

    # -- reload ------------------------------------------------------------------------------------
    async def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = self.loader(self.config.path)
        except ConfigError as exc:
            log.error(
                "config_reload_rejected",
                problems=[str(i) for i in exc.issues],
                next_step="the previous configuration keeps running; fix the file and send SIGHUP again",
            )
            self.notifier.ready(self.status_line())
            return
        if new.state_dir != self.config.state_dir:
            log.warning(
                "config_state_dir_unchanged",
                configured=str(new.state_dir),
                in_use=str(self.config.state_dir),
                next_step="a new state_dir takes effect only after a restart",
            )
        old = {lib.name: lib for lib in self.config.libraries}
        fresh = {lib.name: lib for lib in new.libraries}
        removed = [n for n in old if n not in fresh]
        changed = [n for n in old if n in fresh and fresh[n] != old[n]]
        added = [n for n in fresh if n not in old]
        self.config = replace(new, state_dir=self.config.state_dir)
        if self.on_reload is not None:
            self.on_reload(self.config)
        await self._stop_all(removed + changed)
        for name in changed + added:
            self._start(fresh[name])
        log.info("config_reloaded", added=added, removed=removed, changed=changed)
        self.notifier.ready(self.status_line())

    # -- status ------------------------------------------------------------------------------------
    def status_line(self) -> str:
        """One line for systemd's STATUS=: each library's state, files, last pass, errors, gates."""
        parts = []
        for name, handle in sorted(self.handles.items()):
            s = handle.runner.state
            text = f"{name}: {s.state}, {s.files} files"
            if s.last_pass:
                text += f", last pass {s.last_pass}"
            if s.errors:
                text += f", {s.errors} errors"
            if s.state in ("halted", "retrying") and s.detail:
                text += f" ({s.detail[:160]})"
            parts.append(text)
        return "; ".join(parts) or "no libraries"

    def _publish_status(self) -> None:
        self.notifier.status(self.status_line())


async def run_service(config: Config, *, on_reload: Callable[[Config], None] | None = None) -> int:
    """Entry point used by ``libmirror run``."""
    return await Service(config, on_reload=on_reload).run()
