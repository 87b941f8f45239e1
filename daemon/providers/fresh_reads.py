"""Fresh reads shared by concurrent callers, never served from before the caller asked.

Before a destructive action the executor confirms the remote item with a read of its folder (TimeTap
has no per-object GET). Several actions in one folder should share a request, yet every caller must get
an answer from a request that *started after it asked*: an older answer could predate the change the
check exists to catch. Callers that arrive while a read of the key is in flight therefore wait for the
next read, which serves all of them at once (the same shape as a group commit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

K = TypeVar("K")
V = TypeVar("V")


class _Round(Generic[V]):
    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: list[V] = []  # empty until a read for this round has finished


class FreshReads(Generic[K, V]):
    """``await reads.get(key)``: the result of ``fetch(key)`` from a call that began after this one."""

    def __init__(self, fetch: Callable[[K], Awaitable[V]]) -> None:
        self._fetch = fetch
        self._next: dict[K, _Round[V]] = {}
        self._locks: dict[K, anyio.Lock] = {}
        self._users: dict[K, int] = {}

    async def get(self, key: K) -> V:
        ticket = self._next.setdefault(key, _Round())
        lock = self._locks.setdefault(key, anyio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                if not ticket.result:
                    self._next[key] = _Round()  # whoever arrives from now on waits for the next read
                    ticket.result.append(await self._fetch(key))
            return ticket.result[0]
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody waits on this key: forget it (bounded memory)
                del self._users[key], self._locks[key], self._next[key]
