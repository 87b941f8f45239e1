"""One library's sync pass: observe both sides, plan, guard, execute, until nothing is left to do."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import assert_never

import anyio
import structlog

from daemon.config import LibraryConfig
from daemon.control import ControlDir, Release
from daemon.local import atomic, marker, trash
from daemon.local.ignore import IgnoreMatcher
from daemon.local.once import Once
from daemon.local.scan import (
    FolderPrints,
    KnownRows,
    LocalChange,
    Unsyncable,
    Vanished,
    observe_paths,
    observed_scope,
    scan_tree,
)
from daemon.providers.base import Provider
from daemon.state.store import StateStore
from daemon.sync.execute import ExecutionReport, Executor, ProgressCallback
from daemon.sync.guard import (
    GateCounts,
    GateFacts,
    GateResult,
    apply_gates,
    held,
    overwrites_local,
    overwrites_remote,
    verdict,
)
from daemon.sync.guard import count as count_destruction
from daemon.sync.observe_remote import RemoteObservation, RemoteObserver
from daemon.sync.plan import plan
from daemon.sync.progress import PassProgress
from daemon.sync.recover import finish_replacements
from daemon.vocab import (
    Action,
    ConflictCopy,
    DeleteRemote,
    Direction,
    Download,
    Forget,
    Known,
    LocalRow,
    MkdirLocal,
    MkdirRemote,
    MoveLocal,
    MoveRemote,
    PathState,
    PlanOptions,
    Record,
    RmdirLocal,
    RmdirRemote,
    Skip,
    TrashLocal,
    Upload,
    moved_from,
)
from daemon.vocab.fingerprint import Fill

log = structlog.get_logger(__name__)

MAX_ROUNDS = 8
WINDOW_PATHS = 5000  # a large library's round is planned and carried out this many paths at a time

_skip_reported = Once()  # a path the planner cannot act on is reported once per process, not every pass


class LocalRootMissing(Exception):
    """The library's local folder is gone although files were synced (unmounted disk?)."""


@dataclass
class PassSummary:
    pushed: int = 0
    pulled: int = 0
    conflicts: int = 0
    deleted: int = 0
    moved: int = 0
    folders: int = 0  # folders created or removed (pushed/pulled/deleted count files only)
    skipped: int = 0
    errors: int = 0
    held: int = 0
    rounds: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    duration_ms: float = 0.0
    gate_reasons: list[str] = field(default_factory=list)
    gate_counts: GateCounts | None = None  # what the held plan would have deleted / overwritten
    released: bool = False  # the operator's release-gate request let held changes through
    waiting: int = 0  # interrupted replacements this pass could not finish yet (tried again next pass)
    planned: list[Action] = field(default_factory=list)  # the first round's plan (dry runs print it)
    failures: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (path, why): the API cannot do it
    quiet: bool = False  # an idle poll that found nothing to plan: no pass was run
    # (action kind, outcome) -> actions: done, failed, unsupported, replanned (for the daemon's metrics)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 1
        if self.held:
            return 3
        return 0


def _counted_as(action: Action) -> str:
    """The word of the pass summary that a done action counts under."""
    match action:
        case Upload():
            return "pushed"
        case Download():
            return "pulled"
        case ConflictCopy():
            return "conflicts"
        case DeleteRemote() | TrashLocal():
            return "deleted"
        case MoveLocal() | MoveRemote():
            return "moved"
        case MkdirLocal() | MkdirRemote() | RmdirLocal() | RmdirRemote():
            return "folders"
        case Skip():
            return "skipped"
        case Record() | Forget():
            return "other"
        case _:
            assert_never(action)


# actions whose re-plan asks the server again: a check found the remote tree stale
_REMOTE_CHECKED = (Upload, DeleteRemote, RmdirRemote)


