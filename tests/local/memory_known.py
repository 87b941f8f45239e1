"""An in-memory local tree for the scanner tests: applies batches the way the real store should."""

from __future__ import annotations

from daemon.local.names import name_of, parent_of
from daemon.local.scan import LocalChange, Unsyncable, Vanished
from daemon.vocab import LocalRow


class MemoryKnown:
    def __init__(self) -> None:
        self.rows: dict[str, LocalRow] = {}
        self.children_calls = 0

    async def children(self, dir_path: str) -> dict[str, LocalRow]:
        self.children_calls += 1
        return {name_of(p): r for p, r in self.rows.items() if parent_of(p) == dir_path}

    def apply(self, changes: list[LocalChange]) -> None:
        for change in changes:
            if isinstance(change, Unsyncable):
                continue  # nothing is stored for a name that cannot be synced
            if isinstance(change, Vanished):
                self.rows.pop(change.path, None)
                if change.is_dir:
                    prefix = change.path + "/"
                    for p in [p for p in self.rows if p.startswith(prefix)]:
                        del self.rows[p]
            else:
                self.rows[change.path] = change
