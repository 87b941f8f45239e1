"""The writes of one transaction, scoped to one library (``Txn``), and the replacement uploads in flight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import ColumnElement, String, Table, and_, bindparam, func, literal, select, true
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from daemon.state import schema
from daemon.state.group_commit import Executes, RecordingConn
from daemon.state.mapping import (
    LISTING_UPSERT,
    LOCAL_UPSERT,
    REMOTE_UPSERT,
    SYNCED_UPSERT,
    listing_values,
    local_values,
    parent_path,
    remote_values,
    synced_values,
    upsert,
)
from daemon.vocab import LocalRow, RemoteItem, RemoteRow, SyncedRow
from daemon.vocab.fingerprint import Fill

_CURSOR_UPSERT = upsert(schema.cursors, ("lib", "name"), ("value",))
_STATUS_UPSERT = upsert(schema.status, ("lib", "key"), ("value",))
_REMOTE_TOUCH = (
    schema.remote.update()
    .where(schema.remote.c.lib == bindparam("b_lib"), schema.remote.c.path == bindparam("b_path"))
    .values(generation=bindparam("b_generation"))
)
_NO_EXTRA: dict[str, Any] = {}
DELETE_RANGE = 10_000
"""Keys per ``DELETE`` of a bulk delete (``Txn._delete_in_ranges``): about 250 KB of row ids in SQLite."""
_LOCAL_FP_FILL = (
    schema.local.update()
    .where(
        schema.local.c.lib == bindparam("b_lib"),
        schema.local.c.path == bindparam("b_path"),
        schema.local.c.is_dir == bindparam("b_is_dir"),
        schema.local.c.size == bindparam("b_size"),
        schema.local.c.mtime_ns == bindparam("b_mtime_ns"),
        schema.local.c.inode == bindparam("b_inode"),
    )
    .values(fp=bindparam("b_fp"))
)


def _fill_values(lib: int, row: Fill) -> dict[str, Any]:
    path, is_dir, size, mtime_ns, inode, fp = row
    return {
        "b_lib": lib,
        "b_path": path,
        "b_is_dir": bool(is_dir),
        "b_size": size,
        "b_mtime_ns": mtime_ns,
        "b_inode": inode,
        "b_fp": fp,
    }


def under_folder(column: ColumnElement[str], folder: str) -> ColumnElement[bool]:
    """``column`` names a path strictly under folder ``folder`` (``"Docs"`` → ``Docs/...``).

    A range on the path, ``'Docs/' <= path < 'Docs0'`` (``'0'`` is ``'/'`` + 1), compared byte by byte
    (BINARY, the collation of every path column and of their indexes): case-sensitive, so ``docs/...``
    is never taken for ``Docs/...`` (SQLite's LIKE ignores ASCII case), free of wildcards to escape, and
    answered from the (lib, path) primary key. ``""`` is the library root: every path is under it.
    """
    if not folder:
        return true()
    path = column.collate("BINARY")
    return and_(path >= folder + "/", path < folder + "0")


@dataclass(frozen=True)
class PendingReplace:
    """A replacement upload that may have been cut short (see ``schema.pending_replace``)."""

    path: str
    old_remote_id: str
    parent_id: str
    size: int
    digest: str
    new_remote_id: str | None


class Txn:
    """Writes of one transaction, scoped to one library."""

    def __init__(self, conn: Executes, lib: int, *, shield: bool = True) -> None:
        self.conn = conn
        self.lib = lib
        self._shield = shield  # False for a recorder (group commit), which only keeps the statement

    async def _exec(self, statement: Any, parameters: Any = None) -> Any:
        """One statement, shielded from cancellation: a cancel in the middle of a write made the
        driver abandon its connection with the write lock still held (its close never ran), and every
        later writer failed with "database is locked" (found by the simulation's in-process crashes).
        A cancel between statements still rolls the transaction back."""
        if not self._shield:
            return await self.conn.execute(statement, parameters)
        with anyio.CancelScope(shield=True):
            return await self.conn.execute(statement, parameters)

    # -- local tree ------------------------------------------------------------------------------
    async def put_local(self, row: LocalRow) -> None:
        await self.put_locals([row])

    async def put_locals(self, rows: Sequence[LocalRow]) -> None:
        if not rows:
            return
        await self._exec(LOCAL_UPSERT, [local_values(self.lib, r, _NO_EXTRA) for r in rows])

    async def set_local_fingerprints(self, rows: Sequence[Fill]) -> None:
        """Fill in the fingerprints a rescan computed for rows it read whose own was missing or stale,
        each given as ``(path, is_dir, size, mtime_ns, inode, fp)``: written only where the row still
        holds those fields (a row rewritten meanwhile keeps the fingerprint its writer gave it)."""
        if rows:
            await self._exec(_LOCAL_FP_FILL, [_fill_values(self.lib, row) for row in rows])

    async def delete_local(self, path: str, *, recursive: bool = False) -> None:
        await self._delete_path(schema.local, path, recursive=recursive)

    # -- remote tree -----------------------------------------------------------------------------
    async def put_remote(self, row: RemoteRow, generation: int = 0) -> None:
        await self.put_remotes([row], generation)

    async def put_remotes(self, rows: Sequence[RemoteRow], generation: int = 0) -> None:
        if not rows:
            return
        given = {"generation": generation}
        await self._exec(REMOTE_UPSERT, [remote_values(self.lib, r, given) for r in rows])

    async def touch_remotes(self, paths: Sequence[str], generation: int) -> None:
        """Mark rows a full listing found unchanged as seen by ``generation``: only that column is
        written. A full upsert of an unchanged row rewrote its entries in every index (by id, by
        parent: random pages of a large tree), about 8 times the cost per row at 200,000 rows."""
        if not paths:
            return
        await self._exec(_REMOTE_TOUCH, [{"b_lib": self.lib, "b_path": p, "b_generation": generation} for p in paths])

    async def delete_remote(self, path: str, *, recursive: bool = False) -> None:
        await self._delete_path(schema.remote, path, recursive=recursive)

    async def delete_remote_id(self, remote_id: str) -> None:
        t = schema.remote
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.remote_id == remote_id))

    async def sweep_remote(self, generation: int) -> int:
        """Drop every remote row not seen by the full listing ``generation`` (in key ranges: see
        ``_delete_in_ranges``)."""
        t = schema.remote
        return await self._delete_in_ranges(t, t.c.path, t.c.generation != generation)

    # -- raw listing staging -------------------------------------------------------------------
    async def clear_listing(self) -> None:
        t = schema.remote_listing
        await self._delete_in_ranges(t, t.c.remote_id)

    async def _delete_path(self, table: Table, path: str, *, recursive: bool) -> None:
        """The row at ``path`` and, ``recursive``, every row under it. A subtree goes in key ranges
        (``_delete_in_ranges``: a folder of 500,000 files removed at once) where the results can be read;
        a group commit's block (``StateStore.batched``) only records statements, and sends it as one."""
        await self._exec(table.delete().where(table.c.lib == self.lib, table.c.path == path))
        if not recursive:
            return
        inside = under_folder(table.c.path, path)
        if isinstance(self.conn, RecordingConn):
            await self._exec(table.delete().where(table.c.lib == self.lib, inside))
        else:
            await self._delete_in_ranges(table, table.c.path, inside)

    async def _delete_in_ranges(self, table: Table, key: ColumnElement[str], *where: ColumnElement[bool]) -> int:
        """``DELETE`` the library's rows of ``table`` that match ``where``, one range of
        ``DELETE_RANGE`` keys at a time, in this transaction; returns how many went.

        With foreign keys on, SQLite first collects the row ids of every row a ``DELETE`` removes, then
        removes them: clearing a full listing of 1,000,000 files held 23.5 MB for that list (measured on
        the state file of ``make bench-scale``), which the process never gave back. A range of the
        (lib, key) primary key bounds the list whatever the library's size: each range ends at the
        ``DELETE_RANGE``-th matching key after the last one, found and deleted through that index, so the
        whole is still linear in the rows (and a small subtree costs one range).
        """
        lib = table.c.lib == self.lib
        deleted = 0
        after: str | None = None
        while True:
            above = [lib] if after is None else [lib, key > after]
            bound = (
                await self._exec(select(key).where(*above, *where).order_by(key).offset(DELETE_RANGE - 1).limit(1))
            ).scalar()
            upto = [] if bound is None else [key <= bound]
            result = await self._exec(table.delete().where(*above, *upto, *where))
            deleted += int(result.rowcount or 0)
            if bound is None:
                return deleted
            after = bound

    async def add_listing(self, items: Sequence[RemoteItem]) -> None:
        if not items:
            return
        await self._exec(LISTING_UPSERT, [listing_values(self.lib, i, _NO_EXTRA) for i in items])

    # -- synced tree -----------------------------------------------------------------------------
    async def put_synced(self, row: SyncedRow) -> None:
        await self._exec(SYNCED_UPSERT, synced_values(self.lib, row, _NO_EXTRA))

    async def delete_synced(self, path: str, *, recursive: bool = False) -> None:
        await self._delete_path(schema.synced, path, recursive=recursive)

    # -- all three trees ---------------------------------------------------------------------------
    async def move_subtree(self, src: str, dst: str, *, local_only: bool = False) -> None:
        """Re-key the rows at ``src`` and under ``src/`` to ``dst`` in the local, remote and synced
        trees (``local_only``: the local tree alone, for a local folder renamed aside as a conflict
        copy): a folder that moved in one call takes its whole subtree along, in this transaction.

        A row already at a new path is replaced by the moved one (the executor only moves onto
        paths its plan saw empty on that tree).
        """
        if src == dst:
            return
        cut = len(src) + 1  # SQLite substr() is 1-based: the rest after ``src``
        for table in (schema.local,) if local_only else (schema.local, schema.remote, schema.synced):
            inside = under_folder(table.c.path, src)
            values: dict[str, Any] = {"path": literal(dst, String).concat(func.substr(table.c.path, cut, type_=String))}
            if table is schema.local:
                values["parent"] = literal(dst, String).concat(func.substr(table.c.parent, cut, type_=String))
            await self._exec(
                table.update().prefix_with("OR REPLACE").where(table.c.lib == self.lib, inside).values(values)
            )
            top: dict[str, Any] = {"path": dst}
            if table is schema.local:
                top["parent"] = parent_path(dst)
                top["fp"] = None  # its name changed: not known until a rescan reads its folder
            await self._exec(
                table.update().prefix_with("OR REPLACE").where(table.c.lib == self.lib, table.c.path == src).values(top)
            )

    # -- replacement uploads in flight -----------------------------------------------------------
    async def begin_replace(self, path: str, old_remote_id: str, parent_id: str, size: int, digest: str) -> None:
        t = schema.pending_replace
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))
        await self._exec(
            t.insert(),
            {
                "lib": self.lib,
                "path": path,
                "old_remote_id": old_remote_id,
                "parent_id": parent_id,
                "size": size,
                "digest": digest,
                "new_remote_id": None,
            },
        )

    async def replace_uploaded(self, path: str, new_remote_id: str) -> None:
        t = schema.pending_replace
        await self._exec(t.update().where(t.c.lib == self.lib, t.c.path == path), {"new_remote_id": new_remote_id})

    async def end_replace(self, path: str) -> None:
        t = schema.pending_replace
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))

    # -- misc ------------------------------------------------------------------------------------
    async def set_cursor(self, name: str, value: str) -> None:
        await self._exec(_CURSOR_UPSERT, {"lib": self.lib, "name": name, "value": value})

    async def set_status(self, key: str, value: str) -> None:
        await self._exec(_STATUS_UPSERT, {"lib": self.lib, "key": key, "value": value})

    async def record_failure(self, path: str, error: str, now: float, *, base: float, factor: float, cap: float) -> int:
        t = schema.failures
        row = (await self._exec(select(t.c.attempts).where(t.c.lib == self.lib, t.c.path == path))).first()
        attempts = (row.attempts if row else 0) + 1
        delay = min(cap, base * factor ** (attempts - 1))
        stmt = sqlite_insert(t).values(
            lib=self.lib, path=path, attempts=attempts, next_at=now + delay, last_error=error
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["lib", "path"],
            set_={"attempts": stmt.excluded.attempts, "next_at": stmt.excluded.next_at, "last_error": error},
        )
        await self._exec(stmt)
        return attempts

    async def clear_failure(self, path: str) -> None:
        t = schema.failures
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))
