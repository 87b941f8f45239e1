"""The state store: the only code that writes SQL.

SQLite through SQLAlchemy 2 async + aiosqlite, WAL journal, file mode 0600. Every write that belongs
together (an action's new synced row plus the observations it now knows) goes through one
``transaction()``. Readers never load a whole tree: the planner reads only the rows of paths whose
three rows disagree (``changed_states``), the scanner reads one folder at a time.

One dialect: SQLAlchemy Core expressions (raw SQL only in the pragmas here and in migrations). The
writes of a transaction live in ``writes.py``, the group commit in ``group_commit.py``, and how each
row type maps to its table in ``mapping.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from sqlalchemy import Integer, bindparam, event, func, or_, select, union
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from daemon.state import driver, schema
from daemon.state.group_commit import GroupCommit, RecordingConn
from daemon.state.mapping import (
    LOCAL,
    REMOTE,
    SYNCED,
    listing_from,
    local_from,
    parent_path,
    remote_from,
    synced_from,
)
from daemon.state.migrations import check_readable, migrate
from daemon.state.writes import PendingReplace, Txn, under_folder
from daemon.vocab import LocalRow, PathState, RemoteItem, RemoteRow, SyncedRow
from daemon.vocab.fingerprint import LOW_BITS, FolderRow, summed

__all__ = [
    "STATE_FILE",
    "PendingReplace",
    "StateStore",
    "StoreUnreadable",
    "Txn",
    "parent_path",
    "under_folder",
]

STATE_FILE = "state.sqlite3"

_L = schema.local
_STAT_COLUMNS = (_L.c.path, _L.c.is_dir, _L.c.size, _L.c.mtime_ns, _L.c.inode)  # a StoredStat's fields
_LOCAL_WINDOW = (
    select(_L.c.parent, *_STAT_COLUMNS)
    .where(_L.c.lib == bindparam("lib"), _L.c.parent >= bindparam("parent"))
    .order_by(_L.c.parent)
    .limit(bindparam("size"))
)
_LOCAL_WINDOW_SQL = str(_LOCAL_WINDOW.compile(dialect=sqlite.dialect()))

_LOW = (1 << LOW_BITS) - 1
_FOLDER_PRINTS = (
    select(
        _L.c.parent,
        func.count(),
        func.count(_L.c.fp),
        func.sum(_L.c.fp.op("&")(_LOW)),
        func.sum(_L.c.fp.op(">>")(LOW_BITS)),
    )
    .where(_L.c.lib == bindparam("lib"))
    .group_by(_L.c.parent)
)
_FOLDER_ROWS = select(*_STAT_COLUMNS, _L.c.fp).where(_L.c.lib == bindparam("lib"), _L.c.parent == bindparam("parent"))

_TREES = (schema.local, schema.remote, schema.synced)


def _changed_states_query(*, window: bool = False) -> Any:
    """The three rows of every path whose trees disagree (see ``StateStore.changed_states``), as one
    Core statement: the union of the trees' paths, each tree outer-joined, its columns labelled
    ``l_``/``r_``/``s_`` + field name (``mapping`` reads them back). ``window``: only the paths after
    ``:after`` up to ``:last`` (both bound parameters; see ``StateStore.changed_window``)."""
    lib = bindparam("lib", type_=Integer)
    loc, rem, syn = schema.local.alias("l"), schema.remote.alias("r"), schema.synced.alias("s")

    def tree_paths(t: Any) -> Any:
        chosen = select(t.c.path).where(t.c.lib == lib)
        if window:
            chosen = chosen.where(t.c.path > bindparam("after"), t.c.path <= bindparam("last"))
        return chosen

    paths = union(*(tree_paths(t) for t in _TREES)).cte("paths")
    columns = [paths.c.path.label("path")]
    for alias, prefix, rows in ((loc, "l_", LOCAL), (rem, "r_", REMOTE), (syn, "s_", SYNCED)):
        columns += [alias.c[name].label(prefix + name) for name in rows.fields]
    in_sync = (
        loc.c.path.is_not(None)
        & rem.c.path.is_not(None)
        & syn.c.path.is_not(None)
        & (loc.c.is_dir == syn.c.is_dir)
        & (rem.c.is_dir == syn.c.is_dir)
        & or_(
            syn.c.is_dir,
            loc.c.digest.is_not_distinct_from(syn.c.digest)
            & rem.c.remote_id.is_not_distinct_from(syn.c.remote_id)
            & rem.c.version.is_not_distinct_from(syn.c.remote_version),
        )
    )
    return (
        select(*columns)
        .select_from(
            paths.outerjoin(loc, (loc.c.lib == lib) & (loc.c.path == paths.c.path))
            .outerjoin(rem, (rem.c.lib == lib) & (rem.c.path == paths.c.path))
            .outerjoin(syn, (syn.c.lib == lib) & (syn.c.path == paths.c.path))
        )
        .where(~in_sync)
        .order_by(paths.c.path)
    )


_CHANGED_STATES = _changed_states_query()
_CHANGED_WINDOW = _changed_states_query(window=True)


def _window_end_query() -> Any:
    """The ``:size``-th path after ``:after`` in the union of the three trees (or the last one there is):
    each tree gives at most ``:size`` paths from its index, so a window costs its size, not the tree's."""
    lib, size = bindparam("lib", type_=Integer), bindparam("size", type_=Integer)
    after: Any = bindparam("after")
    heads = [
        select(t.c.path).where(t.c.lib == lib, t.c.path > after).order_by(t.c.path).limit(size).subquery()
        for t in _TREES
    ]
    paths = union(*(select(h.c.path) for h in heads)).subquery()
    first = select(paths.c.path).order_by(paths.c.path).limit(size).subquery()
    return select(func.max(first.c.path), func.count())


