"""A full rescan reads the stored rows of changed folders only: each folder's rows are summed up as
fingerprints in SQL and compared with what the walk finds on disk (``daemon/vocab/fingerprint.py``).
Real SQLite file, real folders; the folder reads are counted on the real store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from sqlalchemy import text

from daemon.config import load_config
from daemon.providers import make_provider
from daemon.sandbox.runner import RunningSandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync
from tests.e2e.conftest import Mirror

pytestmark = pytest.mark.anyio


class Engine:
    def __init__(self, sync: LibrarySync) -> None:
        self.sync = sync
        self.reads: list[str] = []
        real = sync.store.local_folder

        def counted(lib: int, parent: str) -> Coroutine[Any, Any, list[Any]]:
            self.reads.append(parent)
            return real(lib, parent)

        sync.store.local_folder = counted  # type: ignore[method-assign]

    async def rescan(self) -> tuple[int, list[str]]:
        """A full rescan: the rows it changed and the folders whose rows it read."""
        self.reads.clear()
        changed = await self.sync.observe_local()
        return changed, sorted(self.reads)


@pytest.fixture
async def engine(coredata: RunningSandbox, mirror: Mirror) -> AsyncIterator[Engine]:
    config = load_config(mirror.config)
    library = config.libraries[0]
    store = await StateStore.open(config.state_dir)
    provider = make_provider(library.remote)
    try:
        for folder in ("a", "b", "c", "c/deep"):
            (mirror.root / folder).mkdir(parents=True)
            for i in range(3):
                (mirror.root / folder / f"{i}.txt").write_text(f"{folder} {i}")
        sync = LibrarySync(library, store, await store.library_id(library.name), provider)
        assert (await sync.run_pass()).errors == 0
        yield Engine(sync)
    finally:
        await provider.aclose()
        await store.close()


async def test_an_unchanged_tree_reads_no_folder_and_a_change_reads_its_own(engine: Engine, mirror: Mirror) -> None:
    assert await engine.rescan() == (0, [])

    with (mirror.root / "b" / "1.txt").open("a") as fh:
        fh.write(" edited")
    changed, reads = await engine.rescan()
    assert (changed, reads) == (1, ["b"])
    row = await engine.sync.store.local_at(engine.sync.lib, "b/1.txt")
    assert row is not None and row.size == len("b 1 edited")
    assert await engine.rescan() == (0, [])  # the rewritten row carries its fingerprint


async def test_a_rename_inside_a_folder_is_seen_although_size_time_and_inode_stay(
    engine: Engine, mirror: Mirror
) -> None:
    before = (mirror.root / "c" / "deep" / "0.txt").stat()
    os.rename(mirror.root / "c" / "deep" / "0.txt", mirror.root / "c" / "deep" / "9.txt")
    after = (mirror.root / "c" / "deep" / "9.txt").stat()
    assert (before.st_size, before.st_mtime_ns, before.st_ino) == (after.st_size, after.st_mtime_ns, after.st_ino)
    changed, reads = await engine.rescan()
    assert reads == ["c/deep"]
    assert changed == 2  # the old name vanished, the new one is a new row
    store, lib = engine.sync.store, engine.sync.lib
    assert await store.local_at(lib, "c/deep/0.txt") is None
    assert await store.local_at(lib, "c/deep/9.txt") is not None


async def test_a_folder_replaced_by_a_file_of_the_same_name_is_seen(engine: Engine, mirror: Mirror) -> None:
    for child in (mirror.root / "a").iterdir():
        child.unlink()
    (mirror.root / "a").rmdir()
    (mirror.root / "a").write_text("now a file")
    changed, reads = await engine.rescan()
    assert "" in reads and changed >= 4  # the file's row and the folder's three files gone
    row = await engine.sync.store.local_at(engine.sync.lib, "a")
    assert row is not None and not row.is_dir


async def test_rows_without_a_fingerprint_are_read_once_then_filled(engine: Engine) -> None:
    """A store of schema version 3 holds no fingerprints: its first rescan reads every folder and
    fills them in; the next reads none."""
    store = engine.sync.store
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE local SET fp = NULL"))
    changed, reads = await engine.rescan()
    assert (changed, reads) == (0, ["", "a", "b", "c", "c/deep"])
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM local WHERE fp IS NULL"))).scalar_one() == 0
    assert await engine.rescan() == (0, [])


async def test_a_moved_folder_loses_its_own_fingerprint_only(engine: Engine) -> None:
    store, lib = engine.sync.store, engine.sync.lib
    async with store.transaction(lib) as tx:
        await tx.move_subtree("c/deep", "c/deeper", local_only=True)
    async with store.engine.connect() as conn:
        unknown = (await conn.execute(text("SELECT path FROM local WHERE fp IS NULL"))).scalars().all()
    assert unknown == ["c/deeper"]
