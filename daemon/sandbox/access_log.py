"""A capped in-memory record of the requests a sandbox answered, so tests can count them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int


class RequestLog(list[RequestRecord]):
    """A plain list of ``RequestRecord`` that drops its oldest entries beyond ``cap``.

    It stays a list so tests can ``len()``, slice and ``clear()`` it between phases.
    """

    def __init__(self, cap: int = 200_000) -> None:
        super().__init__()
        self.cap = cap

    def record(self, entry: RequestRecord) -> None:
        self.append(entry)
        if len(self) > self.cap + self.cap // 10:
            del self[: len(self) - self.cap]

    def matching(self, method: str | None = None, prefix: str = "") -> int:
        """How many recorded requests match ``method`` (any when None) and start with ``prefix``."""
        return sum(1 for r in self if (method is None or r.method == method) and r.path.startswith(prefix))

    def by_route(self) -> Counter[tuple[str, str]]:
        return Counter((r.method, r.path) for r in self)
