"""``Txn.move_subtree``: a folder moved in one call takes every row under it along, in all three trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.state.store import StateStore
from daemon.vocab import LocalRow, RemoteRow, SyncedRow

pytestmark = pytest.mark.anyio


async def test_rows_under_the_folder_move_and_nothing_else(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("board")
    other = await store.library_id("other")
    paths = ["a_b", "a_b/x.txt", "a_b/sub", "a_b/sub/y.txt", "A_B/z.txt", "a_bc/w.txt", "axb/v.txt", "keep.txt"]
    for library in (lib, other):
        async with store.transaction(library) as tx:
            for i, p in enumerate(paths):
                is_dir = p in ("a_b", "a_b/sub")
                await tx.put_local(LocalRow(p, is_dir=is_dir, inode=i + 1))
                await tx.put_remote(RemoteRow(p, remote_id=f"r{i}", is_dir=is_dir, parent_id="p"))
                await tx.put_synced(SyncedRow(p, is_dir=is_dir, remote_id=f"r{i}", local_inode=i + 1))
    async with store.transaction(lib) as tx:
        await tx.move_subtree("a_b", "new/dest")

    moved = {
        "a_b": "new/dest",
        "a_b/x.txt": "new/dest/x.txt",
        "a_b/sub": "new/dest/sub",
        "a_b/sub/y.txt": "new/dest/sub/y.txt",
    }
    for i, p in enumerate(paths):
        target = moved.get(p, p)
        local = await store.local_at(lib, target)
        remote = await store.remote_at(lib, target)
        synced = await store.synced_at(lib, target)
        assert local is not None and local.inode == i + 1, p
        assert remote is not None and remote.remote_id == f"r{i}", p
        assert synced is not None and synced.remote_id == f"r{i}", p
        if target != p:
            assert await store.local_at(lib, p) is None
            assert await store.remote_at(lib, p) is None
            assert await store.synced_at(lib, p) is None
        assert await store.local_at(other, p) is not None  # another library is untouched
    assert set(await store.local_children(lib, "new/dest")) == {"x.txt", "sub"}
    assert set(await store.local_children(lib, "new/dest/sub")) == {"y.txt"}
    assert set(await store.local_children(lib, "new")) == {"dest"}
    assert await store.changed_states(lib) == []
    await store.close()
