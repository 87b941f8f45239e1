"""Check, then act on the remote side: a change that lands between the plan and the action it would
destroy is never deleted or replaced (DESIGN rules 1 and 2; ``daemon/sync/retire.py``).

Each test makes a colleague's edit land in one window: after the plan (``on_plan``), during the
replacement upload (before the delete half), or while a replacement was cut short by a stop (before the
recovery). Real sandboxes in this event loop, a real state store and a real local folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.config import LibraryConfig, RemoteConfig
from daemon.providers.base import Provider
from daemon.providers.fresh_reads import FreshReads
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync, PassSummary
from daemon.vocab import Action, Direction
from tests.simulation.remotes import ADAPTERS, ROOT, SimRemote

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=2, base=0.005, cap=0.01)
FILLERS = {f"other-{n}.txt": f"another file {n}".encode() for n in range(3)}


class Stop(BaseException):
    """The process dies here."""


class Hooked:
    """The real provider with hooks: ``before_upload`` runs inside the upload call (after the
    pre-upload check), ``stop_on_delete`` cuts the run at the delete half of a replacement."""

    def __init__(self, real: Provider, before_upload: Callable[[], object] | None, stop_on_delete: bool) -> None:
        self.real = real
        self.before_upload = before_upload
        self.stop_on_delete = stop_on_delete

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def upload(self, *args: Any) -> Any:
        if self.before_upload is not None:
            self.before_upload()
        return await self.real.upload(*args)

    async def delete(self, item: Any) -> None:
        if self.stop_on_delete:
            raise Stop
        await self.real.delete(item)


class World:
    def __init__(self, provider: str, sandbox: RunningSandbox, tmp: Path) -> None:
        self.provider = provider
        self.sandbox = sandbox
        self.adapter: SimRemote = ADAPTERS[provider](sandbox)
        self.adapter.setup()
        self.root = tmp / "mirror"
        self.state = tmp / "state"

    def live(self) -> dict[str, bytes]:
        return {p: e.content or b"" for p, e in self.adapter.paths().items() if not e.is_dir and p not in FILLERS}

    def edit_remote(self, path: str, data: bytes) -> None:
        self.adapter.edit(self.adapter.paths()[path], data)

    def local(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in self.root.rglob("*")
            if p.is_file() and ".libmirror" not in p.relative_to(self.root).parts and p.name not in FILLERS
        }

    async def sync(
        self,
        *,
        on_plan: Callable[[list[Action]], None] | None = None,
        before_upload: Callable[[], object] | None = None,
        stop_on_delete: bool = False,
    ) -> PassSummary | None:
        """One pass of a new engine on the same store and folder; its summary (None: it was stopped)."""
        store = await StateStore.open(self.state)
        http = HttpClient(retry=FAST)
        real = self.adapter.build(http)
        config = LibraryConfig(
            name="lib",
            provider=self.provider,
            local_path=self.root,
            remote=RemoteConfig(),
            direction=Direction.TWO_WAY,
            concurrency=1,
        )
        provider: Any = Hooked(real, before_upload, stop_on_delete)
        engine = LibrarySync(config, store, await store.library_id("lib"), provider)
        summary: PassSummary | None = None
        try:
            summary = await engine.run_pass(on_plan=on_plan)
        except* Stop:
            pass
        finally:
            await real.aclose()
            await http.aclose()
            await store.close()
        return summary


@pytest.fixture(params=["coredata", "timetap"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    sandbox = await start_sandbox(request.param, tmp_path / "sandbox")
    w = World(request.param, sandbox, tmp_path)
    for name, data in FILLERS.items():
        w.adapter.create(ROOT, name, data)
    w.adapter.create(ROOT, "report.txt", b"version one")
    await w.sync()
    assert w.local() == {"report.txt": b"version one"}
    try:
        yield w
    finally:
        await sandbox.stop()


async def test_edit_after_the_plan_is_pulled_not_deleted(world: World) -> None:
    (world.root / "report.txt").unlink()
    await world.sync(on_plan=lambda work: world.edit_remote("report.txt", b"version two, by a colleague"))
    assert world.live() == {"report.txt": b"version two, by a colleague"}
    assert world.local() == {"report.txt": b"version two, by a colleague"}


async def test_edit_after_the_plan_makes_a_conflict_copy_not_an_overwrite(world: World) -> None:
    (world.root / "report.txt").write_bytes(b"version two, local")
    await world.sync(on_plan=lambda work: world.edit_remote("report.txt", b"version two, by a colleague"))
    assert sorted(world.live().values()) == [b"version two, by a colleague", b"version two, local"]
    assert world.live()["report.txt"] == b"version two, by a colleague"
    assert world.local() == world.live()


async def test_a_file_added_to_a_folder_after_the_plan_is_pulled_not_called_unsupported(world: World) -> None:
    """The folder is deleted locally; a colleague puts a file into it after the plan. The server refuses
    to remove the folder (HTTP 409: not empty): the remote tree was stale. The pass lists again and pulls
    the file (the change wins over the delete); the folder was never a thing the API cannot do."""
    world.adapter.mkdir(ROOT, "docs")
    await world.sync()
    assert (world.root / "docs").is_dir()
    (world.root / "docs").rmdir()
    docs = world.adapter.paths()["docs"].id
    summary = await world.sync(on_plan=lambda work: world.adapter.create(docs, "new.txt", b"added by a colleague"))
    assert summary is not None and summary.unsupported == [] and summary.failures == []
    assert world.live() == {"report.txt": b"version one", "docs/new.txt": b"added by a colleague"}
    assert world.local() == world.live()


async def test_a_folder_kept_for_items_no_listing_shows_is_reported_after_one_more_look(tmp_path: Path) -> None:
    """TimeTap keeps soft-deleted items in their folder, out of every listing: the folder cannot be
    removed. Refused once, the pass lists in full and tries once more, then reports the folder as kept
    instead of asking again in every round."""
    sandbox = await start_sandbox("timetap", tmp_path / "sandbox")
    try:
        w = World("timetap", sandbox, tmp_path)
        for name, data in FILLERS.items():  # (the gates hold a pass that would delete every synced file)
            w.adapter.create(ROOT, name, data)
        w.adapter.mkdir(ROOT, "old")
        old = w.adapter.paths()["old"].id
        w.adapter.create(old, "gone.txt", b"deleted in TimeTap's own UI")
        await w.sync()
        w.adapter.soft_delete(w.adapter.paths()["old/gone.txt"])
        await w.sync()  # the file is gone remotely: trashed locally, the folder stays on both sides
        assert w.local() == {} and (w.root / "old").is_dir()
        (w.root / "old").rmdir()
        w.adapter.backend.requests.clear()
        summary = await w.sync()
        assert summary is not None
        assert [path for path, _why in summary.unsupported] == ["old"]
        assert "holds items its listing does not show" in summary.unsupported[0][1]
        assert w.adapter.backend.requests.matching("DELETE") == 2  # before and after the full listing
        assert "old" in {p for p, e in w.adapter.paths().items() if e.is_dir}
    finally:
        await sandbox.stop()


async def test_edit_during_the_replacement_upload_is_not_deleted(tmp_path: Path) -> None:
    """TimeTap replaces by upload-new-then-delete-old: the old version is checked again before its
    delete, and our upload is taken back when it changed meanwhile."""
    sandbox = await start_sandbox("timetap", tmp_path / "sandbox")
    try:
        w = World("timetap", sandbox, tmp_path)
        w.adapter.create(ROOT, "report.txt", b"version one")
        await w.sync()
        (w.root / "report.txt").write_bytes(b"version two, local")
        edits: list[bytes] = [b"version two, by a colleague"]  # once, during the first upload only
        await w.sync(before_upload=lambda: edits and w.edit_remote("report.txt", edits.pop()))
        assert sorted(w.live().values()) == [b"version two, by a colleague", b"version two, local"]
        assert w.live()["report.txt"] == b"version two, by a colleague"
        assert w.local() == w.live()
    finally:
        await sandbox.stop()


async def test_edit_before_an_interrupted_replacement_is_recovered_is_kept(tmp_path: Path) -> None:
    sandbox = await start_sandbox("timetap", tmp_path / "sandbox")
    try:
        w = World("timetap", sandbox, tmp_path)
        w.adapter.create(ROOT, "report.txt", b"version one")
        await w.sync()
        (w.root / "report.txt").write_bytes(b"version two, local")
        await w.sync(stop_on_delete=True)  # uploaded, the old one not yet deleted: the process dies
        old = next(e for e in w.adapter.live() if e.content == b"version one")
        w.adapter.edit(old, b"version two, by a colleague")
        await w.sync()
        await w.sync()
        assert sorted(w.live().values()) == [b"version two, by a colleague", b"version two, local"]
        assert w.local() == w.live()
    finally:
        await sandbox.stop()


async def test_fresh_reads_share_a_request_but_never_one_older_than_the_caller() -> None:
    started: list[int] = []
    gate = anyio.Event()

    async def fetch(key: str) -> int:
        started.append(len(started))
        if len(started) == 1:
            await gate.wait()  # the first read is slow: callers arriving meanwhile must not take it
        return len(started)

    reads: FreshReads[str, int] = FreshReads(fetch)
    results: list[int] = []

    async def ask() -> None:
        results.append(await reads.get("folder"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        for _ in range(3):  # arrive while the first read is in flight
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert results == [1, 2, 2, 2]  # one read for the first caller, ONE more for the three later ones


async def test_a_checked_delete_costs_one_request_more(world: World) -> None:
    """The figure the README gives: one extra request per destructive action (TimeTap: a listing of
    the folder, plus the download of the copy kept in the trash)."""
    backend = world.sandbox.backend
    backend.requests.clear()
    (world.root / "report.txt").unlink()
    await world.sync()
    routes = backend.requests.by_route()
    deletes = sum(n for (method, _), n in routes.items() if method == "DELETE")
    assert deletes == 1 and world.live() == {}
    if world.provider == "coredata":
        checks = sum(
            n for (m, p), n in routes.items() if m == "GET" and p.startswith("/api/v2/files/") and p.count("/") == 5
        )
        assert checks == 1, routes
    else:
        listings = [r for r in backend.requests if r.method == "GET" and r.path.endswith("/files")]
        assert sum("parentFileLibraryUUID" in r.query or r.query == "" for r in listings) >= 1
        assert sum(1 for r in backend.requests if r.path.startswith("/s3/")) == 1  # the copy kept in the trash
