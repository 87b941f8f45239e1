"""Remember which warnings were already logged, so a daemon that rescans for months does not repeat
the same complaint about the same path on every pass (the logs stay readable)."""

from __future__ import annotations

import threading
from collections.abc import Hashable


class Once:
    """A bounded, thread-safe "seen" set. ``first(key)`` is True the first time a key is offered.

    The bound keeps memory flat when a library holds millions of odd names; once full, the set is
    cleared, so at worst a warning is repeated, never lost.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: set[Hashable] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen.add(key)
            return True

    def forget(self, key: Hashable) -> None:
        """Allow ``key`` to be reported again (e.g. the file became readable and then broke again)."""
        with self._lock:
            self._seen.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
