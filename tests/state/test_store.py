"""The state store against a real SQLite file."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from daemon.state import writes
from daemon.state.migrations import SchemaTooNew
from daemon.state.schema import SCHEMA_VERSION
from daemon.state.store import STATE_FILE, StateStore
from daemon.vocab import LocalRow, RemoteItem, RemoteRow, SyncedRow
from daemon.vocab.fingerprint import entry_fingerprint

pytestmark = pytest.mark.anyio


async def test_file_mode_wal_and_schema_version(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("board")
    async with store.transaction(lib) as tx:
        await tx.put_local(LocalRow("a.txt", size=1, mtime_ns=2, inode=3, digest="d"))
    db = tmp_path / "state" / STATE_FILE
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        version = (await conn.execute(text("SELECT value FROM meta WHERE key='schema_version'"))).scalar_one()
    assert version == str(SCHEMA_VERSION)
    await store.close()
    # reopening keeps the data and the library id
    store = await StateStore.open(tmp_path / "state")
    assert await store.library_id("board") == lib
    assert (await store.local_children(lib, ""))["a.txt"].digest == "d"
    await store.close()


async def test_refuses_newer_schema(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE meta SET value='99' WHERE key='schema_version'"))
    await store.close()
    with pytest.raises(SchemaTooNew):
        await StateStore.open(tmp_path)


async def test_changed_states_only_returns_disagreeing_paths(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("x")
    async with store.transaction(lib) as tx:
        # in sync
        await tx.put_local(LocalRow("same.txt", size=1, digest="aa"))
        await tx.put_remote(RemoteRow("same.txt", "r1", size=1, digest="aa", version="v1"))
        await tx.put_synced(SyncedRow("same.txt", digest="aa", size=1, remote_id="r1", remote_version="v1"))
        # folder in sync
        await tx.put_local(LocalRow("dir", is_dir=True))
        await tx.put_remote(RemoteRow("dir", "d1", is_dir=True))
        await tx.put_synced(SyncedRow("dir", is_dir=True, remote_id="d1"))
        # local edit
        await tx.put_local(LocalRow("dir/edited.txt", size=2, digest="bb"))
        await tx.put_remote(RemoteRow("dir/edited.txt", "r2", size=1, digest="cc", version="v1"))
        await tx.put_synced(SyncedRow("dir/edited.txt", digest="cc", size=1, remote_id="r2", remote_version="v1"))
        # remote only
        await tx.put_remote(RemoteRow("new.txt", "r3", size=1, digest="dd", version="v1"))
    states = await store.changed_states(lib)
    assert [s.path for s in states] == ["dir/edited.txt", "new.txt"]
    edited = states[0]
    assert edited.local and edited.local.digest == "bb"
    assert edited.remote and edited.remote.remote_id == "r2"
    assert edited.synced and edited.synced.digest == "cc"
    assert states[1].local is None and states[1].synced is None
    await store.close()


async def test_recursive_delete_escapes_like_wildcards(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("x")
    async with store.transaction(lib) as tx:
        for p in ("a_b", "a_b/x", "axb/y", "a_b2/z"):
            await tx.put_local(LocalRow(p))
        await tx.delete_local("a_b", recursive=True)
    assert sorted((await store.local_children(lib, "")).keys()) == []
    assert await store.local_at(lib, "axb/y") is not None
    assert await store.local_at(lib, "a_b2/z") is not None
    await store.close()


async def test_failure_backoff_grows_and_caps(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("x")
    delays = []
    for _ in range(6):
        async with store.transaction(lib) as tx:
            await tx.record_failure("f", "boom", 1000.0, base=25, factor=5, cap=86400)
        (_, _, next_at, err) = (await store.failures(lib))[0]
        delays.append(next_at - 1000.0)
        assert err == "boom"
    assert delays == [25, 125, 625, 3125, 15625, 78125]
    async with store.transaction(lib) as tx:
        await tx.record_failure("f", "boom", 1000.0, base=25, factor=5, cap=86400)
        await tx.clear_failure("g")
    assert (await store.failures(lib))[0][2] - 1000.0 == 86400
    await store.close()


async def test_batched_blocks_commit_together_and_atomically(tmp_path: Path) -> None:
    import anyio

    store = await StateStore.open(tmp_path)
    lib = await store.library_id("x")

    async def write(i: int) -> None:
        async with store.batched(lib) as tx:
            await tx.put_local(LocalRow(f"f{i}", size=i, digest="d"))
            await tx.put_synced(SyncedRow(f"f{i}", digest="d", size=i))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(write, i)
    assert len(await store.local_children(lib, "")) == 50
    assert (await store.counts(lib))["synced"] == 50

    with pytest.raises(RuntimeError):
        async with store.batched(lib) as tx:
            await tx.put_local(LocalRow("never", digest="d"))
            raise RuntimeError("the action failed after recording a write")
    assert await store.local_at(lib, "never") is None
    await store.close()


async def test_version_1_file_is_migrated(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("kept")
    async with store.engine.begin() as conn:  # make it look like a file written by version 1
        await conn.execute(text("DROP TABLE pending_replace"))
        await conn.execute(text("ALTER TABLE remote DROP COLUMN name"))
        await conn.execute(text("UPDATE meta SET value='1' WHERE key='schema_version'"))
    await store.close()
    store = await StateStore.open(tmp_path)
    async with store.engine.connect() as conn:
        version = (await conn.execute(text("SELECT value FROM meta WHERE key='schema_version'"))).scalar_one()
    assert version == str(SCHEMA_VERSION)
    assert await store.library_id("kept") == lib
    async with store.transaction(lib) as tx:
        await tx.begin_replace("a.txt", "old", "parent", 3, "d")
    assert [p.path for p in await store.pending_replaces(lib)] == ["a.txt"]
    await store.close()


async def test_version_2_file_gets_the_remote_name_column(tmp_path: Path) -> None:
    """Version 3 keeps each remote item's own name; rows of a version 2 file keep theirs unknown."""
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("kept")
    async with store.transaction(lib) as tx:
        await tx.put_remote(RemoteRow("a.txt", "id-a", version="1", name="a.txt"))
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE remote DROP COLUMN name"))
        await conn.execute(text("UPDATE meta SET value='2' WHERE key='schema_version'"))
    await store.close()
    store = await StateStore.open(tmp_path)
    row = await store.remote_at(lib, "a.txt")
    assert row is not None and row.remote_id == "id-a" and row.name is None
    async with store.transaction(lib) as tx:
        await tx.put_remote(RemoteRow("b.txt", "id-b", name="b?.txt"))
    assert (await store.remote_at(lib, "b.txt")).name == "b?.txt"  # type: ignore[union-attr]
    await store.close()


