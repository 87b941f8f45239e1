"""The randomized end-to-end simulation (issue 7 §2), in-process and seeded.

One run: a provider's sandbox served on 127.0.0.1 in this event loop, a real SQLite state store and a
real local folder in tmp, and the real engine (``LibrarySync`` over the real provider client, wrapped
in :class:`CrashingProvider`). ``random.Random(seed)`` drives a loop that mutates the local side (create,
edit, truncate, delete, rename, move, mkdir/rmdir, empty files, NFD and non-ASCII names, names that
differ only in case, the same edit on both sides) and the remote side (through the sandbox backend's
helpers), runs passes, crashes some of them (a cancel at a chosen provider call or chunk — before the
request or right after the server answered — or at a random short deadline) and restarts the engine
on the same store file and disk with new instances, and edits local files while a pass is running.

When the loop ends the engine runs passes until it plans nothing; then the invariants are checked
(:mod:`tests.simulation.invariants`). A failure raises :class:`SimFailure` with the seed, the problems
and the trace; ``pytest tests/simulation --seed N`` replays it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import structlog
import structlog.testing

from daemon.config import LibraryConfig, RemoteConfig
from daemon.control import ControlDir
from daemon.local import marker
from daemon.local.source import UploadSource
from daemon.providers.base import Provider
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.cliniko_backend import Unprocessable
from daemon.sandbox.faults import BEFORE_KINDS, TRANSIENT_KINDS, FaultPlan
from daemon.sandbox.middleware import ApiError
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.state.lock import StateLock
from daemon.state.store import StateStore
from daemon.sync.guard import OVERWRITE_PERCENT_FLOOR, overwrites_remote
from daemon.sync.library import LibrarySync, LocalRootMissing, PassSummary
from daemon.vocab import ActionKind, Direction, ProviderError
from tests.simulation.remotes import ADAPTERS, ROOT, Entry, SimRemote
from tests.simulation.world import Figures, Ledger, Trace, local_files, local_trash, md5, nfc

log = structlog.get_logger(__name__)

FAST_RETRY = RetryPolicy(attempts=4, base=0.005, cap=0.02)
PROVIDERS = ("coredata", "timetap", "cliniko", "coreplus")
SETTLE_PASSES = 10


class SimFailure(AssertionError):
    """A seed broke an invariant (or the engine raised something it must not)."""

    figures: Figures | None = None


class _Crash:
    """Where the pass in flight is cut: after ``at`` counted await points (provider calls, listing pages,
    download chunks), before the call or right after the server answered."""

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.at: int | None = None
        self.edit_at: int | None = None
        self.points = 0
        self.fired = False
        self.no_after: frozenset[str] = frozenset()


class CrashingProvider:
    """Wraps a provider: counts await points and cancels the pass at the chosen one; checks every upload
    for a duplicate (a live remote entry with the same parent, name and content already exists)."""

    def __init__(self, inner: Provider, sim: Simulation) -> None:
        self._inner = inner
        self._sim = sim
        self.name = inner.name
        self.capabilities = inner.capabilities

    @property
    def root_id(self) -> str:
        return self._inner.root_id

    async def _point(self, what: str, *, after: bool) -> None:
        crash = self._sim.crash
        if after and what in crash.no_after:
            return
        crash.points += 1
        if crash.edit_at is not None and crash.points == crash.edit_at:
            self._sim.mid_pass_edit(what)
        if crash.at is not None and crash.points >= crash.at and not crash.fired and crash.scope is not None:
            crash.fired = True
            self._sim.trace.add(f"CRASH {'after' if after else 'before'} {what} (point {crash.points})")
            crash.scope.cancel()
            await anyio.lowlevel.checkpoint()

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if attr in ("list_files", "list_changed"):

            async def pages(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                await self._point(attr, after=False)
                async for page in target(*args, **kwargs):
                    yield page
                    await self._point(attr + "_page", after=True)

            return pages
        if not callable(target) or attr == "aclose":
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._point(attr, after=False)
            task = anyio.get_current_task().id
            if attr in RACED_CALLS:
                self._sim.maybe_race(attr)
            self._sim.windows.discard(task)  # this task's next request after a check ends its window
            if attr == "upload":
                await self._sim.check_upload(args[0], args[1], args[2])
            if attr == "download":
                args = (args[0], _CountingSink(args[1], self), *args[2:])
            result = await target(*args, **kwargs)
            if attr == "current":
                self._sim.windows.add(task)
            await self._point(attr, after=True)
            return result

        return call


# calls before which a colleague's change may land (in a share of passes): the pre-action checks, the
# transfers and the destructive calls themselves (except inside a check's one-request window)
RACED_CALLS = frozenset({"current", "delete", "upload", "update", "move", "download"})


class _CountingSink:
    def __init__(self, inner: Callable[[bytes], Awaitable[None]], proxy: CrashingProvider) -> None:
        self.inner = inner
        self.proxy = proxy

    async def __call__(self, chunk: bytes) -> None:
        await self.proxy._point("download_chunk", after=False)
        await self.inner(chunk)

    async def reset(self) -> None:
        await self.inner.reset()  # type: ignore[attr-defined]


NAMES = ["notes", "report", "Data", "plan", "x", "café", "naïve", "日本語", "Ünïcødé", "ßtraße", "a b"]
# names the remote-name sanitiser would change (ordinary on Linux file servers): a pass must never rename
# them on disk once they are synced
ODD_NAMES = ["Q3?", "a:b", "star*", "pipe|x", 'say "hi"', "back\\slash", "trail.", "tab\there"]
EXTS = [".txt", ".md", ".bin", ""]
DIR_NAMES = ["docs", "Photos", "été", "sub", "Ärzte", "q"]


@dataclass(frozen=True)
class Gates:
    """The library's safety-gate limits: off (huge) in most seeds, small in a share of them."""

    delete_percent: float = 100.0
    delete_count: int = 1_000_000
    overwrite_percent: float = 100.0
    overwrite_count: int = 1_000_000

    @property
    def on(self) -> bool:
        return self.overwrite_count < 1_000_000

    @classmethod
    def draw(cls, rng: random.Random) -> Gates:
        if rng.random() >= 0.3:
            return cls()
        return cls(
            delete_percent=rng.choice([20.0, 50.0]),
            delete_count=rng.randint(1, 3),
            overwrite_percent=rng.choice([20.0, 50.0]),
            overwrite_count=rng.randint(1, 3),
        )


