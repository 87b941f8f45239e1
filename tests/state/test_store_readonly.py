"""``StateStore.open_readonly`` (what ``libmirror status`` reads through): creates, migrates, locks nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from daemon.state.migrations import SchemaMismatch
from daemon.state.schema import SCHEMA_VERSION
from daemon.state.store import STATE_FILE, StateStore
from daemon.vocab import LocalRow

pytestmark = pytest.mark.anyio


async def test_no_state_file_gives_none_and_creates_nothing(tmp_path: Path) -> None:
    assert await StateStore.open_readonly(tmp_path / "missing" / "state") is None
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    assert await StateStore.open_readonly(tmp_path / "empty") is None
    assert list((tmp_path / "empty").iterdir()) == []


async def test_reads_beside_a_writer_in_the_middle_of_a_transaction(tmp_path: Path) -> None:
    """A reader sees what is committed and neither waits for the writer nor holds it up."""
    state = tmp_path / "with ? and # in the name"  # a path, not a URL query
    writer = await StateStore.open(state)
    lib = await writer.library_id("board")
    async with writer.transaction(lib) as tx:
        await tx.put_local(LocalRow("a.txt", size=1, mtime_ns=2, inode=3, digest="d"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [state.name]
    reader = await StateStore.open_readonly(state)
    assert reader is not None
    try:
        async with writer.transaction(lib) as tx:
            await tx.put_local(LocalRow("b.txt", size=1, mtime_ns=2, inode=3, digest="e"))
            with anyio.fail_after(5):  # the writer holds SQLite's write lock right now
                assert set(await reader.local_children(lib, "")) == {"a.txt"}
                assert (await reader.counts(lib))["local_files"] == 1
        assert set(await reader.local_children(lib, "")) == {"a.txt", "b.txt"}
        # the lookup status uses never registers a library (``library_id`` would insert it)
        assert await reader.find_library("board") == lib
        assert await reader.find_library("later") is None
        assert await writer.library_names() == ["board"]
        with pytest.raises(DBAPIError, match="readonly"):
            async with reader.transaction(lib) as tx:
                await tx.set_status("last_pass", "x")
    finally:
        await reader.close()
        await writer.close()


async def test_another_schema_version_is_reported_not_migrated(tmp_path: Path) -> None:
    writer = await StateStore.open(tmp_path)
    async with writer.engine.begin() as conn:  # a version-1 file: no pending_replace table yet
        await conn.execute(text("DROP TABLE pending_replace"))
        await conn.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    await writer.close()
    with pytest.raises(SchemaMismatch, match=f"schema version 1, this libmirror reads version {SCHEMA_VERSION}"):
        await StateStore.open_readonly(tmp_path)
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'pending_replace'").fetchall()
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaMismatch, match="upgrade libmirror"):
        await StateStore.open_readonly(tmp_path)
