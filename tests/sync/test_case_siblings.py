"""Two local folders whose names differ only in case (``Docs``, ``docs``) on a case-sensitive disk.

The daemon's watcher pass after ``Docs`` was deleted observes only that path and does not list the
remote side: it must delete ``Docs/a.txt`` remotely and leave ``docs/b.txt`` alone on both sides. The
state store once matched a folder's subtree with SQLite's LIKE, which ignores ASCII case, so the
local rows of ``docs`` went with ``Docs`` and the planner deleted ``docs/b.txt`` on the server while it
was still on disk. A real CoreData sandbox in this event loop, a real state store and a real folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import LibraryConfig, RemoteConfig
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.runner import start_sandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync
from daemon.vocab import Direction
from tests.simulation.remotes import ROOT, CoreDataRemote

pytestmark = pytest.mark.anyio


async def test_watcher_pass_deleting_docs_leaves_its_case_sibling_alone(tmp_path: Path) -> None:
    sandbox = await start_sandbox("coredata", tmp_path / "sandbox")
    remote = CoreDataRemote(sandbox)
    root, state = tmp_path / "mirror", tmp_path / "state"

    async def run_pass(*, poll_remote: bool = True, scan_local: bool | list[str] = True) -> None:
        store = await StateStore.open(state)
        http = HttpClient(retry=RetryPolicy(attempts=2, base=0.005, cap=0.01))
        provider = remote.build(http)
        config = LibraryConfig(
            name="lib",
            provider="coredata",
            local_path=root,
            remote=RemoteConfig(),
            direction=Direction.TWO_WAY,
            concurrency=1,
        )
        try:
            engine = LibrarySync(config, store, await store.library_id("lib"), provider)
            summary = await engine.run_pass(poll_remote=poll_remote, scan_local=scan_local)
            assert summary.errors == 0
        finally:
            await provider.aclose()
            await http.aclose()
            await store.close()

    fillers = {f"other-{n}.txt": f"another file {n}".encode() for n in range(4)}  # below the delete gate
    for name, data in fillers.items():
        remote.create(ROOT, name, data)
    try:
        await run_pass()  # pulls the fillers, creates the root marker
        (root / "Docs").mkdir()
        (root / "Docs" / "a.txt").write_bytes(b"upper\n")
        (root / "docs").mkdir()
        (root / "docs" / "b.txt").write_bytes(b"lower\n")
        await run_pass(poll_remote=False)
        live = {p: e.content for p, e in remote.paths().items() if not e.is_dir}
        assert live == fillers | {"Docs/a.txt": b"upper\n", "docs/b.txt": b"lower\n"}
        before = (root / "docs" / "b.txt").stat()

        (root / "Docs" / "a.txt").unlink()
        (root / "Docs").rmdir()
        await run_pass(poll_remote=False, scan_local=["Docs"])  # what the watcher hands over

        live = {p: e.content for p, e in remote.paths().items() if not e.is_dir}
        assert live == fillers | {"docs/b.txt": b"lower\n"}
        assert remote.retired() == [b"upper\n"]
        after = (root / "docs" / "b.txt").stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
        assert (root / "docs" / "b.txt").read_bytes() == b"lower\n"
        assert not (root / "Docs").exists()
    finally:
        await sandbox.stop()