async def test_concurrent_batched_writes_land_whole_and_in_order(tmp_path: Path) -> None:
    """Many actions finishing at once share a commit (their upserts merged into one executemany per
    tree); every row lands, a later write of the same path wins, and a delete keeps its place."""
    import anyio

    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("board")

    async def finish(i: int) -> None:
        async with store.batched(lib) as tx:
            await tx.put_local(LocalRow(f"f{i}", size=i, mtime_ns=1, inode=i, digest=f"d{i}"))
            await tx.put_synced(SyncedRow(f"f{i}", digest=f"d{i}", size=i, remote_id=f"r{i}"))

    async def rewrite_then_delete() -> None:
        async with store.batched(lib) as tx:
            await tx.put_local(LocalRow("same", size=1, digest="first"))
            await tx.put_local(LocalRow("same", size=2, digest="second"))
        async with store.batched(lib) as tx:
            await tx.put_local(LocalRow("gone", size=1, digest="x"))
            await tx.delete_local("gone")

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(finish, i)
        tg.start_soon(rewrite_then_delete)
    tree = {row[0]: row for row in await store.local_folder(lib, "")}
    assert {f"f{i}" for i in range(40)} <= set(tree)
    assert all(tree[f"f{i}"][2] == i for i in range(40))  # (path, is_dir, size, mtime_ns, inode)
    for i in range(40):
        row = await store.local_at(lib, f"f{i}")
        assert row is not None and row.digest == f"d{i}"
    assert tree["same"][2] == 2
    assert (same := await store.local_at(lib, "same")) is not None and same.digest == "second"
    assert "gone" not in tree
    for i in range(40):
        assert await store.synced_at(lib, f"f{i}") is not None
    await store.close()


