"""Rows ↔ tables in one place: every field of a row type has its column, and every row type
round-trips through a real store unchanged (a field added to a row without its column fails here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from daemon.state.mapping import ROW_TABLES, RowTable
from daemon.state.store import StateStore
from daemon.vocab import LocalRow, RemoteItem, RemoteRow, SyncedRow

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("rows", ROW_TABLES, ids=lambda r: r.row.__name__)
def test_every_field_of_a_row_has_its_column(rows: RowTable[Any]) -> None:
    columns = set(rows.table.c.keys())
    fields = {f.name for f in dataclasses.fields(rows.row)}
    assert fields - columns == set(), f"{rows.row.__name__} fields without a column in {rows.table.name}"
    # and nothing the store writes lacks a column either
    assert set(rows.extra) | {"lib"} <= columns


async def test_rows_round_trip_through_the_store(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state")
    try:
        lib = await store.library_id("board")
        local = LocalRow(
            "Docs/a.pdf", is_dir=False, size=12, mtime_ns=1_700_000_000_123_456_789, inode=42, digest="d" * 32
        )
        remote = RemoteRow(
            "Docs/a.pdf", "r-1", is_dir=False, parent_id="p-1", size=12, digest="d" * 32, version="v7",
            modified="2026-01-05T09:14:03Z", name="a.pdf",
        )  # fmt: skip
        synced = SyncedRow(
            "Docs/a.pdf", is_dir=False, digest="d" * 32, size=12, remote_id="r-1", remote_version="v7",
            local_mtime_ns=1_700_000_000_123_456_789, local_inode=42,
        )  # fmt: skip
        item = RemoteItem("r-2", "p-1", "b.pdf", is_dir=False, size=3, digest=None, version="v1", modified=None)
        folder = LocalRow("Docs", is_dir=True)
        async with store.transaction(lib) as tx:
            await tx.put_locals([local, folder])
            await tx.put_remote(remote)
            await tx.put_synced(synced)
            await tx.add_listing([item])
        assert await store.local_at(lib, "Docs/a.pdf") == local
        assert await store.local_at(lib, "Docs") == folder
        assert await store.remote_at(lib, "Docs/a.pdf") == remote
        assert await store.synced_at(lib, "Docs/a.pdf") == synced
        assert await store.listing_children(lib, "p-1") == [item]
        [state] = [s for s in await store.changed_states(lib) if s.path == "Docs/a.pdf"] or [None]
        assert state is None  # the three rows agree: not a change
        async with store.transaction(lib) as tx:
            await tx.put_synced(dataclasses.replace(synced, remote_version="v6"))
        [state] = [s for s in await store.changed_states(lib) if s.path == "Docs/a.pdf"]
        assert (state.local, state.remote, state.synced) == (
            local,
            remote,
            dataclasses.replace(synced, remote_version="v6"),
        )
    finally:
        await store.close()