def _within(path: str, paths: set[str]) -> bool:
    """``path`` is one of ``paths`` or lies under one of them. A pass leaves out what lies under a path it
    no longer acts on (failed, unsupported, held by a gate, in backoff) as well: the folder an upload
    needs, or the remote file whose place it needs, is not going to be there in this pass."""
    while True:
        if path in paths:
            return True
        if "/" not in path:
            return False
        path = path.rpartition("/")[0]


class StoreKnownRows:
    """The scanner's view of what the store last saw, one folder at a time."""

    def __init__(self, store: StateStore, lib: int) -> None:
        self.store = store
        self.lib = lib

    async def children(self, dir_path: str) -> Mapping[str, Known]:
        return await self.store.local_children(self.lib, dir_path)


class WindowedKnownRows:
    """For a full rescan: the local tree read a window of folders at a time (in folder order, ``size``
    rows per query) instead of one query per folder, and never the whole tree at once (DESIGN rule 8:
    memory independent of library size). The walk goes depth first in name order, close to folder order,
    so most folders are served from the window already read; any other is read again."""

    def __init__(self, store: StateStore, lib: int, size: int = 20_000) -> None:
        self.store = store
        self.lib = lib
        self.size = size
        self.window: dict[str, Mapping[str, Known]] = {}
        self.low: str | None = None  # the folders from low up to (not including) high are all in window
        self.high: str | None = None  # None: up to the end of the tree

    def _covers(self, dir_path: str) -> bool:
        return self.low is not None and self.low <= dir_path and (self.high is None or dir_path < self.high)

    async def children(self, dir_path: str) -> Mapping[str, Known]:
        if not self._covers(dir_path):
            await self._read(dir_path)
        return self.window.pop(dir_path, {})

    async def _read(self, dir_path: str) -> None:
        rows = await self.store.local_window(self.lib, dir_path, self.size)
        window: dict[str, dict[str, Known]] = {}
        for row in rows:
            window.setdefault(row[0], {})[row[1].rpartition("/")[2]] = row[1:]  # a StoredStat
        self.window, self.low, self.high = dict(window), dir_path, None
        if len(rows) >= self.size:  # the last folder may go on past the window: read it whole, alone
            self.high = rows[-1][0]
            del self.window[self.high]
            if not self.window:
                self.window = {dir_path: await self.store.local_children(self.lib, dir_path)}
                self.high = dir_path + "\0"


WHOLE_TREE_ROWS = 200_000
"""Up to this many stored local rows, a full rescan reads each folder's fingerprint sum in one query
(``FolderPrints``: the walk takes many folders per worker-thread call and reads the rows of changed
folders only; about 150 bytes per folder held for the scan); a larger tree is read a window of folders at
a time (``WindowedKnownRows``: memory bounded whatever its size, even with a folder per file)."""