_WINDOW_END = _window_end_query()


def _unpageable_query() -> Any:
    """One path (if any) whose plan may depend on other paths' rows: a synced path missing on a side
    (a delete, or the source of a move), a file on one side and a folder on the other or in the base,
    or a file changed on both sides (a conflict copy takes a name). See ``StateStore.pageable``."""
    lib = bindparam("lib", type_=Integer)
    loc, rem, syn = schema.local.alias("l"), schema.remote.alias("r"), schema.synced.alias("s")
    paths = union(*(select(t.c.path).where(t.c.lib == lib) for t in _TREES)).cte("paths")
    both = loc.c.path.is_not(None) & rem.c.path.is_not(None)
    based = syn.c.path.is_not(None)
    unsafe = or_(
        based & (loc.c.path.is_(None) | rem.c.path.is_(None)),
        both & (loc.c.is_dir != rem.c.is_dir),
        based & loc.c.path.is_not(None) & (loc.c.is_dir != syn.c.is_dir),
        based & rem.c.path.is_not(None) & (rem.c.is_dir != syn.c.is_dir),
        both & ~based & ~loc.c.is_dir & loc.c.digest.is_distinct_from(rem.c.digest),
        both
        & based
        & ~loc.c.is_dir
        & loc.c.digest.is_distinct_from(syn.c.digest)
        & (rem.c.remote_id.is_distinct_from(syn.c.remote_id) | rem.c.version.is_distinct_from(syn.c.remote_version)),
    )
    return (
        select(paths.c.path)
        .select_from(
            paths.outerjoin(loc, (loc.c.lib == lib) & (loc.c.path == paths.c.path))
            .outerjoin(rem, (rem.c.lib == lib) & (rem.c.path == paths.c.path))
            .outerjoin(syn, (syn.c.lib == lib) & (syn.c.path == paths.c.path))
        )
        .where(unsafe)
        .limit(1)
    )


_UNPAGEABLE = _unpageable_query()


def _path_states(result: Any) -> list[PathState]:
    """The states of a changed-paths result (columns ``path``, then ``l_``, ``r_`` and ``s_`` for the
    three trees' rows, NULL where a tree has none), read by position: up to a window of them per call."""
    columns = list(result.keys())
    at = columns.index
    path, local, remote, synced = at("path"), at("l_path"), at("r_path"), at("s_path")
    read_local, read_remote = LOCAL.reader_at(columns, "l_"), REMOTE.reader_at(columns, "r_")
    read_synced = SYNCED.reader_at(columns, "s_")
    return [
        PathState(
            row[path],
            read_local(row) if row[local] is not None else None,
            read_remote(row) if row[remote] is not None else None,
            read_synced(row) if row[synced] is not None else None,
        )
        for row in result
    ]


class StoreUnreadable(RuntimeError):
    """``StateStore.open_readonly`` could not read the state file (not a database, no permission...)."""