def test_coalesce_merges_tree_upserts_and_leaves_other_groups_alone() -> None:
    from daemon.state import group_commit as store_mod
    from daemon.state.mapping import LOCAL_UPSERT, SYNCED_UPSERT

    up_local, up_synced = LOCAL_UPSERT, SYNCED_UPSERT
    group = [
        store_mod._Batch([(up_local, [{"path": "a"}]), (up_synced, {"path": "a"})]),
        store_mod._Batch([(up_local, [{"path": "b"}, {"path": "a", "v": 2}]), (up_synced, {"path": "b"})]),
    ]
    merged = store_mod._coalesce(group)
    assert [(id(s), p) for s, p in merged] == [
        (id(up_local), [{"path": "a"}, {"path": "b"}, {"path": "a", "v": 2}]),
        (id(up_synced), [{"path": "a"}, {"path": "b"}]),
    ]
    other = object()
    mixed = [store_mod._Batch([(up_local, {"path": "a"}), (other, {"path": "a"})])]
    assert store_mod._coalesce(mixed) == [(up_local, {"path": "a"}), (other, {"path": "a"})]


async def test_a_commit_cancelled_half_way_never_leaves_the_database_locked(tmp_path: Path) -> None:
    """A pass cancelled while its group commit runs (a crash, a stop) must not keep SQLite's write lock:
    every later writer, e.g. the other libraries of the daemon, would fail "database is locked"."""
    import anyio

    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("board")
    for attempt in range(40):
        with anyio.move_on_after(0.0005 * attempt):
            async with store.batched(lib) as tx:
                await tx.put_locals([LocalRow(f"a{attempt}-{i}", size=i) for i in range(200)])
    with anyio.fail_after(5):  # a leaked lock makes this wait for busy_timeout (10 s), then fail
        async with store.transaction(lib) as tx:
            await tx.put_local(LocalRow("after.txt", size=1))
    assert await store.local_at(lib, "after.txt") is not None
    await store.close()


async def test_recursive_deletes_keep_a_sibling_that_differs_only_in_case(tmp_path: Path) -> None:
    """Deleting folder ``Docs`` drops ``Docs/...`` and nothing of ``docs/...`` (SQLite's LIKE ignores
    ASCII case: the planner then saw ``docs/b.txt`` deleted locally and deleted it remotely)."""
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("x")
    paths = ["Docs", "Docs/a.txt", "Docs/sub", "Docs/sub/c.txt", "docs", "docs/b.txt", "DOCS/d.txt", "Docs0/e.txt"]
    async with store.transaction(lib) as tx:
        for i, p in enumerate(paths):
            is_dir = p in ("Docs", "Docs/sub", "docs")
            await tx.put_local(LocalRow(p, is_dir=is_dir, inode=i + 1))
            await tx.put_remote(RemoteRow(p, remote_id=f"r{i}", is_dir=is_dir))
            await tx.put_synced(SyncedRow(p, is_dir=is_dir, remote_id=f"r{i}"))
    async with store.transaction(lib) as tx:
        await tx.delete_local("Docs", recursive=True)
        await tx.delete_remote("Docs", recursive=True)
        await tx.delete_synced("Docs", recursive=True)
    for p in paths:
        gone = p == "Docs" or p.startswith("Docs/")
        for name, row in (
            ("local", await store.local_at(lib, p)),
            ("remote", await store.remote_at(lib, p)),
            ("synced", await store.synced_at(lib, p)),
        ):
            assert (row is None) == gone, (name, p)
    await store.close()


