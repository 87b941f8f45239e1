"""Group commit: the writes of many finished actions committed in one transaction.

``StateStore.batched`` records a block's statements (``RecordingConn``) and hands them to
``GroupCommit``, which merges the tree upserts of everything queued into one executemany each.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

import aiosqlite
import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from daemon.state.mapping import LOCAL_UPSERT, REMOTE_UPSERT, SYNCED_UPSERT

_MERGEABLE = {id(LOCAL_UPSERT), id(REMOTE_UPSERT), id(SYNCED_UPSERT)}  # see _coalesce


class Executes(Protocol):
    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...


class RecordingConn:
    """Stands in for a connection: keeps the statements of a ``batched`` block for the group commit."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    async def execute(self, statement: Any, parameters: Any = None) -> None:
        self.calls.append((statement, parameters))


class GroupCommit:
    """Commits the recorded writes of many finished actions in one transaction.

    Whoever holds the lock writes everything queued so far; writers queued meanwhile are written by
    the next holder. Under concurrency this turns N commits into a few, and each action's writes still
    land together or not at all.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.lock = anyio.Lock()
        self.pending: list[_Batch] = []
        self._sql: dict[int, tuple[str, tuple[str, ...]]] = {}

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
                        await self._write(_coalesce(group))
                except BaseException as exc:
                    for entry in group:
                        entry.error = exc
                    raise
                finally:
                    for entry in group:
                        entry.done = True
        if batch.error is not None:
            raise batch.error

    async def _write(self, calls: list[tuple[Any, Any]]) -> None:
        if all(id(statement) in _MERGEABLE for statement, _ in calls):
            async with self.engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                if isinstance(driver, aiosqlite.Connection):
                    await self._write_upserts(driver, calls)
                    return
        async with self.engine.begin() as conn:
            for statement, parameters in calls:
                await conn.execute(statement, parameters)

    async def _write_upserts(self, db: aiosqlite.Connection, calls: list[tuple[Any, Any]]) -> None:
        """The tree upserts straight through the driver, in ONE round trip to the database thread:
        going through SQLAlchemy's cursor layer cost five per table (a cursor, the statement, its
        close, then the commit and the pool's reset), and each round trip wakes two threads. The
        statements and their parameter order are compiled once per dialect."""
        batches = []
        for statement, parameters in calls:
            sql, order = self._compiled(statement)
            rows = parameters if isinstance(parameters, list) else [parameters]
            batches.append((sql, [tuple(row[name] for name in order) for row in rows]))
        # aiosqlite runs a callable on its thread with ``_execute`` (what its own methods use); where a
        # release no longer has it, the public methods do the same in one round trip per statement
        run_on_thread = getattr(db, "_execute", None)
        if run_on_thread is not None:
            await run_on_thread(_write_all, db._conn, batches)
            return
        try:
            for sql, rows in batches:
                await db.executemany(sql, rows)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise

    def _compiled(self, statement: Any) -> tuple[str, tuple[str, ...]]:
        known = self._sql.get(id(statement))
        if known is None:
            compiled = statement.compile(dialect=self.engine.dialect)
            known = self._sql[id(statement)] = (str(compiled), tuple(compiled.positiontup or ()))
        return known


def _write_all(conn: sqlite3.Connection, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """On the database thread: every batch of rows, then the commit; all or nothing."""
    try:
        for sql, rows in batches:
            conn.executemany(sql, rows)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


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