@dataclass
class Simulation:
    provider: str
    seed: int
    workdir: Path
    steps: int = 24
    crashes: bool = True
    faults: bool = True
    fault_rate: float = 0.06
    figures: Figures = field(default_factory=Figures)
    trace: Trace = field(default_factory=Trace)
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.root = self.workdir / "root"
        self.crash = _Crash()
        self.dup_uploads: list[str] = []
        self.counter = 0
        self.control = ControlDir(self.workdir / "state")
        self.gates = Gates.draw(self.rng)
        self.touched: set[str] = set()  # local paths changed since the last pass (what a watcher reports)
        self.problems: list[str] = []  # broken expectations found during the run (reported with the rest)
        self.remote_races = True
        self.used_names: set[str] = set()
        self.unsyncable: set[str] = set()  # paths the provider cannot hold (reported and skipped)
        self.renamed_ids: set[str] = set()  # remote ids the driver renamed or moved (a local rename may follow)
        self.logs: list[dict[str, Any]] = []
        self.logs_seen = 0
        self.second_writer_at = self.rng.randrange(self.steps) if self.rng.random() < 0.08 else None
        self.step_no = 0
        self.racing = False
        self.restarted = False
        # tasks between a pre-action check (``current``) and their next request: the one-request window
        # the README admits (TimeTap's DELETE takes no precondition), so no race is injected there
        self.windows: set[int] = set()
        self.adapter: SimRemote
        self.sandbox: RunningSandbox
        self.store: StateStore
        self.engine: LibrarySync
        self.http: HttpClient
        self.real_provider: Provider

    # -- set-up ------------------------------------------------------------------------------------
    def _config(self) -> LibraryConfig:
        return LibraryConfig(
            name="sim",
            provider=self.provider,
            local_path=self.root,
            remote=RemoteConfig(),
            direction=Direction.TWO_WAY if self.adapter.two_way else Direction.PUSH,
            max_delete_percent=self.gates.delete_percent,
            max_delete_count=self.gates.delete_count,
            max_overwrite_percent=self.gates.overwrite_percent,
            max_overwrite_count=self.gates.overwrite_count,
            # coreplus: one transfer at a time, so a crash "before a call" never cuts another upload in
            # flight between the server's answer and our commit (see _pass)
            concurrency=1 if self.provider == "coreplus" else self.rng.choice([1, 2, 4]),
        )

    async def _start_engine(self) -> None:
        # this engine stands for `libmirror run`: it holds the store's writer lock while it lives
        self.lock = StateLock.acquire(self.workdir / "state", "run")
        self.store = await StateStore.open(self.workdir / "state")
        self.lib = await self.store.library_id("sim")
        self.http = HttpClient(retry=FAST_RETRY)
        self.real_provider = self.adapter.build(self.http)
        proxy: Any = CrashingProvider(self.real_provider, self)
        self.engine = LibrarySync(self._config(), self.store, self.lib, proxy, control=self.control)

    async def _stop_engine(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.real_provider.aclose()
            await self.http.aclose()
            await self.store.close()
            self.lock.release()

    async def run(self) -> Figures:
        """Run the seed; raises SimFailure on a broken invariant. Returns this run's figures."""
        self.sandbox = await start_sandbox(
            self.provider, self.workdir / "sandbox", **ADAPTERS[self.provider].sandbox_options
        )
        self.adapter = ADAPTERS[self.provider](self.sandbox)
        self.adapter.setup()
        self.root.mkdir(parents=True)
        for top in self.adapter.top_names:
            (self.root / top).mkdir()
        self.trace.add(f"seed {self.seed} provider {self.provider}")
        try:
            await self._start_engine()
            try:
                # the engine's log lines are what `_check_renames` reads (the actions it took)
                with structlog.testing.capture_logs() as self.logs:
                    for _ in range(self.steps):
                        await self._step()
                    await self._settle()
                    from tests.simulation.invariants import check

                    problems = await check(self)
            finally:
                await self._stop_engine()
        finally:
            self.figures.faults = sum(self.sandbox.faults.counts.values())
            await self.sandbox.stop()
        self.figures.seeds = 1
        if problems:
            self.figures.failures = 1
            error = SimFailure(self.report(problems))
            error.figures = self.figures
            raise error
        return self.figures

    def report(self, problems: list[str]) -> str:
        return (
            f"simulation seed {self.seed} ({self.provider}) failed; replay: "
            f"pytest tests/simulation --seed {self.seed} --sim-steps {self.steps} -k {self.provider}\n"
            + "\n".join(f"- {p}" for p in problems)
            + "\ntrace:\n"
            + self.trace.render()
            + "\nthe engine's last log lines:\n"
            + "\n".join(_compact(e) for e in self.logs[-150:])
        )

    # -- the loop ----------------------------------------------------------------------------------
    async def _mapping(self) -> dict[str, str]:
        """The engine's view: library path → remote id (from the store's remote tree)."""
        from tests.simulation.invariants import _remote_rows

        return {path: rid for path, rid, _ in await _remote_rows(self)}

    async def _step(self) -> None:
        self.step_no += 1
        if self.step_no - 1 == self.second_writer_at:
            await self.second_writer()
        self.mapping = await self._mapping()
        if self.rng.random() < 0.04:
            await self.overwrite_all_local()
        elif self.adapter.two_way and self.adapter.remote_edit and self.rng.random() < 0.03:
            self.overwrite_all_remote()
        for _ in range(self.rng.randint(1, 3)):
            if self.adapter.two_way and self.rng.random() < 0.4:
                self.remote_op()
            else:
                self.local_op()
        if self.rng.random() < 0.7:
            await self._pass(crashy=self.crashes)
        self._observe()

    def _observe(self) -> None:
        self.ledger.observe(local_files(self.root), "local")
        self.ledger.observe({p: e.content or b"" for p, e in self.adapter.paths().items()}, "remote")

    async def _pass(self, *, crashy: bool, full: bool | None = None, confirm: bool = False) -> PassSummary | None:
        crash = self.crash = _Crash()
        if self.provider == "coreplus":
            # coreplus cannot list: an upload whose answer is lost cannot be recognised (API limit)
            crash.no_after = frozenset({"upload"})
        mode = self.rng.random() if crashy else 1.0
        if self.faults:
            # a seeded transient mix while the driver runs; none while the engine settles
            rate = self.fault_rate if crashy else 0.0
            kinds = TRANSIENT_KINDS
            if self.provider == "coreplus":
                # coreplus cannot list: an upload whose answer is lost after the server stored it cannot be
                # recognised, so it is sent again (at-least-once is all that API allows; see README)
                kinds = tuple(k for k in TRANSIENT_KINDS if k in BEFORE_KINDS)
            seed = self.rng.randrange(1 << 30)
            self.sandbox.faults.plan = FaultPlan.mix(rate, kinds, seed=seed, retry_after=0.01)
        with anyio.CancelScope() as scope:
            crash.scope = scope
            if mode < 0.25:
                crash.at = self.rng.randint(1, 30)
            elif mode < 0.33 and self.provider != "coreplus":
                # (coreplus: a deadline may fall between the server's answer and our commit, see above)
                scope.deadline = anyio.current_time() + self.rng.uniform(0.0, 0.15)
            if crashy and self.rng.random() < 0.15:
                crash.edit_at = self.rng.randint(1, 20)
            full_remote = full if full is not None else self.rng.random() < 0.5
            # a watcher-triggered pass: no poll, only the paths the watcher reported; the remote tree may
            # be as old as the last poll (the window the pre-action checks exist for)
            watcher = crashy and bool(self.touched) and not self.restarted and self.rng.random() < 0.3
            scan: bool | list[str] = sorted(self.touched) if watcher else True
            self.restarted = False
            race = crashy and self.remote_races and self.adapter.two_way and self.rng.random() < 0.2
            self.racing = crashy and self.remote_races and self.adapter.two_way
            self.touched = set()
            what = f"watcher paths={len(scan)}" if watcher else f"full_remote={full_remote}"
            self.trace.add(f"pass {what} confirm={confirm}")

            def planned(work: list[Any]) -> None:
                if race and work:  # a colleague's change lands between the plan and its actions
                    self.trace.add("  REMOTE RACE after the plan:")
                    self.figures.remote_races += 1
                    self.remote_op()

            try:
                summary = await self.engine.run_pass(
                    full_remote=full_remote,
                    confirm_deletes=confirm,
                    poll_remote=not watcher,
                    scan_local=scan,
                    on_plan=planned,
                )
            except (ProviderError, LocalRootMissing) as exc:
                self.trace.add(f"pass failed: {type(exc).__name__}: {exc}")
                if isinstance(scan, list):
                    self.touched |= set(scan)  # the runner keeps the work of a failed pass for the next
                return None
            finally:
                self.racing = False
        if watcher:
            self.figures.watcher_passes += 1
        if scope.cancelled_caught:
            if not crash.fired:
                self.trace.add("CRASH at deadline")
            self.figures.crashes += 1
            self.restarted = True  # a new daemon session starts with full observations of both sides
            await self._stop_engine()
            await self._start_engine()
            return None
        await self._check_renames()
        self.unsyncable.update(path for path, _why in summary.unsupported)
        self.figures.passes += 1
        if summary.held:
            self.figures.gates_held += 1
        self.figures.actions += (
            summary.pushed + summary.pulled + summary.conflicts + summary.deleted + summary.moved + summary.folders
        )
        self.trace.add(
            f"  -> pushed {summary.pushed} pulled {summary.pulled} conflicts {summary.conflicts} "
            f"deleted {summary.deleted} moved {summary.moved} errors {summary.errors} held {summary.held}"
            + "".join(f"\n     failure {p}: {m}" for p, m in summary.failures)
        )
        return summary

    async def _settle(self) -> None:
        """Passes without crashes until the engine plans nothing; the operator confirms held deletes."""
        confirm = False
        for _ in range(SETTLE_PASSES):
            summary = await self._pass(crashy=False, full=True, confirm=confirm)
            if summary is None:
                continue
            if summary.gate_reasons and not confirm:
                self.figures.gate_confirmations += 1
                if self.rng.random() < 0.5:
                    # `libmirror release-gate sim`: the next pass takes exactly these held changes
                    self.control.request_release("sim", "; ".join(summary.gate_reasons))
                    self.trace.add("operator: release-gate")
                else:
                    confirm = True
                    self.trace.add("operator: sync --once --confirm-deletes")
                continue
            work = [a for a in summary.planned if a.kind is not ActionKind.SKIP]
            if not work and not summary.errors and not summary.waiting:
                return
            if summary.errors or summary.waiting:
                await anyio.sleep(1.1)  # e.g. a presigned URL the sandbox expired: the next one is new

    # -- helpers for invariants --------------------------------------------------------------------
    async def check_upload(self, parent_id: str, name: str, source: UploadSource) -> None:
        """Before an upload: the same content must not already be live under that name and parent
        (entries the engine maps to another local name, e.g. a case clash, are another path)."""
        mapped_name = {rid: path.rpartition("/")[2] for path, rid in (await self._mapping()).items()}
        try:
            data = source.path.read_bytes()
        except OSError:
            return
        if not data:
            return
        parent = ROOT if parent_id == self.real_provider.root_id else parent_id.rpartition(":")[2]
        for e in self.adapter.live():
            if e.id in mapped_name and mapped_name[e.id] != nfc(name):
                continue
            if not e.is_dir and e.parent == parent and nfc(e.name) == nfc(name) and e.content == data:
                self.dup_uploads.append(f"upload of {name!r} (md5 {md5(data)}) while remote {e.id} holds it already")
                self.trace.add(f"DUPLICATE upload {name!r} into {parent}")

    # -- random content and names ------------------------------------------------------------------
    def content(self) -> bytes:
        self.counter += 1
        if self.rng.random() < 0.08:
            return b""
        size = self.rng.choice([1, 10, 100, 700, 3000])
        body = bytes(self.rng.randrange(32, 127) for _ in range(size))
        return f"{self.seed}.{self.counter}|".encode() + body

    def _name(self, taken: list[str], *, folder: bool = False) -> str | None:
        taken_nfc = {nfc(t) for t in taken}
        for _ in range(10):
            roll = self.rng.random()
            if taken and roll < 0.12:
                name = self.rng.choice(taken).swapcase()  # differs only in case from a sibling
            elif self.used_names and roll < 0.2:
                name = self.rng.choice(sorted(self.used_names)).swapcase()  # a case variant from either side
            elif roll < 0.28:
                name = self.rng.choice(ODD_NAMES) + self.rng.choice(["", ".txt"])
            elif roll < 0.34:
                # a folder's name for a file or the other way round: kind clashes between the sides
                name = self.rng.choice(NAMES if folder else DIR_NAMES)
            elif folder:
                name = self.rng.choice(DIR_NAMES) + self.rng.choice(["", "", " 2", "-b"])
            else:
                name = self.rng.choice(NAMES) + self.rng.choice(["", "", "-1", " (x)", "-2"]) + self.rng.choice(EXTS)
            if self.rng.random() < 0.2:
                name = unicodedata.normalize("NFD", name)
            if nfc(name) not in taken_nfc and name.strip() and name != MARKER_NAME:
                if _utf8(name):  # a case variant of a name that is not UTF-8 stays local
                    self.used_names.add(name)
                return name
        return None

    # -- local side --------------------------------------------------------------------------------
    def _disk(self) -> tuple[list[str], list[str]]:
        """Actual relative paths (as on disk, not normalised) of local files and folders."""
        files: list[str] = []
        dirs: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and MARKER_NAME in dirnames:
                dirnames.remove(MARKER_NAME)
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root)
            dirs += [(rel / d).as_posix() for d in dirnames]
            files += [(rel / f).as_posix() for f in sorted(filenames)]
        return files, dirs

    def _file_dirs(self, dirs: list[str]) -> list[str]:
        """Folders the driver may put files into."""
        a = self.adapter
        if a.fixed_top:
            tops = set(a.top_names)
            return [d for d in dirs if d.split("/")[0] in tops and (a.subdirs or "/" not in d)]
        return ["", *dirs] if a.root_files else dirs

    def _mutable_dirs(self, dirs: list[str]) -> list[str]:
        """Folders the driver may remove or rename (never a patient's or client's folder)."""
        if not self.adapter.subdirs:
            return []
        if self.adapter.fixed_top:
            return [d for d in dirs if "/" in d]
        return dirs

    def _children(self, rel: str) -> list[str]:
        path = self.root / rel if rel else self.root
        return [n for n in os.listdir(path) if n != MARKER_NAME]

    def _release_local(self, rel: str) -> None:
        try:
            self.ledger.release((self.root / rel).read_bytes())
        except OSError:
            pass

    def local_op(self) -> None:
        files, dirs = self._disk()
        file_dirs = self._file_dirs(dirs)
        mutable = self._mutable_dirs(dirs)
        choices = ["create"] * 5 + ["edit"] * 3 + ["truncate", "delete", "delete", "rename", "move"]
        if self.adapter.subdirs:
            choices += ["mkdir", "rmdir", "rename_dir"]
        if self.adapter.two_way:
            choices += ["same_edit"]
        for _ in range(8):
            op = self.rng.choice(choices)
            if self._local(op, files, file_dirs, mutable):
                self.figures.operations += 1
                return

    def _local(self, op: str, files: list[str], file_dirs: list[str], mutable: list[str]) -> bool:
        rng = self.rng
        if op == "create" and file_dirs:
            parent = rng.choice(file_dirs)
            name = self._name(self._children(parent))
            if name is not None and rng.random() < 0.04:
                # a name copied from an old system: not UTF-8 (the engine skips it and reports it)
                name = os.fsdecode(b"old-\x81\xfe-" + os.fsencode(name))
            if name is None:
                return False
            rel = f"{parent}/{name}" if parent else name
            data = self.content()
            self._write_local(rel, data)
            self.trace.add(f"local create {rel!r} ({len(data)} bytes, md5 {md5(data)[:8]})")
            return True
        if op in ("edit", "truncate") and files:
            rel = rng.choice(files)
            old = (self.root / rel).read_bytes()
            data = old[: len(old) // 2] if op == "truncate" else self.content()
            self.ledger.release(old)
            self._write_local(rel, data)
            self.trace.add(f"local {op} {rel!r} ({len(data)} bytes, md5 {md5(data)[:8]})")
            return True
        if op == "delete" and files:
            rel = rng.choice(files)
            self._release_local(rel)
            (self.root / rel).unlink()
            self.touched.add(rel)
            self.trace.add(f"local delete {rel!r}")
            return True
        if op in ("rename", "move") and files and file_dirs:
            rel = rng.choice(files)
            parent = rel.rpartition("/")[0] if op == "rename" else rng.choice(file_dirs)
            if op == "rename" and parent not in file_dirs:
                return False
            name = self._name(self._children(parent))
            if name is None:
                return False
            dest = f"{parent}/{name}" if parent else name
            os.rename(self.root / rel, self.root / dest)
            self.touched |= {rel, dest}
            self.trace.add(f"local {op} {rel!r} -> {dest!r}")
            return True
        if op == "mkdir":
            parents = [
                p
                for p in self._file_dirs(mutable + list(self.adapter.top_names))
                if p != "" or not self.adapter.fixed_top
            ]
            parents = parents or ([""] if not self.adapter.fixed_top else [])
            if not parents:
                return False
            parent = rng.choice(parents)
            if parent.count("/") >= 2:
                return False
            name = self._name(self._children(parent), folder=True)
            if name is None:
                return False
            rel = f"{parent}/{name}" if parent else name
            (self.root / rel).mkdir()
            self.touched.add(rel)
            self.trace.add(f"local mkdir {rel!r}")
            return True
        if op == "rmdir" and mutable:
            rel = rng.choice(mutable)
            if rng.random() < 0.3:
                for f in local_files(self.root / rel).values():
                    self.ledger.release(f)
                shutil.rmtree(self.root / rel)
                self.touched.add(rel)
                self.trace.add(f"local rm -r {rel!r}")
                return True
            if self._children(rel):
                return False
            (self.root / rel).rmdir()
            self.touched.add(rel)
            self.trace.add(f"local rmdir {rel!r}")
            return True
        if op == "rename_dir" and mutable:
            rel = rng.choice(mutable)
            parent = rel.rpartition("/")[0]
            name = self._name(self._children(parent), folder=True)
            if name is None:
                return False
            dest = f"{parent}/{name}" if parent else name
            os.rename(self.root / rel, self.root / dest)
            self.touched |= {rel, dest}
            self.trace.add(f"local rename dir {rel!r} -> {dest!r}")
            return True
        if op == "same_edit":
            live = {e.id: e for e in self.adapter.live() if not e.is_dir}
            mapping = getattr(self, "mapping", {})
            both = [f for f in files if mapping.get(nfc(f)) in live]
            if not both:
                return False
            rel = rng.choice(both)
            data = self.content()
            entry = live[mapping[nfc(rel)]]
            if not self.adapter.remote_edit and self.provider != "cliniko":
                return False
            self._release_local(rel)
            self._release_remote(entry)
            self._write_local(rel, data)
            self.adapter.edit(entry, data)
            self.trace.add(f"same edit on both sides {rel!r} (md5 {md5(data)[:8]})")
            return True
        return False

    async def _check_renames(self) -> None:
        """No pass renames a local file or folder that neither side renamed: every ``move_local`` the
        engine logged must follow a remote rename or move made by the driver."""
        new, self.logs_seen = self.logs[self.logs_seen :], len(self.logs)
        moves = [e for e in new if e.get("event") == "action" and e.get("action") == "move_local"]
        if not moves:
            return
        mapping = await self._mapping()
        for e in moves:
            rid = mapping.get(e["path"])
            # (None: the item moved on since, e.g. renamed again while a crashed pass ran; not decidable)
            if rid is not None and rid not in self.renamed_ids:
                self.problems.append(
                    f"renamed behind the user's back: {e.get('src')!r} -> {e['path']!r} ({e.get('reason')})"
                )

    async def second_writer(self) -> None:
        """A `libmirror sync --once` on the same library and state store, started while a pass of this
        engine (the running service) is under way: it must refuse with exit 4 and touch nothing."""
        config = self.workdir / "second.toml"
        remote = "\n".join(f"{k} = {json.dumps(v)}" for k, v in self.sandbox.remote.items())
        config.write_text(
            f'state_dir = "{self.workdir / "state"}"\nallow_root = true\n\n[[library]]\nname = "sim"\n'
            f'provider = "{self.provider}"\nlocal_path = "{self.root}"\n\n[library.remote]\n{remote}\n'
        )
        config.chmod(0o600)
        self.trace.add("SECOND WRITER: libmirror sync --once beside the running engine")
        result: list[Any] = []

        async def second() -> None:
            command = [str(Path(sys.executable).with_name("libmirror")), "--config", str(config), "sync", "--once"]
            result.append(await anyio.run_process(command, check=False))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await self._pass(crashy=False)
        done = result[0]
        self.figures.second_writers += 1
        if done.returncode != 4 or b"in use by" not in done.stderr:
            self.problems.append(f"a second writer was not refused: exit {done.returncode}: {done.stderr[-300:]!r}")

    async def overwrite_all_local(self) -> None:
        """Ransomware or a bad script rewrites every local file; the next pass must hold the uploads
        over synced content when they pass the overwrite limits, and the originals must still be on
        the server after it. Then the user owns the change (the originals are released)."""
        files, _ = self._disk()
        if not files:
            return
        old = {rel: (self.root / rel).read_bytes() for rel in files}
        for rel in files:
            self._write_local(rel, b"ENCRYPTED|" + self.content())
        self.figures.mass_overwrites += 1
        self.trace.add(f"local OVERWRITE ALL: {len(files)} files")
        summary = await self._pass(crashy=False, full=True)
        if summary is not None:
            planned = [a for a in summary.planned if overwrites_remote(a)]
            synced = (await self.store.counts(self.lib))["synced_files"]
            n, g = len(planned), self.gates
            over = n > g.overwrite_count or (
                n >= OVERWRITE_PERCENT_FLOOR and synced > 0 and n * 100 > g.overwrite_percent * synced
            )
            if over and not summary.held:
                self.problems.append(f"gate: {n} uploads over synced content passed the overwrite gate")
            elif over and self.adapter.two_way:
                live = {md5(e.content or b"") for e in self.adapter.live() if not e.is_dir}
                gone = [a.path for a in planned if a.synced and a.synced.digest and a.synced.digest not in live]
                if gone:
                    self.problems.append(f"gate held, yet the originals of {gone[:5]} left the server")
        for data in old.values():
            self.ledger.release(data)

    def overwrite_all_remote(self) -> None:
        """A script rewrites every remote file (what a local copy still holds is not lost)."""
        entries = [(p, e) for p, e in self.adapter.paths().items() if not e.is_dir]
        for path, entry in entries:
            data = b"REWRITTEN|" + self.content()
            self._release_remote(entry)
            try:
                self.adapter.edit(entry, data)
            except (ApiError, Unprocessable):  # e.g. Cliniko re-adding under a name it refuses
                continue
            self.ledger.observe({path: data}, "remote")
        self.figures.mass_overwrites += 1
        self.trace.add(f"remote OVERWRITE ALL: {len(entries)} files")

    def _write_local(self, rel: str, data: bytes) -> None:
        """A user's write: the version is required from this moment on (not only from the next
        observation point), and a watcher would report the path."""
        (self.root / rel).write_bytes(data)
        self.ledger.observe({rel: data}, "local")
        self.touched.add(rel)

    def maybe_race(self, what: str) -> None:
        """Before a provider call of a racing pass: now and then a colleague's change lands here."""
        if self.racing and not self.windows and self.rng.random() < 0.05:
            self.trace.add(f"  REMOTE RACE before {what}:")
            self.figures.remote_races += 1
            self.remote_op()

    def mid_pass_edit(self, what: str) -> None:
        """A local edit while the engine is half-way through a pass (e.g. during an upload)."""
        files, _ = self._disk()
        if not files:
            return
        rel = self.rng.choice(files)
        data = self.content()
        self._release_local(rel)
        self._write_local(rel, data)
        self.figures.mid_pass_edits += 1
        self.trace.add(f"MID-PASS local edit {rel!r} at {what} (md5 {md5(data)[:8]})")

    # -- remote side -------------------------------------------------------------------------------
    def _release_remote(self, entry: Entry) -> None:
        """A remote overwrite/delete destroys a version only when no local copy exists."""
        if entry.content is None:
            return
        local = {md5(c) for c in local_files(self.root).values()} | {md5(c) for c in local_trash(self.root)}
        if md5(entry.content) not in local:
            self.ledger.release(entry.content)

    def remote_op(self) -> None:
        a = self.adapter
        choices = ["create"] * 4 + ["edit"] * 3 + ["delete"] * 2
        if a.remote_rename:
            choices += ["rename", "move"]
        if a.remote_mkdir:
            choices += ["mkdir", "rmdir", "rename_dir"]
        for _ in range(8):
            op = self.rng.choice(choices)
            try:
                done = self._remote(op)
            except (ApiError, Unprocessable) as exc:  # a name or state this server refuses
                self.trace.add(f"remote {op} refused by the server: {exc}")
                done = False
            if done:
                self.figures.operations += 1
                return

    def _remote(self, op: str) -> bool:
        rng, a = self.rng, self.adapter
        paths = a.paths()
        files = sorted(p for p, e in paths.items() if not e.is_dir)
        dirs = sorted(p for p, e in paths.items() if e.is_dir)
        tops = set(a.top_names)
        if a.fixed_top:
            file_dirs = [d for d in dirs if d.split("/")[0] in tops and (a.subdirs or "/" not in d)]
            mutable = [d for d in dirs if "/" in d] if a.subdirs else []
        else:
            file_dirs = ["", *dirs] if a.root_files else dirs
            mutable = dirs

        def pid(path: str) -> str:
            return ROOT if path == "" else paths[path].id

        def names_in(path: str) -> list[str]:
            parent = pid(path)
            return [e.name for e in a.live() if e.parent == parent]

        if op == "create" and file_dirs:
            parent = rng.choice(file_dirs)
            name = self._name(names_in(parent))
            if name is None:
                return False
            data = self.content()
            a.create(pid(parent), name, data)
            self.ledger.observe({name: data}, "remote")
            self.trace.add(f"remote create {parent + '/' if parent else ''}{name!r} (md5 {md5(data)[:8]})")
            return True
        if op == "edit" and files:
            path = rng.choice(files)
            data = self.content()
            self._release_remote(paths[path])
            a.edit(paths[path], data)
            self.ledger.observe({path: data}, "remote")
            self.trace.add(f"remote edit {path!r} (md5 {md5(data)[:8]})")
            return True
        if op == "delete" and files:
            path = rng.choice(files)
            self._release_remote(paths[path])
            if isinstance(a, _soft_delete_type()) and rng.random() < 0.3:
                a.soft_delete(paths[path])
                self.trace.add(f"remote soft-delete {path!r}")
            else:
                a.delete(paths[path])
                self.trace.add(f"remote delete {path!r}")
            return True
        if op in ("rename", "move") and files and file_dirs:
            path = rng.choice(files)
            parent = path.rpartition("/")[0] if op == "rename" else rng.choice(file_dirs)
            if parent not in file_dirs:
                return False
            name = self._name(names_in(parent))
            if name is None:
                return False
            a.rename(paths[path], pid(parent), name)
            self.renamed_ids.add(paths[path].id)
            self.trace.add(f"remote {op} {path!r} -> {parent + '/' if parent else ''}{name!r}")
            return True
        if op == "mkdir":
            parents = [d for d in file_dirs if d.count("/") < 2]
            if not parents:
                return False
            parent = rng.choice(parents)
            name = self._name(names_in(parent), folder=True)
            if name is None:
                return False
            a.mkdir(pid(parent), name)
            self.trace.add(f"remote mkdir {parent + '/' if parent else ''}{name!r}")
            return True
        if op == "rmdir" and mutable:
            path = rng.choice(mutable)
            if any(e.parent == paths[path].id for e in a.live()):
                return False
            try:
                a.rmdir(paths[path])
            except ApiError:  # e.g. TimeTap: a soft-deleted child still blocks the folder's delete
                return False
            self.trace.add(f"remote rmdir {path!r}")
            return True
        if op == "rename_dir" and mutable:
            path = rng.choice(mutable)
            parent = path.rpartition("/")[0]
            name = self._name(names_in(parent), folder=True)
            if name is None:
                return False
            a.rename(paths[path], pid(parent), name)
            self.renamed_ids.add(paths[path].id)
            self.trace.add(f"remote rename dir {path!r} -> {name!r}")
            return True
        return False


MARKER_NAME = marker.MARKER


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compact(event: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v!r}" for k, v in event.items() if k not in ("event", "log_level"))
    return f"  {event.get('log_level', '')[:4]} {event.get('event')} {rest}"[:400]


def _soft_delete_type() -> type:
    from tests.simulation.remotes import TimeTapRemote

    return TimeTapRemote


async def run_seed(provider: str, seed: int, workdir: Path, **options: Any) -> Figures:
    """Run one seed in ``workdir`` (must not exist yet or be empty)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return await Simulation(provider, seed, workdir, **options).run()
