"""The store's window reads for large libraries (DESIGN rule 8): the changed paths a window at a time,
whether a round may be planned in windows, and the local tree a window of folders at a time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from daemon.state.store import StateStore
from daemon.sync.library import WindowedKnownRows
from daemon.vocab import Known, LocalRow, PathState, RemoteRow, SyncedRow

pytestmark = pytest.mark.anyio


async def _store(tmp_path: Path) -> tuple[StateStore, int]:
    store = await StateStore.open(tmp_path / "state")
    return store, await store.library_id("lib")


async def _walk(store: StateStore, lib: int, size: int) -> list[PathState]:
    out: list[PathState] = []
    after: str | None = ""
    while after is not None:
        states, after = await store.changed_window(lib, after, size)
        out += states
    return out


async def test_windows_cover_exactly_the_changed_paths_in_order(tmp_path: Path) -> None:
    store, lib = await _store(tmp_path)
    async with store.transaction(lib) as tx:
        for i in range(30):
            path = f"d{i % 3}/f{i:02d}"
            if i % 4 != 0:  # in sync on all three trees
                await tx.put_local(LocalRow(path, size=1, digest=f"x{i}"))
            if i % 5 != 0:
                await tx.put_remote(RemoteRow(path, f"r{i}", size=1, digest=f"x{i}", version="v"))
            await tx.put_synced(SyncedRow(path, digest=f"x{i}", size=1, remote_id=f"r{i}", remote_version="v"))
        for i in range(7):  # only on one side: new
            await tx.put_local(LocalRow(f"d1/new {i}", size=1, digest="n"))
            await tx.put_remote(RemoteRow(f"d2 new/{i}", f"n{i}", size=1, digest="m", version="v"))
    whole = await store.changed_states(lib)
    assert len(whole) > 10
    for size in (1, 2, 3, 7, 100):
        assert await _walk(store, lib, size) == whole
    await store.close()


async def test_pageable_only_without_deletes_clashes_or_conflicts(tmp_path: Path) -> None:
    store, lib = await _store(tmp_path)
    assert await store.pageable(lib)
    async with store.transaction(lib) as tx:
        await tx.put_local(LocalRow("new.txt", size=1, digest="a"))  # upload
        await tx.put_remote(RemoteRow("pulled.txt", "r1", size=1, digest="b", version="v"))  # download
        await tx.put_local(LocalRow("same.txt", size=1, digest="c"))  # adopted: same on both sides
        await tx.put_remote(RemoteRow("same.txt", "r2", size=1, digest="c", version="v"))
        await tx.put_local(LocalRow("edited.txt", size=1, digest="new"))  # local edit, remote unchanged
        await tx.put_remote(RemoteRow("edited.txt", "r3", size=1, digest="old", version="v"))
        await tx.put_synced(SyncedRow("edited.txt", digest="old", size=1, remote_id="r3", remote_version="v"))
    assert await store.pageable(lib)

    async def unpageable_with(*rows: LocalRow | RemoteRow | SyncedRow) -> bool:
        async with store.transaction(lib) as tx:
            for row in rows:
                if isinstance(row, LocalRow):
                    await tx.put_local(row)
                elif isinstance(row, RemoteRow):
                    await tx.put_remote(row)
                else:
                    await tx.put_synced(row)
        verdict = not await store.pageable(lib)
        async with store.transaction(lib) as tx:
            for row in rows:
                delete = {LocalRow: tx.delete_local, RemoteRow: tx.delete_remote, SyncedRow: tx.delete_synced}
                await delete[type(row)](row.path)
        assert await store.pageable(lib)
        return verdict

    synced = SyncedRow("x", digest="a", size=1, remote_id="rx", remote_version="v")
    assert await unpageable_with(synced, LocalRow("x", size=1, digest="a"))  # remote deleted (or moved)
    assert await unpageable_with(synced, RemoteRow("x", "rx", size=1, digest="a", version="v"))  # local deleted
    assert await unpageable_with(LocalRow("x", is_dir=True), RemoteRow("x", "rx", size=1, digest="a"))  # clash
    assert await unpageable_with(LocalRow("x", size=1, digest="a"), RemoteRow("x", "rx", size=1, digest="b"))
    assert await unpageable_with(  # changed on both sides: a conflict
        synced, LocalRow("x", size=1, digest="b"), RemoteRow("x", "rx", size=1, digest="c", version="w")
    )
    await store.close()


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
async def test_windowed_known_rows_serve_every_folder_whole(tmp_path: Path, size: int) -> None:
    store, lib = await _store(tmp_path)
    folders = ["", "a", "a b", "a/x", "a/x/y", "b", "empty"]
    async with store.transaction(lib) as tx:
        for f in folders[1:]:
            await tx.put_local(LocalRow(f, is_dir=True))
        for f in folders[:-1]:
            for i in range(3):
                await tx.put_local(LocalRow(f"{f}/f{i}".lstrip("/"), size=i, digest=f"{f}{i}"))
    known = WindowedKnownRows(store, lib, size=size)

    def fields(rows: Mapping[str, Known]) -> dict[str, tuple[object, ...]]:
        def stat(r: Known) -> tuple[object, ...]:  # a StoredStat or (a folder read alone) a LocalRow
            return (r.path, r.is_dir, r.size, r.mtime_ns, r.inode) if isinstance(r, LocalRow) else r

        return {n: (s[0], bool(s[1]), *s[2:]) for n, r in rows.items() for s in [stat(r)]}

    for f in ["", "a", "a/x", "a/x/y", "a b", "b", "empty", "missing"]:  # the scanner's depth-first order
        assert fields(await known.children(f)) == fields(await store.local_children(lib, f)), f
    await store.close()