class StateStore:
    """One state file, shared by every library of a config."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._group = GroupCommit(engine)

    @classmethod
    async def open(cls, state_dir: Path | str, *, url: str | URL | None = None) -> StateStore:
        """Open (creating and migrating as needed) the store under ``state_dir``."""
        options: dict[str, Any] = {}
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
            # the connect arguments SQLAlchemy's dialect gives a file, through our driver (see its doc)
            options["async_creator"] = partial(driver.connect, str(db), check_same_thread=False)
        # no rollback when a connection goes back to the pool: every block ends its own transaction
        # (``begin()`` commits or rolls back, a read's ``connect()`` rolls back on close, the group
        # commit commits or rolls back on the driver), and each rollback is a trip to aiosqlite's
        # thread that wakes two threads, once per read and per commit
        engine = create_async_engine(url, pool_reset_on_return=None, **options)
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

        engine = create_async_engine("sqlite+aiosqlite://", async_creator=partial(driver.connect, uri, uri=True))
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
        writes nothing. Methods that read results (``record_failure``, ``sweep_remote``,
        ``clear_listing``) need ``transaction``."""
        recorder = RecordingConn()
        yield Txn(recorder, lib, shield=False)
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
            return {r.path.rpartition("/")[2]: local_from(r._mapping) for r in rows}

    async def local_names(self, lib: int, parent: str) -> list[str]:
        """The names of the local entries directly in folder ``parent``."""
        t = schema.local
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.path).where(t.c.lib == lib, t.c.parent == parent))
            return [r.path.rpartition("/")[2] for r in rows]

    async def local_folder_prints(self, lib: int) -> dict[str, tuple[int, int] | None]:
        """Per folder of the local tree, its rows' count and fingerprint sum, summed up by SQLite (a full
        rescan's knowledge of an unchanged folder: see ``daemon/vocab/fingerprint.py``); None for a
        folder holding a row whose fingerprint is not known yet."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(_FOLDER_PRINTS, {"lib": lib})
            return {
                parent: summed(count, low, high) if known == count else None for parent, count, known, low, high in rows
            }

    async def local_folder(self, lib: int, parent: str) -> list[FolderRow]:
        """The rows of the direct children of ``parent`` as ``(path, is_dir, size, mtime_ns, inode, fp)``."""
        async with self.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(_FOLDER_ROWS, {"lib": lib, "parent": parent})]

    async def local_at(self, lib: int, path: str) -> LocalRow | None:
        t = schema.local
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return local_from(row._mapping) if row else None

    async def remote_at(self, lib: int, path: str) -> RemoteRow | None:
        t = schema.remote
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return remote_from(row._mapping) if row else None

    async def remote_by_id(self, lib: int, remote_id: str) -> RemoteRow | None:
        t = schema.remote
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.remote_id == remote_id))).first()
            return remote_from(row._mapping) if row else None

    async def remote_by_ids(self, lib: int, remote_ids: Sequence[str]) -> dict[str, RemoteRow]:
        t = schema.remote
        out: dict[str, RemoteRow] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(remote_ids), 500):
                rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.remote_id.in_(remote_ids[i : i + 500])))
                out.update({r.remote_id: remote_from(r._mapping) for r in rows})
        return out

    async def remote_children(self, lib: int, parent_id: str) -> list[RemoteRow]:
        t = schema.remote
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.parent_id == parent_id))
            return [remote_from(r._mapping) for r in rows]

    async def remote_dirs(self, lib: int) -> list[RemoteRow]:
        t = schema.remote
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.is_dir.is_(True)))
            return [remote_from(r._mapping) for r in rows]

    async def synced_at(self, lib: int, path: str) -> SyncedRow | None:
        t = schema.synced
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.lib == lib, t.c.path == path))).first()
            return synced_from(row._mapping) if row else None

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
            # sorted here, not by SQL: an ORDER BY remote_id made SQLite walk the primary key (every staged
            # row of the library, for each folder: quadratic) instead of the parent index
            rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.parent_id == parent_id))
            return sorted((listing_from(r._mapping) for r in rows), key=attrgetter("remote_id"))

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
        statement = _CHANGED_STATES if limit is None else _CHANGED_STATES.limit(int(limit))
        async with self.engine.connect() as conn:
            return _path_states(await conn.execute(statement, {"lib": lib}))

    async def changed_window(self, lib: int, after: str, size: int) -> tuple[list[PathState], str | None]:
        """The changed paths (as ``changed_states``) among the next ``size`` paths of the three trees
        after ``after`` (``""``: from the start), and the last path of that window: the ``after`` of the
        next call, None when the trees hold nothing after ``after``. A walk over the windows reads each
        path once and holds at most ``size`` states (a window may hold no changed path at all)."""
        async with self.engine.connect() as conn:
            last, seen = (await conn.execute(_WINDOW_END, {"lib": lib, "after": after, "size": size})).one()
            if not seen:
                return [], None
            out = _path_states(await conn.execute(_CHANGED_WINDOW, {"lib": lib, "after": after, "last": last}))
        return out, str(last)

    async def pageable(self, lib: int) -> bool:
        """Whether every changed path can be planned from its own rows, window by window: no delete,
        no move, no file/folder clash, no conflict (see ``_unpageable_query``). One scan of the trees."""
        async with self.engine.connect() as conn:
            return (await conn.execute(_UNPAGEABLE, {"lib": lib})).first() is None

    async def local_count(self, lib: int) -> int:
        """How many local rows (files and folders) library ``lib`` holds."""
        t = schema.local
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(t).where(t.c.lib == lib))).scalar_one())

    async def local_window(self, lib: int, parent: str, size: int) -> list[tuple[Any, ...]]:
        """Up to ``size`` local rows of the folders from ``parent`` on, in folder order, as
        ``(parent, path, is_dir, size, mtime_ns, inode)`` tuples (a full rescan's known rows)."""
        async with self.engine.connect() as conn:
            if self.engine.dialect.driver == "aiosqlite":
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                return list(await raw.execute_fetchall(_LOCAL_WINDOW_SQL, (lib, parent, size, 0)))  # 0: OFFSET
            return [tuple(r) for r in await conn.execute(_LOCAL_WINDOW, {"lib": lib, "parent": parent, "size": size})]

    async def iter_remote_paths(self, lib: int, paths: Iterable[str]) -> dict[str, RemoteRow]:
        t = schema.remote
        wanted = list(paths)
        out: dict[str, RemoteRow] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                rows = await conn.execute(select(t).where(t.c.lib == lib, t.c.path.in_(chunk)))
                out.update({r.path: remote_from(r._mapping) for r in rows})
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
