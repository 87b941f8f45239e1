"""One library in daemon mode: watcher, poller and rescans feed one serial queue of passes.

Triggers only *record* what needs observing (changed local paths, an incremental poll, a full
listing, a full local rescan); a single worker merges whatever piled up and runs one pass for it, so
passes of a library never overlap and a burst of triggers costs one pass. A pass triggered by the
watcher observes only the paths it reported; an idle poll is one ``changed since`` request and no
local work.

Any failure of the library as a whole (bad credentials, unreachable server, missing root) ends the
current session; the runner logs it once per attempt and tries again after a growing delay. It never
raises, so one failing library cannot stop the others.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
import structlog

from daemon.config import LibraryConfig
from daemon.control import ControlDir
from daemon.health import LAST_FAILURE, failure_note
from daemon.local import atomic, marker
from daemon.local.filesystems import filesystem_kind
from daemon.local.watch import WatcherUnavailable, watch_changes
from daemon.logs import bind_library
from daemon.metrics.families import Metrics
from daemon.providers.base import Provider
from daemon.state.store import StateStore
from daemon.sync.guard import describe
from daemon.sync.library import LibrarySync, LocalRootMissing, PassSummary
from daemon.sync.progress import PassProgress
from daemon.sync.recorder import PassRecorder
from daemon.vocab import AuthError, ProviderError

log = structlog.get_logger(__name__)

RETRY_BASE_S = 5.0
RETRY_FACTOR = 2.0
RETRY_CAP_S = 300.0
POLL_JITTER = 0.1  # up to 10 % early, so daemons do not poll in lock-step and never later than poll_interval
FALLBACK_RESCAN_MIN_S = 60.0
# catch-up rescans after the watcher starts: by then its inotify watches are in place (on a busy
# machine the watch thread can take seconds to set them up); a rescan of unchanged files costs stats only
WATCH_CATCH_UP_S = (1.0, 5.0, 15.0)
PROGRESS_EVERY_S = 2.0
"""How often a pass that transfers publishes its progress (STATUS line, ``libmirror status``)."""
PROGRESS = "progress"
"""The status key holding a running pass's progress (JSON), read by ``libmirror status``."""


@dataclass
class Work:
    """What the next pass must observe; triggers merge into one of these."""

    paths: set[str] = field(default_factory=set)
    incremental: bool = False
    full_remote: bool = False
    full_local: bool = False

    def merge(self, other: Work) -> None:
        self.paths |= other.paths
        self.incremental |= other.incremental
        self.full_remote |= other.full_remote
        self.full_local |= other.full_local

    @property
    def empty(self) -> bool:
        return not (self.paths or self.incremental or self.full_remote or self.full_local)


@dataclass
class RunnerState:
    """What ``status`` and the systemd STATUS line show about one library."""

    name: str
    state: str = "starting"  # starting | idle | syncing | retrying | halted | paused | stopped
    detail: str = ""
    files: int = 0
    last_pass: str = ""
    errors: int = 0
    watching: bool = False
    watcher: str = ""  # "" until the watcher starts | inotify | fallback (periodic rescans)
    watcher_mode: str = ""  # for people: "native", "native + rescans every 120 s (nfs)", "rescans every ..."
    progress: str = ""  # while a pass transfers: "412/10000 files, ..., ETA 3m10s, 0 errors"


ProviderFactory = Callable[[LibraryConfig], Provider]