class LibrarySync:
    """Everything one library needs for a pass; shared by ``sync --once``, the demo and the daemon."""

    def __init__(
        self,
        config: LibraryConfig,
        store: StateStore,
        lib: int,
        provider: Provider,
        *,
        clock: Callable[[], datetime] = datetime.now,
        control: ControlDir | None = None,
        listing_slots: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.config = config
        self.control = control
        # shared by the libraries of a daemon: how many full remote listings run at once (see observe_remote)
        self.listing_slots = listing_slots
        self.unsyncable: set[str] = set()  # local names that cannot be synced (shown escaped), for status
        # remote ids of folders the server refused to remove although the full listing that followed
        # showed them empty: their next refusal is reported as final, not listed again (see Executor)
        self.kept_folders: set[str] = set()
        self.store = store
        self.lib = lib
        self.provider = provider
        self.root = Path(config.local_path)
        self.ignore = IgnoreMatcher(config.ignore)
        self.remote = RemoteObserver(store, lib, provider, self.ignore)
        self.known = StoreKnownRows(store, lib)
        self.clock = clock
        caps = provider.capabilities
        self.options = PlanOptions(
            direction=config.direction,
            propagate_deletes=config.propagate_deletes and caps.can_delete,
            can_move_remote=caps.can_move,
            can_update_remote=caps.can_update,
            has_remote_dirs=caps.can_mkdir,
            can_move_remote_dir=caps.can_move and caps.can_move_dir,
        )

    # -- observation -------------------------------------------------------------------------------
    @property
    def _remote_observable(self) -> bool:
        """Whether the remote side can be listed (a push-only API such as coreplus cannot be)."""
        return self.options.direction is not Direction.PUSH or self.provider.capabilities.can_download

    async def _known_for_rescan(self) -> KnownRows:
        if await self.store.local_count(self.lib) <= WHOLE_TREE_ROWS:
            return FolderPrints(
                await self.store.local_folder_prints(self.lib),
                partial(self.store.local_folder, self.lib),
                self._fill_fingerprints,
            )
        return WindowedKnownRows(self.store, self.lib)

    async def _fill_fingerprints(self, rows: list[Fill]) -> None:
        async with self.store.batched(self.lib) as tx:
            await tx.set_local_fingerprints(rows)

    async def observe_local(self, paths: list[str] | None = None) -> int:
        """Scan the whole root (or only ``paths``) into the local tree; returns the rows changed."""
        changed = 0
        if paths is None:
            self.unsyncable.clear()  # a full scan finds them all again
            known = await self._known_for_rescan()
            async for batch in scan_tree(self.root, self.ignore, known):
                changed += await self._apply_local(batch)
        else:
            self._forget_unsyncable({observed_scope(p) for p in paths})
            changed += await self._apply_local(await observe_paths(self.root, paths, self.ignore, self.known))
        return changed

    def _forget_unsyncable(self, scopes: set[str]) -> None:
        """Drop the unsyncable names at or under the paths about to be observed again: those still there
        are reported again (a name fixed in a watched folder used to stay listed until the next full scan)."""
        if "" in scopes:
            self.unsyncable.clear()
            return
        for shown in list(self.unsyncable):
            parts = shown.split("/")
            if any("/".join(parts[:n]) in scopes for n in range(1, len(parts) + 1)):
                self.unsyncable.discard(shown)

    async def _apply_local(self, batch: list[LocalChange]) -> int:
        if not batch:
            return 0
        self.unsyncable.update(c.shown for c in batch if isinstance(c, Unsyncable))
        async with self.store.transaction(self.lib) as tx:
            rows = [c for c in batch if isinstance(c, LocalRow)]
            await tx.put_locals(rows)
            for change in batch:
                if isinstance(change, Vanished):
                    await tx.delete_local(change.path, recursive=change.is_dir)
        return len(batch)

    async def observe_remote(self, *, full: bool) -> RemoteObservation:
        # A full listing holds pages of the provider's listing in memory (CoreData's is tenant-wide): a
        # daemon's libraries, which start together and so list together every full_scan_interval, take
        # turns, so its memory stays that of a few listings
        if full:
            async with self.listing_slots if self.listing_slots is not None else nullcontext():
                obs = await self.remote.full()
        else:
            obs = await self.remote.incremental()
        async with self.store.transaction(self.lib) as tx:
            await tx.set_status("last_poll", datetime.now().astimezone().isoformat(timespec="seconds"))
        for name in obs.skipped:  # the sanitiser already warned once per entry (remote id, raw name)
            log.debug("remote_name_skipped", path=name, detail="the name cannot be used on disk")
        log.info(
            "poll",
            kind=obs.kind,
            files=obs.files,
            folders=obs.folders,
            changed=obs.changed,
            left=obs.left,
        )
        return obs

    def _skip_detail(self, action: Action) -> dict[str, str]:
        """Why a local delete stays local when the provider has no delete at all (e.g. coreplus)."""
        if action.local is None and action.synced is not None and not self.provider.capabilities.can_delete:
            return {"detail": "the remote API cannot delete files, so the uploaded copy stays"}
        return {}

    # -- a pass ------------------------------------------------------------------------------------
    async def _prepare_root(self, dry_run: bool, confirm: bool) -> bool:
        """Make sure the root exists; returns whether the marker is present (or was just made)."""
        first_sync = not await self.store.has_synced(self.lib)
        if not self.root.exists():
            if not first_sync and not confirm:
                raise LocalRootMissing(
                    f"{self.root} does not exist but files were synced into it: is the disk mounted? "
                    "Restore the folder, or run `sync --once --confirm-deletes` to start over"
                )
            if dry_run:
                return False
            self.root.mkdir(parents=True, exist_ok=True)
        present = marker.marker_present(self.root)
        if not present and (first_sync or confirm) and not dry_run:
            marker.ensure_marker(self.root)
            present = True
        if present and not dry_run:
            atomic.cleanup_tmp(self.root)
        return present

    async def _quiet(self, observed: RemoteObservation, scan_local: bool | Sequence[str], marker_present: bool) -> bool:
        """Whether an incremental poll found nothing that could need planning."""
        if observed.kind != "incremental" or observed.changed or observed.left or not marker_present:
            return False
        if scan_local is True or (scan_local is not False and len(scan_local) > 0):
            return False
        if await self.store.failures(self.lib) or await self.store.pending_replaces(self.lib):
            return False
        return not (await self.store.get_status(self.lib)).get("gate")

    async def run_pass(
        self,
        *,
        full_remote: bool = True,
        dry_run: bool = False,
        confirm_deletes: bool = False,
        on_progress: ProgressCallback | None = None,
        on_plan: Callable[[list[Action]], None] | None = None,
        poll_remote: bool = True,
        scan_local: bool | Sequence[str] = True,
        honour_backoff: bool = False,
        progress: PassProgress | None = None,
    ) -> PassSummary:
        """Observe, plan, guard and execute until nothing is left (at most ``MAX_ROUNDS`` rounds), then
        record the pass.

        ``sync --once`` uses the defaults (both sides observed in full). The daemon narrows the
        observation: ``poll_remote=False`` for a watcher-triggered pass, ``scan_local=[paths]`` to
        observe only what the watcher reported (or ``False`` for a remote-only pass), and
        ``honour_backoff=True`` so paths whose last attempt failed wait for their ``next_at``.
        ``progress`` counts the planned transfers and their outcomes (the terminal display, STATUS line).
        """
        started = time.monotonic()
        marker_present = await self._prepare_root(dry_run, confirm_deletes)
        observed = await self._observe(poll_remote=poll_remote, full_remote=full_remote, scan_local=scan_local)
        if observed is not None and await self._quiet(observed, scan_local, marker_present):
            # an idle poll: nothing new on either side, nothing waiting, no gate to re-evaluate
            return PassSummary(quiet=True)
        run = _Pass(marker_present=marker_present, dry_run=dry_run, confirm_deletes=confirm_deletes)
        await self._resume(run, observed, honour_backoff)
        run.release = self.control.release(self.config.name) if self.control is not None and not dry_run else None
        for round_no in range(1, MAX_ROUNDS + 1):
            now_label = self.clock().strftime("%Y-%m-%d %H%M%S")
            states = await self.store.changed_states(self.lib, limit=WINDOW_PATHS + 1)
            if len(states) > WINDOW_PATHS:
                del states  # a large round: in windows if it can be, else read whole
                if not dry_run and await self.store.pageable(self.lib):
                    if not await self._paged_round(run, round_no, now_label, on_progress, progress, on_plan):
                        break
                    continue
                states = await self.store.changed_states(self.lib)
            actions = self._plan(run, states, now_label)
            gate = await self._guard(run, actions)
            work = _work(run, gate)
            if round_no == 1:
                self._report_plan(run, gate, work, on_plan)
            if dry_run or not work:
                break
            if progress is not None:
                progress.planned(work)
            run.summary.rounds = round_no
            report = await self._execute(run, work, now_label, on_progress, progress)
            if not report.done and not report.replanned:
                break
        self._close_release(run)
        self._purge_trash(run)
        await self._record(run, started)
        return run.summary

    # -- the stages of a pass ----------------------------------------------------------------------
    async def _observe(
        self, *, poll_remote: bool, full_remote: bool, scan_local: bool | Sequence[str]
    ) -> RemoteObservation | None:
        """Observe the local side, then the remote one; returns what the poll saw (None: no poll)."""
        if not poll_remote and await self.store.failures(self.lib):
            # an action that failed may still have reached the server (an upload whose answer was lost):
            # a watcher pass polls first, so a retry sees what the server holds instead of sending it
            # twice (found by the simulation once its watcher passes stopped polling)
            poll_remote, full_remote = True, False
        # the local side first: a new remote name is decided against the local entries too (a remote
        # "hello.txt" beside a local-only "Hello.txt" gets its own name in the pass that first sees it)
        if self.root.exists() and scan_local is not False:
            await self.observe_local(None if scan_local is True else list(scan_local))
        if poll_remote and self._remote_observable:
            return await self.observe_remote(full=full_remote)
        return None

    async def _resume(self, run: _Pass, observed: RemoteObservation | None, honour_backoff: bool) -> None:
        """Finish the replacements a stop interrupted; what cannot be finished yet, and the paths still
        in backoff, are left out of this pass."""
        if observed is not None and not run.dry_run:
            waiting = await finish_replacements(
                self.store, self.lib, self.provider, self.root, full_listing=observed.kind != "incremental"
            )
            run.summary.waiting = len(waiting)
            run.left_out |= waiting
        if honour_backoff:
            now = time.time()
            run.left_out.update(path for path, _, next_at, _ in await self.store.failures(self.lib) if next_at > now)

    def _plan(self, run: _Pass, states: list[PathState], now_label: str) -> list[Action]:
        """One round's plan, without what lies at or under a path this pass no longer acts on."""
        return [
            a
            for a in plan(states, self.options, now_label=now_label)
            if not _within(a.path, run.left_out) and ((src := moved_from(a)) is None or not _within(src, run.left_out))
        ]

    # -- a round in windows (a large library: DESIGN rule 8) -------------------------------------
    # A round whose changed paths fill more than one window (``WINDOW_PATHS``) is planned and carried out
    # window by window when no changed path's plan depends on another path's rows (no delete, move,
    # file/folder clash or conflict: ``StateStore.pageable``); otherwise the whole plan is made at once.

    async def _windows(self, run: _Pass, now_label: str) -> AsyncIterator[list[Action]]:
        """The round's plan, window of paths by window of paths (each window read after the previous one
        was carried out), without what lies at or under a path this pass no longer acts on."""
        after: str | None = ""
        while after is not None:
            states, after = await self.store.changed_window(self.lib, after, WINDOW_PATHS)
            if states:
                yield self._plan(run, states, now_label)

    async def _paged_round(
        self,
        run: _Pass,
        round_no: int,
        now_label: str,
        on_progress: ProgressCallback | None,
        progress: PassProgress | None,
        on_plan: Callable[[list[Action]], None] | None,
    ) -> bool:
        """One round in windows: count first (the gates judge the whole round), then plan, hold and carry
        out each window in turn (the first round hands each window's work to ``on_plan``; ``planned`` of
        the summary stays empty: a round in windows is never a dry run). Returns whether the round did or
        re-planned anything."""
        counts = GateCounts()
        async for actions in self._windows(run, now_label):
            for name, n in vars(count_destruction(actions)).items():
                setattr(counts, name, getattr(counts, name) + n)
        hold = await self._judge(run, counts)
        replanned = ExecutionReport()
        acted = False
        async for actions in self._windows(run, now_label):
            allowed: list[Action] = []
            for a in actions:
                if held(a, hold):
                    run.left_out.update(p for p in (a.path, moved_from(a)) if p is not None)
                else:
                    allowed.append(a)
            if round_no == 1:
                self._report_skips(run, allowed)
            work: list[Action] = [a for a in allowed if not isinstance(a, Skip) and not _within(a.path, run.left_out)]
            if not work:
                continue
            if round_no == 1 and on_plan is not None:
                on_plan(work)
            if progress is not None:
                progress.planned(work)
            run.summary.rounds = round_no
            report = await self._execute(run, work, now_label, on_progress, progress, observe_replanned=False)
            acted = acted or bool(report.done or report.replanned)
            replanned.replanned += report.replanned
            replanned.remote_changes += report.remote_changes
            replanned.refused_folders += report.refused_folders
        if replanned.replanned:
            await self._observe_replanned(replanned)
        return acted

    async def _judge(self, run: _Pass, counts: GateCounts) -> set[str]:
        """The safety gates over a whole round counted window by window (``_guard`` for a round planned
        at once): what they hold. Only overwrites can be held here (a round in windows deletes nothing)."""
        summary = run.summary
        facts = await self._facts(run, needed=any(vars(counts).values()))
        reasons, hold = verdict(counts, facts)
        held_n = sum(getattr(counts, f"{what}s") for what in hold)
        release = run.release
        if reasons and held_n and release is not None and release.gate == "; ".join(reasons):
            log.warning(
                "gate_released", reasons=reasons, released=held_n, requested_at=release.requested_at, **vars(counts)
            )
            summary.released = True
            reasons, hold = verdict(counts, dataclasses.replace(facts, confirmed=True))
            held_n = sum(getattr(counts, f"{what}s") for what in hold)
        if not held_n:
            return set()
        if not summary.gate_reasons:
            summary.gate_reasons = reasons
            summary.gate_counts = counts
            summary.held = held_n
            for reason in reasons:
                log.error("safety_gate", reason=reason, held=held_n, **vars(counts))
        return hold

    async def _facts(self, run: _Pass, *, needed: bool) -> GateFacts:
        """What the gates weigh a round against; the trees are counted only when something deletes or
        overwrites (``needed``)."""
        if needed:
            counts = await self.store.counts(self.lib)
        else:
            counts = {"synced_files": 1, "remote_files": 1, "local_files": 1}
        return GateFacts(
            marker_present=run.marker_present,
            synced_files=counts["synced_files"],
            remote_files=counts["remote_files"],
            local_files=counts["local_files"],
            max_delete_percent=self.config.max_delete_percent,
            max_delete_count=self.config.max_delete_count,
            max_overwrite_percent=self.config.max_overwrite_percent,
            max_overwrite_count=self.config.max_overwrite_count,
            confirmed=run.confirm_deletes or run.summary.released,
            library=self.config.name,
        )

    async def _guard(self, run: _Pass, actions: list[Action]) -> GateResult:
        """The safety gates over one round's plan. An operator's release (``libmirror release-gate``)
        lets the held changes through only when they are exactly those it released. The first gate that
        trips is reported; what it holds is left out for the rest of the pass."""
        summary = run.summary
        needed = any(a.is_destructive or overwrites_local(a) or overwrites_remote(a) for a in actions)
        facts = await self._facts(run, needed=needed)
        gate = apply_gates(actions, facts)
        release = run.release
        if gate.tripped and release is not None and release.gate == "; ".join(gate.reasons):
            log.warning(
                "gate_released",
                reasons=gate.reasons,
                released=len(gate.held),
                requested_at=release.requested_at,
                **vars(gate.counts),
            )
            summary.released = True
            gate = apply_gates(actions, dataclasses.replace(facts, confirmed=True))
        if gate.tripped and not summary.gate_reasons:
            summary.gate_reasons = gate.reasons
            summary.gate_counts = gate.counts
            summary.held = len(gate.held)
            for reason in gate.reasons:
                log.error("safety_gate", reason=reason, held=len(gate.held), **vars(gate.counts))
        for a in gate.held:
            # held for the whole pass: a later round must not let it through because the totals the
            # percentages are taken of moved (found by the simulation's mass overwrites)
            run.left_out.update(p for p in (a.path, moved_from(a)) if p is not None)
        return gate

    def _report_plan(
        self, run: _Pass, gate: GateResult, work: list[Action], on_plan: Callable[[list[Action]], None] | None
    ) -> None:
        """The first round's plan: kept for dry runs, its skips counted and reported (once per process)."""
        run.summary.planned = list(gate.allowed) + list(gate.held)
        self._report_skips(run, gate.allowed)
        if on_plan is not None:
            on_plan(work)

    def _report_skips(self, run: _Pass, allowed: list[Action]) -> None:
        """Count the first round's skips and report each (once per process)."""
        skips = [a for a in allowed if isinstance(a, Skip)]
        run.summary.skipped += len(skips)
        for a in skips:
            if _skip_reported.first((self.lib, a.path, a.reason)):
                log.info("skipped", path=a.path, reason=a.reason, **self._skip_detail(a))

    async def _execute(
        self,
        run: _Pass,
        work: list[Action],
        now_label: str,
        on_progress: ProgressCallback | None,
        progress: PassProgress | None,
        *,
        observe_replanned: bool = True,
    ) -> ExecutionReport:
        """Carry out one round's work, count what it did, and observe again what it had to re-plan."""
        if not run.marker_present:
            work = [a for a in work if not isinstance(a, Download)]
        executor = Executor(
            self.store,
            self.lib,
            self.provider,
            self.root,
            concurrency=self.config.concurrency,
            now_label=now_label,
            on_progress=_both(on_progress, progress.advanced if progress is not None else None),
            on_failed=progress.failed if progress is not None else None,
            ignore=self.ignore,
            kept_folders=self.kept_folders,
        )
        report = await executor.run(work)
        _tally(run, report)
        if report.replanned and observe_replanned:
            await self._observe_replanned(report)
        return report

    async def _observe_replanned(self, report: ExecutionReport) -> None:
        """Observe again what an action found changed, so the next round plans on what is there now."""
        await self.observe_local(
            [a.path for a in report.replanned] + [src for a in report.replanned if (src := moved_from(a))]
        )
        for change in report.remote_changes:
            await self.remote.record_fresh(change.planned, change.fresh)
        if self._remote_observable and any(isinstance(a, _REMOTE_CHECKED) for a in report.replanned):
            # a folder the server would not remove is looked at in full: what landed in it may be a
            # folder, which a changed-since poll does not show
            await self.observe_remote(full=bool(report.refused_folders))
            await self._note_kept_folders(report.refused_folders)

    async def _note_kept_folders(self, refused: list[str]) -> None:
        """After the full listing that follows refused folder removals: a folder it still shows, and
        shows empty, keeps items no listing shows (TimeTap: deleted ones). One that now shows content
        was refused because the remote tree was stale: the next round pulls what landed in it."""
        for remote_id in refused:
            row = await self.store.remote_by_id(self.lib, remote_id)
            if row is not None and row.is_dir and not await self.store.remote_children(self.lib, remote_id):
                self.kept_folders.add(remote_id)

    def _close_release(self, run: _Pass) -> None:
        """An operator's release is used up by this pass, applied or not (saying so when it was not)."""
        release = run.release
        if release is None or self.control is None:
            return
        if not run.summary.released:
            log.warning(
                "gate_release_not_applied",
                released=release.gate,
                held_now="; ".join(run.summary.gate_reasons) or None,
                detail="the changes held now differ from those released (or nothing is held any more)",
                next_step="check `libmirror status`; release again if the held changes are intended",
            )
        self.control.clear_release(self.config.name, release)

    def _purge_trash(self, run: _Pass) -> None:
        if run.marker_present and not run.dry_run:
            purged = trash.purge_trash(self.root, self.config.trash_days, time.time())
            if purged:
                log.info("trash_purged", removed=purged, older_than_days=self.config.trash_days)

    async def _record(self, run: _Pass, started: float) -> None:
        """The pass summary: its totals, the library's status for ``status`` and systemd, the log line."""
        summary, dry_run = run.summary, run.dry_run
        summary.pushed = run.counted["pushed"]
        summary.pulled = run.counted["pulled"]
        summary.conflicts = run.counted["conflicts"]
        summary.deleted = run.counted["deleted"]
        summary.moved = run.counted["moved"]
        summary.folders = run.counted["folders"]
        summary.errors = len(summary.failures)
        summary.duration_ms = round((time.monotonic() - started) * 1000, 1)
        conflicts_before = int((await self.store.get_status(self.lib)).get("conflicts_total", "0"))
        async with self.store.transaction(self.lib) as tx:
            if not dry_run:
                await tx.set_status("last_pass", datetime.now().astimezone().isoformat(timespec="seconds"))
            await tx.set_status("gate", "; ".join(summary.gate_reasons))
            shown = sorted(self.unsyncable)
            await tx.set_status("unsyncable", json.dumps({"count": len(shown), "paths": shown[:100]}) if shown else "")
            await tx.set_status("gate_counts", json.dumps(vars(summary.gate_counts)) if summary.gate_counts else "")
            if summary.conflicts and not dry_run:
                await tx.set_status("conflicts_total", str(conflicts_before + summary.conflicts))
        log.info(
            "pass",
            pushed=summary.pushed,
            pulled=summary.pulled,
            conflicts=summary.conflicts,
            deleted=summary.deleted,
            moved=summary.moved,
            folders=summary.folders,
            skipped=summary.skipped,
            held=summary.held,
            errors=summary.errors,
            bytes_up=summary.bytes_up,
            bytes_down=summary.bytes_down,
            rounds=summary.rounds,
            duration_ms=summary.duration_ms,
            dry_run=dry_run,
        )


@dataclass
class _Pass:
    """What one pass carries from stage to stage."""

    marker_present: bool
    dry_run: bool
    confirm_deletes: bool
    summary: PassSummary = field(default_factory=PassSummary)
    release: Release | None = None  # the operator's release-gate request, if one waits
    left_out: set[str] = field(default_factory=set)  # paths no longer acted on: failed, unsupported, held...
    counted: Counter[str] = field(default_factory=Counter)  # done actions by their word in the pass summary


def _work(run: _Pass, gate: GateResult) -> list[Action]:
    """What a round carries out: the allowed actions but skips, and nothing under a path the pass left
    out. What lies under a held path waits with it: an upload into a folder whose place a held delete of a
    remote file was to clear would be refused in every round (it spent the whole pass)."""
    return [a for a in gate.allowed if not isinstance(a, Skip) and not _within(a.path, run.left_out)]


def _tally(run: _Pass, report: ExecutionReport) -> None:
    """Count a round's outcome into the pass; what failed or cannot be done is left out from now on."""
    summary = run.summary
    for action in report.done:
        run.counted[_counted_as(action)] += 1
    for outcome, actions in (
        ("done", report.done),
        ("replanned", report.replanned),
        ("failed", [a for a, _ in report.failed]),
        ("unsupported", [a for a, _ in report.unsupported]),
    ):
        summary.outcomes.update((a.kind.value, outcome) for a in actions)
    summary.bytes_up += report.bytes_up
    summary.bytes_down += report.bytes_down
    summary.skipped += len(report.unsupported)
    summary.unsupported += [(action.path, reason) for action, reason in report.unsupported]
    for action, _reason in report.unsupported:
        run.left_out.add(action.path)  # nothing more to try for it in this pass
    for action, message in report.failed:
        run.left_out.add(action.path)
        summary.failures.append((action.path, message))


def _both(first: ProgressCallback | None, second: ProgressCallback | None) -> ProgressCallback | None:
    """One callback calling both (either may be None)."""
    if first is None or second is None:
        return first or second

    def call(action: Action, moved: int) -> None:
        first(action, moved)
        second(action, moved)

    return call
