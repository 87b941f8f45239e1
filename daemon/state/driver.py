"""aiosqlite connections for the store's engines, with a thread that is stopped once.

SQLAlchemy ends a connection whose call was cancelled (a stop, a SIGTERM during a pass) in two steps: a
graceful close in a shielded task of its own and, as soon as the caller is cancelled again (anyio
cancels at every await), a forced stop of aiosqlite's thread. The thread ends after the first stop it
runs; the graceful close then queued a second stop and waited for it forever. Its task never ended, and
a daemon stopped during a read hung in asyncio's final cancel of every task instead of exiting. Here a
stop is queued only while none is: the graceful close then returns once its own close has run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import aiosqlite

__all__ = ["connect"]

_ITER_CHUNK = 64  # rows fetched per trip by aiosqlite's cursor iteration (its default)


class _Connection(aiosqlite.Connection):
    def stop(self) -> asyncio.Future[Any] | None:
        if not self._running:
            return None  # a stop is queued already: the thread ends after it and would never run this one
        return super().stop()


async def connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """A connected aiosqlite connection to ``database`` (``sqlite3.connect``'s arguments), for
    ``create_async_engine(async_creator=...)``. Its thread is a daemon thread, as SQLAlchemy makes the
    ones it starts itself: a thread left behind never keeps the process from exiting."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = _Connection(connector, _ITER_CHUNK)
    connection._thread.daemon = True
    return await connection
