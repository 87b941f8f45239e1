"""Within one round, what lies inside a folder is done before the folder itself is removed or renamed
aside (issue 13 §4): the executor runs actions concurrently, and a folder's conflict copy racing the
trashing of one of its files failed that file ("No such file or directory", exit 1) or carried a file
the server had deleted into the copy; a removal racing its children was re-planned."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.config import load_config
from daemon.local import ops
from daemon.providers import make_provider
from daemon.sandbox.runner import RunningSandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync, PassSummary
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once

pytestmark = pytest.mark.anyio


async def run_pass(mirror: Mirror, *, slow_delete: bool = False) -> PassSummary:
    library = load_config(mirror.config).libraries[0]
    store = await StateStore.open(load_config(mirror.config).state_dir)
    provider = make_provider(library.remote)
    if slow_delete:  # the server takes a moment to delete: long enough for a concurrent upload to overtake it
        real = provider.delete

        async def delete(item: Any) -> None:
            await anyio.sleep(0.3)
            await real(item)

        provider.delete = delete  # type: ignore[method-assign]
    try:
        return await LibrarySync(library, store, await store.library_id(library.name), provider).run_pass()
    finally:
        await provider.aclose()
        await store.close()


@pytest.fixture
def slow_trash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trashing a file takes a moment (a slow disk): long enough for a concurrent action to overtake it."""
    real = ops.trash_file

    def slow(root: Path, rel: str, expected: Any) -> Path:
        time.sleep(0.3)
        return real(root, rel, expected)

    monkeypatch.setattr(ops, "trash_file", slow)


def _others(sb: RunningSandbox) -> set[str]:
    """Thirty more files, so that the deletes of these tests pass the safety gates."""
    for i in range(30):
        sb.backend.add_file(None, f"other-{i}.txt", b"other %d" % i)
    return {f"other-{i}.txt" for i in range(30)}


@pytest.fixture
def slow_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renaming a local entry aside as a conflict copy takes a moment."""
    real = ops.rename_conflict_copy

    def slow(root: Path, rel: str, new_rel: str, expected: Any) -> Any:
        time.sleep(0.3)
        return real(root, rel, new_rel, expected)

    monkeypatch.setattr(ops, "rename_conflict_copy", slow)


def remote_files(sb: RunningSandbox) -> dict[str, bytes]:
    prefix = sb.backend.path_of(sb.backend.nodes[sb.remote["root"]]) + "/"
    out = {}
    for node in sb.backend.files():
        path = sb.backend.path_of(node)
        if path.startswith(prefix):
            out[path.removeprefix(prefix)] = sb.backend.read_content(node.id)
    return out


async def test_a_folder_is_copied_aside_only_after_its_files_are_trashed(
    coredata: RunningSandbox, mirror: Mirror, slow_trash: None
) -> None:
    others = _others(coredata)
    folder = coredata.backend.add_folder(None, "X")
    inside = coredata.backend.add_file(folder.id, "a.txt", b"synced inside X")
    assert (await sync_once(mirror)).code == 0
    (mirror.root / "X" / "new.txt").write_bytes(b"a new local child")
    coredata.backend.delete_file(inside.id)
    coredata.backend.delete_folder(folder.id)
    coredata.backend.add_file(None, "X", b"a file named X")

    summary = await run_pass(mirror)
    assert summary.failures == [] and summary.conflicts == 1
    local = mirror.files()
    assert local["X"] == b"a file named X"
    [copy] = [p for p in local if p != "X" and p not in others]
    assert copy.startswith("X (conflicted copy ") and copy.endswith("/new.txt")  # a.txt was trashed first
    assert mirror.trash() and list(mirror.trash().values()) == [b"synced inside X"]
    assert remote_files(coredata) == local


async def test_a_folder_is_removed_only_after_its_files_are_trashed(
    coredata: RunningSandbox, mirror: Mirror, slow_trash: None
) -> None:
    _others(coredata)
    folder = coredata.backend.add_folder(None, "X")
    inside = coredata.backend.add_file(folder.id, "a.txt", b"synced inside X")
    assert (await sync_once(mirror)).code == 0
    coredata.backend.delete_file(inside.id)
    coredata.backend.delete_folder(folder.id)

    summary = await run_pass(mirror)
    assert summary.failures == [] and summary.rounds == 1  # not re-planned: one round did it
    assert not (mirror.root / "X").exists()


async def test_a_local_file_in_the_way_of_a_remote_folder_is_copied_aside_before_its_content_comes(
    coredata: RunningSandbox, mirror: Mirror, slow_copy: None
) -> None:
    others = _others(coredata)
    folder = coredata.backend.add_folder(None, "X")
    coredata.backend.add_file(folder.id, "a.txt", b"synced inside X")
    assert (await sync_once(mirror)).code == 0
    (mirror.root / "X" / "a.txt").unlink()
    (mirror.root / "X").rmdir()
    (mirror.root / "X").write_bytes(b"a local file named X")
    coredata.backend.add_file(folder.id, "b.txt", b"new remotely inside X")

    summary = await run_pass(mirror)
    assert summary.failures == [] and summary.conflicts == 1
    local = mirror.files()
    assert local["X/b.txt"] == b"new remotely inside X"
    [copy] = [p for p in local if not p.startswith("X/") and p not in others]
    assert copy.startswith("X (conflicted copy ") and local[copy] == b"a local file named X"
    assert remote_files(coredata) == local


async def test_a_remote_file_in_the_way_of_a_local_folder_is_deleted_before_its_content_goes(
    coredata: RunningSandbox, mirror: Mirror
) -> None:
    _others(coredata)
    coredata.backend.add_file(None, "X", b"a synced file X")
    assert (await sync_once(mirror)).code == 0
    (mirror.root / "X").unlink()
    (mirror.root / "X").mkdir()
    (mirror.root / "X" / "c.txt").write_bytes(b"a new local child")

    summary = await run_pass(mirror, slow_delete=True)
    assert summary.failures == [] and summary.rounds == 1  # the upload did not wait for a second round
    assert remote_files(coredata)["X/c.txt"] == b"a new local child"