async def test_subtree_match_is_a_range_on_the_primary_key(tmp_path: Path) -> None:
    """The "path is under folder" expression compiles to a range SQLite answers from the (lib, path)
    index, not a scan of the whole tree."""
    from sqlalchemy import select

    from daemon.state import schema
    from daemon.state.store import under_folder

    store = await StateStore.open(tmp_path)
    t = schema.local
    stmt = select(t.c.path).where(t.c.lib == 1, under_folder(t.c.path, "Docs"))
    compiled = stmt.compile(store.engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with store.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "SEARCH" in plan and "lib=? AND path>? AND path<?" in plan, plan
    await store.close()


async def test_rows_a_full_listing_found_unchanged_survive_its_sweep(tmp_path: Path) -> None:
    """A full listing writes only the generation of a row it found unchanged (``touch_remotes``): the
    row keeps every value and survives the sweep; a row the listing did not see is swept."""
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("board")
    rows = [RemoteRow(f"f{i}.txt", f"id{i}", size=i, digest=f"d{i}", version="v1", name=f"f{i}.txt") for i in range(3)]
    async with store.transaction(lib) as tx:
        await tx.put_remotes(rows, generation=1)
    changed = RemoteRow("f2.txt", "id2", size=9, digest="d9", version="v2", name="f2.txt")
    async with store.transaction(lib) as tx:
        await tx.touch_remotes(["f0.txt"], generation=2)
        await tx.put_remotes([changed], generation=2)
        assert await tx.sweep_remote(2) == 1  # f1.txt: not in this listing
    assert await store.remote_at(lib, "f0.txt") == rows[0]
    assert await store.remote_at(lib, "f1.txt") is None
    assert await store.remote_at(lib, "f2.txt") == changed
    await store.close()


async def test_the_reads_a_full_listing_makes_per_folder_use_the_parent_indexes(tmp_path: Path) -> None:
    """A full listing reads each folder's staged, stored and local children. Each of these reads must
    search by (library, parent) in an index: a read that walks every row of the library for each folder
    is quadratic (a 300,000-file library's unchanged pass took 32 s instead of 19 with the staged rows
    read in primary-key order). Checked on SQLite's own query plan of each statement the store runs."""
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("board")
    async with store.transaction(lib) as tx:
        await tx.add_listing([RemoteItem("id2", "root", "b.txt"), RemoteItem("id1", "root", "a.txt")])
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    try:
        staged = await store.listing_children(lib, "root")
        await store.remote_children(lib, "root")
        await store.local_children(lib, "")
        await store.local_names(lib, "")
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
    assert [i.remote_id for i in staged] == ["id1", "id2"]  # in id order, as before
    assert len(statements) == 4
    async with store.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for statement, parameters in statements:
            plan = " ".join(row[3] for row in await raw.execute_fetchall(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert re.search(r"USING (COVERING )?INDEX ix_\w+_parent \(lib=\? AND parent", plan), (statement, plan)
    await store.close()


async def test_version_3_file_gets_the_fingerprint_column_unknown(tmp_path: Path) -> None:
    """Version 4 keeps each local row's fingerprint; rows of a version 3 file have none, so their
    folder's sum is unknown (a rescan reads its rows) until a write or a rescan fills them in."""
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("kept")
    async with store.transaction(lib) as tx:
        await tx.put_local(LocalRow("a.txt", size=1, mtime_ns=2, inode=3, digest="d"))
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE local DROP COLUMN fp"))
        await conn.execute(text("UPDATE meta SET value='3' WHERE key='schema_version'"))
    await store.close()
    store = await StateStore.open(tmp_path)
    assert await store.local_folder_prints(lib) == {"": None}
    async with store.transaction(lib) as tx:
        await tx.put_local(LocalRow("b.txt", size=5, mtime_ns=6, inode=7, digest="e"))
    assert await store.local_folder_prints(lib) == {"": None}  # a.txt's is still unknown
    async with store.batched(lib) as tx:
        await tx.set_local_fingerprints([("a.txt", 0, 1, 2, 3, 11)])
    [(count, total)] = [p for p in (await store.local_folder_prints(lib)).values() if p is not None]
    assert count == 2 and total == 11 + entry_fingerprint("b.txt", False, 5, 6, 7)
    await store.close()


async def test_a_fingerprint_is_filled_in_only_where_the_row_still_holds_what_it_was_computed_from(
    tmp_path: Path,
) -> None:
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("kept")
    async with store.transaction(lib) as tx:
        await tx.put_local(LocalRow("a.txt", size=9, mtime_ns=2, inode=3, digest="d"))
    async with store.batched(lib) as tx:  # computed from a.txt as it was before it was rewritten
        await tx.set_local_fingerprints([("a.txt", 0, 1, 2, 3, 11)])
    assert [row[5] for row in await store.local_folder(lib, "")] == [entry_fingerprint("a.txt", False, 9, 2, 3)]
    await store.close()


async def test_bulk_deletes_go_in_bounded_key_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clearing the staged listing and sweeping the rows a full listing did not see remove every row of
    a large library. SQLite (foreign keys on) first lists every row one DELETE removes, and that list is
    never given back: 23.5 MB for a million staged rows. Each DELETE must therefore remove at most
    ``DELETE_RANGE`` rows, through the primary key, and the result must be the same as one DELETE."""
    monkeypatch.setattr(writes, "DELETE_RANGE", 3, raising=False)
    store = await StateStore.open(tmp_path)
    lib, other = await store.library_id("big"), await store.library_id("other")
    items = [RemoteItem(f"id{i:02d}", "root", f"f{i:02d}.txt") for i in range(10)]
    rows = [
        RemoteRow(f"f{i:02d}.txt", f"id{i:02d}", parent_id="root", version="v1", name=f"f{i:02d}.txt")
        for i in range(10)
    ]
    for each in (lib, other):
        async with store.transaction(each) as tx:
            await tx.add_listing(items)
            await tx.put_remotes(rows, generation=1)
    seen = {f"f{i:02d}.txt" for i in (0, 2, 3, 5, 9)}  # f03: at a range's end; f09: the last row
    async with store.transaction(lib) as tx:
        await tx.touch_remotes(sorted(seen), generation=2)
    deletes: list[tuple[str, int]] = []
    plans: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((statement, cursor.rowcount))
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append(" ".join(str(row[3]) for row in plan))

    event.listen(store.engine.sync_engine, "after_cursor_execute", count)
    try:
        async with store.transaction(lib) as tx:
            assert await tx.sweep_remote(2) == 5
            await tx.clear_listing()
    finally:
        event.remove(store.engine.sync_engine, "after_cursor_execute", count)
    assert len(deletes) >= 6 and all(removed <= 3 for _, removed in deletes), deletes
    assert all(
        re.search(r"USING (COVERING )?INDEX sqlite_autoindex_\w+ \(lib=\? AND \w+[<>]", plan) for plan in plans
    ), plans
    assert {r.path for r in await store.remote_children(lib, "root")} == seen
    assert await store.listing_children(lib, "root") == []
    assert len(await store.remote_children(other, "root")) == 10  # another library's rows are not touched
    assert len(await store.listing_children(other, "root")) == 10
    await store.close()


async def test_a_large_subtree_is_deleted_in_bounded_key_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder removed with everything under it (a local folder of 500,000 files deleted at once, a
    remote one moved out of the library) goes in ranges of at most ``DELETE_RANGE`` rows, like the
    listing's bulk deletes, and takes nothing beside it; inside a group commit it still goes whole."""
    monkeypatch.setattr(writes, "DELETE_RANGE", 3, raising=False)
    store = await StateStore.open(tmp_path)
    lib = await store.library_id("big")
    inside = ["Docs", *(f"Docs/f{i}.txt" for i in range(7)), "Docs/sub", "Docs/sub/g.txt"]
    beside = ["Doc/x.txt", "Docs.txt", "Docs0", "Docs2/a.txt", "docs/y.txt"]
    for path in inside + beside:
        async with store.transaction(lib) as tx:
            await tx.put_local(LocalRow(path, size=1, mtime_ns=1, inode=1, digest="d"))
            await tx.put_synced(SyncedRow(path, digest="d", size=1))
    deletes: list[int] = []

    def count(_conn: Any, cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(cursor.rowcount)

    event.listen(store.engine.sync_engine, "after_cursor_execute", count)
    try:
        async with store.transaction(lib) as tx:
            await tx.delete_local("Docs", recursive=True)
        async with store.batched(lib) as tx:
            await tx.delete_synced("Docs", recursive=True)
    finally:
        event.remove(store.engine.sync_engine, "after_cursor_execute", count)
    local = [row[1] for row in await store.local_window(lib, "", 100)]
    assert sorted(local) == sorted(beside)
    async with store.engine.connect() as conn:
        synced = (await conn.execute(text("SELECT path FROM synced WHERE lib = :lib"), {"lib": lib})).scalars().all()
    assert sorted(synced) == sorted(beside)
    assert deletes[0] == 1 and len(deletes) >= 5 and all(n <= 3 for n in deletes[1:-2]), deletes  # local: ranges
    assert deletes[-1] == 9, deletes  # the group commit's: the subtree in one statement
    await store.close()


_SLOW_READ = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
)


async def test_a_read_cancelled_half_way_leaves_no_task_behind(tmp_path: Path) -> None:
    """A read cancelled while SQLite runs it (a stop, a SIGTERM during a pass): SQLAlchemy closes the
    connection gracefully in a task of its own and, cancelled again, stops the driver's thread at once.
    That task used to wait forever for a second stop the ended thread never ran; a daemon stopped during
    a read then hung in asyncio's final cancel of every task and never exited."""
    import asyncio

    import anyio

    before = asyncio.all_tasks()
    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("board")
    for _ in range(3):
        with anyio.move_on_after(0.05):
            async with store.engine.connect() as conn:
                await conn.execute(_SLOW_READ)
    await store.close()
    left = asyncio.all_tasks() - before  # the graceful closes: they end once SQLite is done with the reads
    if left:
        await asyncio.wait(left, timeout=60)  # each ends with its read (half a second here); stuck, never
    assert [task.get_coro() for task in asyncio.all_tasks() - before] == []
    store = await StateStore.open(tmp_path / "state")  # and the file is not left locked
    with anyio.fail_after(5):
        async with store.transaction(lib) as tx:
            await tx.put_local(LocalRow("after.txt", size=1))
    await store.close()