def _single(exc: BaseException) -> BaseException:
    """The one failure inside (nested) exception groups of one exception each; else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _default_factory(library: LibraryConfig) -> Provider:
    from daemon.providers import make_provider

    return make_provider(library.remote)


class LibraryRunner:
    """Runs one library until :meth:`request_stop` (graceful) or cancellation (hard)."""

    def __init__(
        self,
        config: LibraryConfig,
        store: StateStore,
        *,
        provider_factory: ProviderFactory = _default_factory,
        on_change: Callable[[], None] | None = None,
        on_pass: Callable[[PassSummary], None] | None = None,
        rng: random.Random | None = None,
        control: ControlDir | None = None,
        metrics: Metrics | None = None,
        listing_slots: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.config = config
        self.listing_slots = listing_slots  # full remote listings at once, shared by the daemon's libraries
        self.recorder = PassRecorder(metrics, config.name) if metrics is not None else None
        self.control = control
        self.store = store
        self.provider_factory = provider_factory
        self.on_change = on_change
        self.on_pass = on_pass
        self.rng = rng or random.Random()
        self.state = RunnerState(config.name)
        self._pending = Work()
        self._wake = anyio.Event()
        self._stopping = False
        self._root_ready = anyio.Event()
        self._paused = False
        self.passes = 0
        self._progress: PassProgress | None = None  # the running pass's, while it runs
        self._full_scans_begun = 0  # passes that scan the whole folder, in the order they run
        self._full_scans_done = 0
        self._pass_done = anyio.Event()  # set (and replaced) when a pass ends

    # -- control -----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Take no new work; the pass in flight (if any) finishes, then :meth:`run` returns."""
        self._stopping = True
        self._wake.set()

    def trigger(self, work: Work) -> None:
        self._pending.merge(work)
        self._wake.set()

    def _set(self, state: str, detail: str = "") -> None:
        if (state, detail) != (self.state.state, self.state.detail):
            self.state.state, self.state.detail = state, detail
            if self.on_change is not None:
                self.on_change()

    async def _publish_progress(self) -> None:
        """Every few seconds while a pass transfers: its totals in the STATUS line and for ``status``
        (one small status write, never per file)."""
        while True:
            await anyio.sleep(PROGRESS_EVERY_S)
            progress = self._progress
            if progress is None or not progress.active:
                continue
            snap = progress.snapshot()
            self.state.progress = snap.line()
            if self.on_change is not None:
                self.on_change()
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            await self._persist_progress(json.dumps({**snap.as_json(), "at": stamp}))

    async def _persist_progress(self, value: str) -> None:
        try:
            lib_id = await self.store.library_id(self.config.name)
            async with self.store.transaction(lib_id) as tx:
                await tx.set_status(PROGRESS, value)
        except Exception as exc:  # informative only, like the state
            log.warning("status_write_failed", error=str(exc))

    def _network_filesystem(self, root: Path) -> str | None:
        """Why the folder also needs rescans (a network filesystem's name, or the config), or None."""
        if self.config.filesystem == "local":
            return None
        if self.config.filesystem == "network":
            return 'filesystem = "network"'
        return filesystem_kind(root).remote_name

    async def _persist_state(self, failure: str | None = None) -> None:
        """Write the runner's state where ``libmirror status`` (another process) can read it; ``failure``:
        a failed session, as :func:`daemon.health.failure_note` (``status --check`` reads it)."""
        try:
            lib_id = await self.store.library_id(self.config.name)
            async with self.store.transaction(lib_id) as tx:
                await tx.set_status("daemon_state", self.state.state)
                await tx.set_status("daemon_detail", self.state.detail)
                await tx.set_status("watcher", self.state.watcher)
                await tx.set_status("watcher_mode", self.state.watcher_mode)
                if failure is not None:
                    await tx.set_status(LAST_FAILURE, failure)
        except Exception as exc:  # the status is informative; never fail the runner for it
            log.warning("status_write_failed", error=str(exc))

    # -- the session loop --------------------------------------------------------------------------
    async def run(self) -> None:
        bind_library(self.config.name)
        delay = RETRY_BASE_S
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
            except Exception as exc:  # any failure of one library must not stop the others
                if time.monotonic() - started > RETRY_CAP_S:
                    delay = RETRY_BASE_S  # it worked for a while: start the backoff over
                cause = _single(exc)  # the session's task group wraps what failed
                self._set("retrying", f"{type(cause).__name__}: {cause}")
                now = datetime.now().astimezone()
                await self._persist_state(failure_note(self.state.detail, auth=isinstance(cause, AuthError), at=now))
                log.error(
                    "library_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 1),
                    next_step="retrying with backoff; fix the cause (credentials, network, mount) if it persists",
                    exc_info=not isinstance(exc, OSError | ProviderError | LocalRootMissing),
                )
                with anyio.move_on_after(delay):
                    while not self._stopping:
                        await self._wait_wake()
                delay = min(RETRY_CAP_S, delay * RETRY_FACTOR)
        self._set("stopped")
        with anyio.CancelScope(shield=True):
            await self._persist_state()

    async def _wait_wake(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    async def _session(self) -> None:
        provider = self.provider_factory(self.config)
        try:
            lib_id = await self.store.library_id(self.config.name)
            engine = LibrarySync(
                self.config, self.store, lib_id, provider, control=self.control, listing_slots=self.listing_slots
            )
            if self.recorder is not None:
                await self.recorder.start(self.store, lib_id)
            # a new session starts from a full view of both sides: whatever happened while we were away
            self._pending.merge(Work(full_remote=True, full_local=True))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._worker, engine, tg.cancel_scope)
                tg.start_soon(self._every, self.config.poll_interval, Work(incremental=True), True)
                tg.start_soon(self._every, self.config.full_scan_interval, Work(full_remote=True), False)
                tg.start_soon(self._every, self.config.local_rescan_interval, Work(full_local=True), False)
                tg.start_soon(self._watch)
                tg.start_soon(self._publish_progress)
        finally:
            with anyio.CancelScope(shield=True):
                await provider.aclose()
                root = self.config.local_path
                if marker.marker_present(root):
                    removed = atomic.cleanup_tmp(root)  # downloads cut short by a hard stop
                    if removed:
                        log.info("tmp_cleaned", removed=removed)

    async def _worker(self, engine: LibrarySync, scope: anyio.CancelScope) -> None:
        while not self._stopping:
            if self._pending.empty:
                await self._wait_wake()
                continue
            if await self._is_paused():
                self._pending = Work()  # dropped: the resume starts with a full pass
                continue
            work, self._pending = self._pending, Work()
            if work.full_local:
                self._full_scans_begun += 1
            try:
                await self._pass(engine, work)
            except BaseException:
                self._pending.merge(work)
                raise
            if work.full_local:
                self._full_scans_done += 1
            self._pass_done.set()
            self._pass_done = anyio.Event()
        scope.cancel()

    async def _is_paused(self) -> bool:
        """Whether ``libmirror pause`` holds this library (checked before every pass); logged once per
        pause. A resume re-observes both sides in full: what changed meanwhile was not followed."""
        pause = self.control.pause(self.config.name) if self.control is not None else None
        if pause is None:
            if self._paused:
                self._paused = False
                log.info("library_resumed")
                self._pending.merge(Work(full_remote=True, full_local=True))
            return False
        if not self._paused:
            self._paused = True
            log.warning("library_paused", since=pause.requested_at, next_step=f"libmirror resume {self.config.name}")
            self._set("paused", f"since {pause.requested_at}")
            await self._persist_state()
        return True

    async def _pass(self, engine: LibrarySync, work: Work) -> PassSummary:
        idle_poll = work.incremental and not (work.full_remote or work.full_local or work.paths)
        self._set("syncing")
        if not idle_poll:
            await self._persist_state()
        if work.full_local:
            scan_local: bool | list[str] = True
        elif work.paths:
            scan_local = sorted(work.paths)
        else:
            scan_local = False
        self._progress = PassProgress()
        try:
            summary = await engine.run_pass(
                full_remote=work.full_remote,
                poll_remote=work.full_remote or work.incremental,
                scan_local=scan_local,
                honour_backoff=True,
                progress=self._progress,
            )
        finally:
            published, self._progress = bool(self.state.progress), None
            self.state.progress = ""
        if published:
            await self._persist_progress("")
        self.passes += 1
        self._root_ready.set()
        if summary.quiet:
            if self.recorder is not None:
                await self.recorder.finished(summary, self.store, engine.lib, self.state.files)
            self._set("idle")  # nothing changed anywhere: no counting, no writes
            return summary
        counts = await self.store.counts(engine.lib)
        self.state.files = counts["synced_files"]
        self.state.errors = summary.errors
        self.state.last_pass = datetime.now().astimezone().strftime("%H:%M:%S")
        if summary.gate_reasons:
            held = describe(summary.gate_counts) if summary.gate_counts else f"{summary.held} changes"
            self._set("halted", f"held: {held}; " + "; ".join(summary.gate_reasons))
        else:
            self._set("idle")
        await self._persist_state()
        if self.recorder is not None:
            await self.recorder.finished(summary, self.store, engine.lib, self.state.files)
        if self.on_change is not None:
            self.on_change()
        if self.on_pass is not None:
            self.on_pass(summary)
        return summary

    async def _catch_up(self) -> None:
        """Local rescans while the watcher starts: inotify sees nothing until its watches are in place,
        so a file written in that moment (right after the start-up pass, or while the watcher starts on
        a busy machine) would otherwise wait for the next periodic rescan (found by the daemon tests on
        a loaded machine: a burst of new files sat unsynced for minutes)."""
        waited = 0.0
        started = time.monotonic()
        for at in WATCH_CATCH_UP_S:
            await anyio.sleep(at - waited)
            waited = at
            await self._root_ready.wait()
            log.debug("watcher_catch_up_rescan", after_s=at)
            self.trigger(Work(full_local=True))
        await self._full_scan_after_trigger()
        log.info("watcher_catch_up_done", rescans=len(WATCH_CATCH_UP_S), after_s=round(time.monotonic() - started, 1))

    async def _full_scan_after_trigger(self) -> None:
        """Wait for the end of the full local scan a trigger just asked for (the next one to begin: one
        running now started before the trigger)."""
        wanted = self._full_scans_begun + 1
        while self._full_scans_done < wanted:
            await self._pass_done.wait()

    async def _every(self, interval: float, work: Work, jitter: bool) -> None:
        while True:
            factor = 1 - self.rng.uniform(0.0, POLL_JITTER) if jitter else 1.0
            await anyio.sleep(interval * factor)
            self.trigger(Work(set(work.paths), work.incremental, work.full_remote, work.full_local))

    async def _watch(self) -> None:
        root = self.config.local_path
        if not root.is_dir():
            await self._root_ready.wait()  # the first pass creates it
        self.state.watching = True
        self.state.watcher = "inotify"
        network = self._network_filesystem(root)
        rescan = self.config.network_rescan_interval
        if network is None:
            self.state.watcher_mode = "native"
        else:
            self.state.watcher_mode = f"native + rescans every {rescan:g} s ({network})"
            log.warning(
                "watcher_network_filesystem",
                filesystem=network,
                rescan_every_s=rescan,
                next_step="changes other machines make there are found by these rescans; set "
                'filesystem = "local" if only this machine writes there, or a shorter network_rescan_interval',
            )
        if self.on_change is not None:
            self.on_change()  # the STATUS line names the watcher mode
        await self._persist_state()
        why = "the watcher stopped"
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._catch_up)
            if network is not None:
                tg.start_soon(self._every, rescan, Work(full_local=True), False)
            try:
                await watch_changes(root, self.config.settle, lambda paths: self.trigger(Work(paths=paths)))
            except WatcherUnavailable as exc:
                why = str(exc).split(";")[0][:80] or "inotify unavailable"
            tg.cancel_scope.cancel()
        self.state.watching = False
        self.state.watcher = "fallback"
        interval = min(self.config.local_rescan_interval, max(FALLBACK_RESCAN_MIN_S, self.config.poll_interval))
        if network is not None:
            interval = min(interval, rescan)
        self.state.watcher_mode = f"rescans every {interval:g} s ({why})"
        await self._persist_state()
        log.warning("watcher_fallback", rescan_every_s=interval)
        await self._every(interval, Work(full_local=True), False)
