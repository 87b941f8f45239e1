"""The state store: the only code that writes SQL.

SQLite through SQLAlchemy 2 async + aiosqlite, WAL journal, file mode 0600. Every write that belongs
together (an action's new synced row plus the observations it now knows) goes through one
``transaction()``. Readers never load a whole tree: the planner reads only the rows of paths whose
three rows disagree (``changed_states``), the scanner reads one folder at a time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiosqlite
import anyio
from sqlalchemy import ColumnElement, String, and_, event, func, literal, select, text, true
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from daemon.state import schema
from daemon.state.migrations import check_readable, migrate
from daemon.vocab import KnownLocal, LocalRow, PathState, RemoteItem, RemoteRow, SyncedRow

STATE_FILE = "state.sqlite3"


class StoreUnreadable(RuntimeError):
    """``StateStore.open_readonly`` could not read the state file (not a database, no permission...)."""


def parent_path(path: str) -> str:
    """The library path of the folder holding ``path`` (``""`` is the root)."""
    head, _, _ = path.rpartition("/")
    return head


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


def _remote_from(row: Any) -> RemoteRow:
    return RemoteRow(
        path=row.path,
        remote_id=row.remote_id,
        is_dir=bool(row.is_dir),
        parent_id=row.parent_id,
        size=row.size,
        digest=row.digest,
        version=row.version,
        modified=row.modified,
        name=row.name,
    )


def _local_from(row: Any) -> LocalRow:
    return LocalRow(
        path=row.path,
        is_dir=bool(row.is_dir),
        size=row.size,
        mtime_ns=row.mtime_ns,
        inode=row.inode,
        digest=row.digest,
    )


def _synced_from(row: Any) -> SyncedRow:
    return SyncedRow(
        path=row.path,
        is_dir=bool(row.is_dir),
        digest=row.digest,
        size=row.size,
        remote_id=row.remote_id,
        remote_version=row.remote_version,
        local_mtime_ns=row.local_mtime_ns,
        local_inode=row.local_inode,
    )


def _upsert(table: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """An INSERT ... ON CONFLICT DO UPDATE statement, built once (building it is costly per call)."""
    stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})


_LOCAL_UPSERT = _upsert(schema.local, ("lib", "path"), ("parent", "is_dir", "size", "mtime_ns", "inode", "digest"))
_REMOTE_UPSERT = _upsert(
    schema.remote,
    ("lib", "path"),
    ("remote_id", "parent_id", "is_dir", "size", "digest", "version", "modified", "generation", "name"),
)
_SYNCED_UPSERT = _upsert(
    schema.synced,
    ("lib", "path"),
    ("is_dir", "digest", "size", "remote_id", "remote_version", "local_mtime_ns", "local_inode"),
)
_LISTING_UPSERT = _upsert(
    schema.remote_listing,
    ("lib", "remote_id"),
    ("parent_id", "name", "is_dir", "size", "digest", "version", "modified"),
)
_CURSOR_UPSERT = _upsert(schema.cursors, ("lib", "name"), ("value",))
_LOCAL_TREE_SQL = "SELECT path, is_dir, size, mtime_ns, inode, digest FROM local WHERE lib = ?"
_MERGEABLE = {id(_LOCAL_UPSERT), id(_REMOTE_UPSERT), id(_SYNCED_UPSERT)}  # see _coalesce
_STATUS_UPSERT = _upsert(schema.status, ("lib", "key"), ("value",))


class _Executes(Protocol):
    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...


class _RecordingConn:
    """Stands in for a connection: keeps the statements of a ``batched`` block for the group commit."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    async def execute(self, statement: Any, parameters: Any = None) -> None:
        self.calls.append((statement, parameters))


class _GroupCommit:
    """Commits the recorded writes of many finished actions in one transaction.

    Whoever holds the lock writes everything queued so far; writers queued meanwhile are written by
    the next holder. Under concurrency this turns N commits into a few, and each action's writes still
    land together or not at all.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.lock = anyio.Lock()
        self.pending: list[_Batch] = []

    async def commit(self, calls: list[tuple[Any, Any]]) -> None:
        batch = _Batch(calls)
        self.pending.append(batch)
        async with self.lock:
            if not batch.done:
                group, self.pending = self.pending, []
                try:
                    # shielded as a whole: the writes of several finished actions, a few ms; a cancel
                    # in the middle would leave the connection holding SQLite's write lock
                    with anyio.CancelScope(shield=True):
                        async with self.engine.begin() as conn:
                            for statement, parameters in _coalesce(group):
                                await conn.execute(statement, parameters)
                except BaseException as exc:
                    for entry in group:
                        entry.error = exc
                    raise
                finally:
                    for entry in group:
                        entry.done = True
        if batch.error is not None:
            raise batch.error


def _coalesce(group: list[_Batch]) -> list[tuple[Any, Any]]:
    """The statements of a group, with every upsert of one tree merged into one executemany.

    Each call is one round trip to the database thread, so N finished downloads cost 2 calls instead
    of 2N. Merging reorders statements across tables only; the tree upserts are keyed by path and
    independent of each other, and within one table the rows keep their order (a later write of the
    same path still wins). Any other statement in the group (a delete, a move) keeps the plain order.
    """
    calls = [call for entry in group for call in entry.calls]
    if len(calls) < 2 or not all(id(statement) in _MERGEABLE for statement, _ in calls):
        return calls
    merged: dict[int, tuple[Any, list[Any]]] = {}
    for statement, parameters in calls:
        rows = merged.setdefault(id(statement), (statement, []))[1]
        if isinstance(parameters, list):
            rows.extend(parameters)
        else:
            rows.append(parameters)
    return list(merged.values())


class _Batch:
    __slots__ = ("calls", "done", "error")

    def __init__(self, calls: list[tuple[Any, Any]]) -> None:
        self.calls = calls
        self.done = False
        self.error: BaseException | None = None


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

    def __init__(self, conn: _Executes, lib: int) -> None:
        self.conn = conn
        self.lib = lib

    async def _exec(self, statement: Any, parameters: Any = None) -> Any:
        """One statement, shielded from cancellation: a cancel in the middle of a write made the
        driver abandon its connection with the write lock still held (its close never ran), and every
        later writer failed with "database is locked" (found by the simulation's in-process crashes).
        A cancel between statements still rolls the transaction back."""
        with anyio.CancelScope(shield=True):
            return await self.conn.execute(statement, parameters)

    # -- local tree ------------------------------------------------------------------------------
    async def put_local(self, row: LocalRow) -> None:
        await self.put_locals([row])

    async def put_locals(self, rows: Sequence[LocalRow]) -> None:
        if not rows:
            return
        values = [
            {
                "lib": self.lib,
                "path": r.path,
                "parent": parent_path(r.path),
                "is_dir": r.is_dir,
                "size": r.size,
                "mtime_ns": r.mtime_ns,
                "inode": r.inode,
                "digest": r.digest,
            }
            for r in rows
        ]
        await self._exec(_LOCAL_UPSERT, values)

    async def delete_local(self, path: str, *, recursive: bool = False) -> None:
        t = schema.local
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))
        if recursive:
            await self._exec(t.delete().where(t.c.lib == self.lib, under_folder(t.c.path, path)))

    # -- remote tree -----------------------------------------------------------------------------
    async def put_remote(self, row: RemoteRow, generation: int = 0) -> None:
        await self.put_remotes([row], generation)

    async def put_remotes(self, rows: Sequence[RemoteRow], generation: int = 0) -> None:
        if not rows:
            return
        values = [
            {
                "lib": self.lib,
                "path": r.path,
                "remote_id": r.remote_id,
                "parent_id": r.parent_id,
                "is_dir": r.is_dir,
                "size": r.size,
                "digest": r.digest,
                "version": r.version,
                "modified": r.modified,
                "generation": generation,
                "name": r.name,
            }
            for r in rows
        ]
        await self._exec(_REMOTE_UPSERT, values)

    async def delete_remote(self, path: str, *, recursive: bool = False) -> None:
        t = schema.remote
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))
        if recursive:
            await self._exec(t.delete().where(t.c.lib == self.lib, under_folder(t.c.path, path)))

    async def delete_remote_id(self, remote_id: str) -> None:
        t = schema.remote
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.remote_id == remote_id))

    async def sweep_remote(self, generation: int) -> int:
        """Drop every remote row not seen by the full listing ``generation``."""
        t = schema.remote
        result = await self._exec(t.delete().where(t.c.lib == self.lib, t.c.generation != generation))
        return int(result.rowcount or 0)

    # -- raw listing staging -------------------------------------------------------------------
    async def clear_listing(self) -> None:
        t = schema.remote_listing
        await self._exec(t.delete().where(t.c.lib == self.lib))

    async def add_listing(self, items: Sequence[RemoteItem]) -> None:
        if not items:
            return
        await self._exec(
            _LISTING_UPSERT,
            [
                {
                    "lib": self.lib,
                    "remote_id": i.remote_id,
                    "parent_id": i.parent_id,
                    "name": i.name,
                    "is_dir": i.is_dir,
                    "size": i.size,
                    "digest": i.digest,
                    "version": i.version,
                    "modified": i.modified,
                }
                for i in items
            ],
        )

    # -- synced tree -----------------------------------------------------------------------------
    async def put_synced(self, row: SyncedRow) -> None:
        await self._exec(
            _SYNCED_UPSERT,
            {
                "lib": self.lib,
                "path": row.path,
                "is_dir": row.is_dir,
                "digest": row.digest,
                "size": row.size,
                "remote_id": row.remote_id,
                "remote_version": row.remote_version,
                "local_mtime_ns": row.local_mtime_ns,
                "local_inode": row.local_inode,
            },
        )

    async def delete_synced(self, path: str, *, recursive: bool = False) -> None:
        t = schema.synced
        await self._exec(t.delete().where(t.c.lib == self.lib, t.c.path == path))
        if recursive:
            await self._exec(t.delete().where(t.c.lib == self.lib, under_folder(t.c.path, path)))

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


class StateStore:
    """One state file, shared by every library of a config."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._group = _GroupCommit(engine)

    @classmethod
    async def open(cls, state_dir: Path | str, *, url: str | URL | None = None) -> StateStore:
        """Open (creating and migrating as needed) the store under ``state_dir``."""
        if url is None:
            state_dir = Path(state_dir)
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = state_dir / STATE_FILE
            if not db.exists():
                fd = os.open(db, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            os.chmod(db, 0o600)
            # built, not parsed: a "?" or "#" in state_dir is part of the path, not a query
            url = URL.create("sqlite+aiosqlite", database=str(db))
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        async with engine.begin() as conn:
            await conn.run_sync(migrate)
        return cls(engine)

    @classmethod
    async def open_readonly(cls, state_dir: Path | str) -> StateStore | None:
        """The store under ``state_dir`` for reading only (``libmirror status``); None when there is none.

        Never creates the directory or the file, never migrates (a file at another schema version
        raises :class:`~daemon.state.migrations.SchemaMismatch`) and takes no lock: in WAL mode it
        reads beside a running daemon without waiting for it or holding it up. SQLite's ``-wal`` and
        ``-shm`` files are created if a stopped daemon left none (owned like the database file).
        """
        db = Path(state_dir) / STATE_FILE
        if not db.is_file():
            return None
        uri = f"file:{quote(str(db.resolve()))}?mode=ro"

        async def connect() -> aiosqlite.Connection:
            return await aiosqlite.connect(uri, uri=True)

        engine = create_async_engine("sqlite+aiosqlite://", async_creator=connect)
        event.listen(engine.sync_engine, "connect", _sqlite_readonly_pragmas)
        try:
            async with engine.connect() as conn:
                version = await conn.run_sync(check_readable)
        except DBAPIError as exc:
            await engine.dispose()
            raise StoreUnreadable(f"{db}: {exc.orig}") from exc
        except BaseException:
            await engine.dispose()
            raise
        if version is None:  # created, never set up (a first run that died at once): nothing to read
            await engine.dispose()
            return None
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self, lib: int) -> AsyncIterator[Txn]:
        """One SQL transaction. Its begin and its end (commit or rollback) are shielded from cancellation:
        a pass cancelled mid-transaction otherwise left the aiosqlite connection un-rolled-back and
        holding SQLite's write lock, and every later writer (a restarted pass, the other libraries of
        the daemon) failed with "database is locked" (found by the simulation's in-process crashes)."""
        begin = self.engine.begin()
        with anyio.CancelScope(shield=True):
            conn = await begin.__aenter__()
        try:
            yield Txn(conn, lib)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await begin.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        with anyio.CancelScope(shield=True):
            await begin.__aexit__(None, None, None)

    @asynccontextmanager
    async def batched(self, lib: int) -> AsyncIterator[Txn]:
        """Like ``transaction`` for write-only blocks, committed together with other concurrent
        ``batched`` blocks (group commit). Returns once the writes are durable; a block that raises
        writes nothing. Methods that read results (``record_failure``, ``sweep_remote``) need
        ``transaction``."""
        recorder = _RecordingConn()
        yield Txn(recorder, lib)
        if recorder.calls:
            await self._group.commit(recorder.calls)

    # -- libraries -------------------------------------------------------------------------------
    async def library_id(self, name: str) -> int:
        with anyio.CancelScope(shield=True):  # may write: never left half-done (see ``transaction``)
            lib = await self._library_id(name)
        return lib

    async def _library_id(self, name: str) -> int:
        t = schema.libraries
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(t.c.id).where(t.c.name == name))).first()
            if row:
                return int(row.id)
            result = await conn.execute(t.insert().values(name=name))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def find_library(self, name: str) -> int | None:
        """The id of library ``name``; None when the store has not seen it yet (never writes)."""
        t = schema.libraries
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.c.id).where(t.c.name == name))).first()
            return int(row.id) if row else None

    async def library_names(self) -> list[str]:
        t = schema.libraries
        async with self.engine.connect() as conn:
            return [r.name for r in await conn.execute(select(t.c.name).order_by(t.c.name))]

    # -- reads -----------------------------------------------------------------------------------
    async def local_children(self, lib: int, parent: str) -> dict[str, LocalRow]:
        t = schema.local
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.parent == parent))
            return {r.path.rpartition("/")[2]: _local_from(r) for r in rows}

    async def local_names(self, lib: int, parent: str) -> list[str]:
        """The names of the local entries directly in folder ``parent``."""
        t = schema.local
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.path).where(t.c.lib == lib, t.c.parent == parent))
            return [r.path.rpartition("/")[2] for r in rows]

    async def local_tree(self, lib: int) -> dict[str, dict[str, KnownLocal]]:
        """The whole local tree as {parent folder: {name: row}}, in one query (for full rescans)."""
        t = schema.local
        out: dict[str, dict[str, KnownLocal]] = {}
        make = tuple.__new__
        async with self.engine.connect() as conn:
            if self.engine.dialect.driver == "aiosqlite":
                # one hop to the database thread for the whole tree, plain tuples from the driver: a
                # 100,000-file rescan spends its time on the disk, not on building result objects
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                rows = await raw.execute_fetchall(_LOCAL_TREE_SQL, (lib,))
            else:
                result = await conn.execute(
                    select(t.c.path, t.c.is_dir, t.c.size, t.c.mtime_ns, t.c.inode, t.c.digest).where(t.c.lib == lib)
                )
                rows = [tuple(r) for r in result]
        for row in rows:
            parent, _, name = row[0].rpartition("/")
            out.setdefault(parent, {})[name] = make(KnownLocal, row)  # is_dir stays SQLite's 0/1
        return out

    async def local_at(self, lib: int, path: str) -> LocalRow | None:
        t = schema.local
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return _local_from(row) if row else None

    async def remote_at(self, lib: int, path: str) -> RemoteRow | None:
        t = schema.remote
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return _remote_from(row) if row else None

    async def remote_by_id(self, lib: int, remote_id: str) -> RemoteRow | None:
        t = schema.remote
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.remote_id == remote_id))).first()
            return _remote_from(row) if row else None

    async def remote_by_ids(self, lib: int, remote_ids: Sequence[str]) -> dict[str, RemoteRow]:
        t = schema.remote
        out: dict[str, RemoteRow] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(remote_ids), 500):
                rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.remote_id.in_(remote_ids[i : i + 500])))
                out.update({r.remote_id: _remote_from(r) for r in rows})
        return out

    async def remote_children(self, lib: int, parent_id: str) -> list[RemoteRow]:
        t = schema.remote
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.parent_id == parent_id))
            return [_remote_from(r) for r in rows]

    async def remote_dirs(self, lib: int) -> list[RemoteRow]:
        t = schema.remote
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.is_dir.is_(True)))
            return [_remote_from(r) for r in rows]

    async def synced_at(self, lib: int, path: str) -> SyncedRow | None:
        t = schema.synced
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return _synced_from(row) if row else None

    async def has_synced(self, lib: int) -> bool:
        t = schema.synced
        async with self.engine.connect() as conn:
            return (await conn.execute(select(t.c.path).where(t.c.lib == lib).limit(1))).first() is not None

    async def counts(self, lib: int) -> dict[str, int]:
        out: dict[str, int] = {}
        async with self.engine.connect() as conn:
            for name, t in (("local", schema.local), ("remote", schema.remote), ("synced", schema.synced)):
                out[name] = int(
                    (await conn.execute(select(func.count()).select_from(t).where(t.c.lib == lib))).scalar_one()
                )
                out[name + "_files"] = int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(t).where(t.c.lib == lib, t.c.is_dir.is_(False))
                        )
                    ).scalar_one()
                )
        return out

    async def get_cursor(self, lib: int, name: str) -> str | None:
        t = schema.cursors
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.c.value).where(t.c.lib == lib, t.c.name == name))).first()
            return str(row.value) if row else None

    async def get_status(self, lib: int) -> dict[str, str]:
        t = schema.status
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.key, t.c.value).where(t.c.lib == lib))
            return {r.key: r.value for r in rows}

    async def failures(self, lib: int) -> list[tuple[str, int, float, str]]:
        t = schema.failures
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.c.path, t.c.attempts, t.c.next_at, t.c.last_error).where(t.c.lib == lib).order_by(t.c.path)
            )
            return [(r.path, r.attempts, r.next_at, r.last_error) for r in rows]

    async def listing_children(self, lib: int, parent_id: str) -> list[RemoteItem]:
        t = schema.remote_listing
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t).where(t.c.lib == lib, t.c.parent_id == parent_id).order_by(t.c.remote_id)
            )
            return [
                RemoteItem(
                    remote_id=r.remote_id,
                    parent_id=r.parent_id,
                    name=r.name,
                    is_dir=bool(r.is_dir),
                    size=r.size,
                    digest=r.digest,
                    version=r.version,
                    modified=r.modified,
                )
                for r in rows
            ]

    async def pending_replaces(self, lib: int) -> list[PendingReplace]:
        t = schema.pending_replace
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib).order_by(t.c.path))
            return [
                PendingReplace(r.path, r.old_remote_id, r.parent_id, r.size, r.digest, r.new_remote_id) for r in rows
            ]

    async def synced_remote_ids(self, lib: int, remote_ids: Iterable[str]) -> set[str]:
        """Which of ``remote_ids`` the synced tree refers to."""
        t = schema.synced
        wanted = list(remote_ids)
        out: set[str] = set()
        async with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                rows = await conn.execute(
                    select(t.c.remote_id).where(t.c.lib == lib, t.c.remote_id.in_(wanted[i : i + 500]))
                )
                out.update(r.remote_id for r in rows)
        return out

    async def changed_states(self, lib: int, *, limit: int | None = None) -> list[PathState]:
        """The three rows of every path whose trees disagree, ordered by path.

        A path is in sync when all three rows exist, agree on the kind (file/folder), and for files the
        local digest equals the synced digest and the remote id and version equal the synced ones.
        """
        sql = """
        WITH paths AS (
            SELECT path FROM local WHERE lib = :lib
            UNION SELECT path FROM remote WHERE lib = :lib
            UNION SELECT path FROM synced WHERE lib = :lib
        )
        SELECT p.path AS path,
               l.path AS l_path, l.is_dir AS l_is_dir, l.size AS l_size, l.mtime_ns AS l_mtime_ns,
               l.inode AS l_inode, l.digest AS l_digest,
               r.path AS r_path, r.remote_id AS r_remote_id, r.parent_id AS r_parent_id, r.is_dir AS r_is_dir,
               r.size AS r_size, r.digest AS r_digest, r.version AS r_version, r.modified AS r_modified,
               r.name AS r_name,
               s.path AS s_path, s.is_dir AS s_is_dir, s.digest AS s_digest, s.size AS s_size,
               s.remote_id AS s_remote_id, s.remote_version AS s_remote_version,
               s.local_mtime_ns AS s_local_mtime_ns, s.local_inode AS s_local_inode
        FROM paths p
        LEFT JOIN local l ON l.lib = :lib AND l.path = p.path
        LEFT JOIN remote r ON r.lib = :lib AND r.path = p.path
        LEFT JOIN synced s ON s.lib = :lib AND s.path = p.path
        WHERE NOT (
            l.path IS NOT NULL AND r.path IS NOT NULL AND s.path IS NOT NULL
            AND l.is_dir = s.is_dir AND r.is_dir = s.is_dir
            AND (s.is_dir OR (l.digest IS s.digest AND r.remote_id IS s.remote_id
                              AND r.version IS s.remote_version))
        )
        ORDER BY p.path
        """
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out: list[PathState] = []
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), {"lib": lib})
            for row in result:
                m = row._mapping
                local_row = (
                    LocalRow(
                        path=m["path"],
                        is_dir=bool(m["l_is_dir"]),
                        size=m["l_size"],
                        mtime_ns=m["l_mtime_ns"],
                        inode=m["l_inode"],
                        digest=m["l_digest"],
                    )
                    if m["l_path"] is not None
                    else None
                )
                remote_row = (
                    RemoteRow(
                        path=m["path"],
                        remote_id=m["r_remote_id"],
                        is_dir=bool(m["r_is_dir"]),
                        parent_id=m["r_parent_id"],
                        size=m["r_size"],
                        digest=m["r_digest"],
                        version=m["r_version"],
                        modified=m["r_modified"],
                        name=m["r_name"],
                    )
                    if m["r_path"] is not None
                    else None
                )
                synced_row = (
                    SyncedRow(
                        path=m["path"],
                        is_dir=bool(m["s_is_dir"]),
                        digest=m["s_digest"],
                        size=m["s_size"],
                        remote_id=m["s_remote_id"],
                        remote_version=m["s_remote_version"],
                        local_mtime_ns=m["s_local_mtime_ns"],
                        local_inode=m["s_local_inode"],
                    )
                    if m["s_path"] is not None
                    else None
                )
                out.append(PathState(m["path"], local_row, remote_row, synced_row))
        return out

    async def iter_remote_paths(self, lib: int, paths: Iterable[str]) -> dict[str, RemoteRow]:
        t = schema.remote
        wanted = list(paths)
        out: dict[str, RemoteRow] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.path.in_(chunk)))
                out.update({r.path: _remote_from(r) for r in rows})
        return out


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_readonly_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
