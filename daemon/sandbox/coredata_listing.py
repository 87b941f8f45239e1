"""Tastypie-style list queries: ``limit``/``offset`` paging, ``parent`` and ``modified__*`` filters,
``order_by``, and the ``meta`` block with relative ``next``/``previous`` links.

Strict on purpose: an unknown parameter, a malformed timestamp or an unknown ``order_by`` field
answers 400, as a tastypie resource does, so clients find out instead of silently getting
everything.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from multidict import MultiMapping

from daemon.sandbox.clock import format_timestamp, parse_timestamp
from daemon.sandbox.coredata_model import Node
from daemon.sandbox.middleware import ApiError

DEFAULT_LIMIT = 20
_COMPARATORS: dict[str, Callable[[str, str], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_ORDER_FIELDS = ("modified", "-modified", "created", "-created")
_ALLOWED = {"limit", "offset", "parent", "order_by", "format", *(f"modified__{op}" for op in _COMPARATORS)}


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int
    offset: int
    parent: str | None
    bounds: tuple[tuple[str, str], ...]  # (comparator, normalised server timestamp)
    order_by: str | None

    @property
    def selection_key(self) -> tuple[Any, ...]:
        """What decides the rows and their order (paging aside): the key of the selection cache."""
        return (self.parent, self.bounds, self.order_by)


def _int_param(query: MultiMapping[str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid {name} '{raw}' provided. Please provide a positive integer.") from None
    if value < 0:
        raise ApiError(400, f"Invalid {name} '{raw}' provided. Please provide a positive integer >= 0.")
    return value


def parse_list_query(query: MultiMapping[str], *, page_limit_max: int) -> ListQuery:
    """Validate a list request's query string; raises ``ApiError(400)`` on anything unknown."""
    for key in query:
        if key not in _ALLOWED:
            raise ApiError(400, f"The '{key}' field does not allow filtering.")
    if query.get("format", "json") != "json":
        raise ApiError(400, "Only format=json is supported.")
    limit = _int_param(query, "limit", DEFAULT_LIMIT)
    if limit == 0 or limit > page_limit_max:
        limit = page_limit_max
    offset = _int_param(query, "offset", 0)
    bounds: list[tuple[str, str]] = []
    for op in _COMPARATORS:
        for raw in query.getall(f"modified__{op}", []):
            try:
                bounds.append((op, format_timestamp(parse_timestamp(raw))))
            except ValueError:
                raise ApiError(400, f"Invalid timestamp for modified__{op}: '{raw}'.") from None
    order_by = query.get("order_by")
    if order_by is not None and order_by not in _ORDER_FIELDS:
        raise ApiError(400, f"No matching '{order_by.lstrip('-')}' field for ordering on.")
    parent = query.get("parent")
    return ListQuery(limit, offset, parent or None, tuple(bounds), order_by)


def select(nodes: Iterable[Node], query: ListQuery) -> list[Node]:
    """Filter ``nodes`` (given in creation order) and order them as the query asks."""
    rows = [n for n in nodes if query.parent is None or n.parent == query.parent]
    for op, stamp in query.bounds:
        compare = _COMPARATORS[op]
        rows = [n for n in rows if compare(n.modified, stamp)]
    if query.order_by:
        field = query.order_by.lstrip("-")
        rows.sort(key=lambda n: (getattr(n, field), n.id), reverse=query.order_by.startswith("-"))
    return rows


def _link(path: str, original: MultiMapping[str], limit: int, offset: int) -> str:
    pairs = [(k, v) for k, v in original.items() if k not in ("limit", "offset")]
    pairs += [("limit", str(limit)), ("offset", str(offset))]
    return f"{path}?{urlencode(pairs)}"


def page_meta(path: str, original: MultiMapping[str], query: ListQuery, total: int) -> dict[str, Any]:
    limit, offset = query.limit, query.offset
    has_next = offset + limit < total
    return {
        "limit": limit,
        "offset": offset,
        "total_count": total,
        "next": _link(path, original, limit, offset + limit) if has_next else None,
        "previous": _link(path, original, limit, max(0, offset - limit)) if offset > 0 else None,
    }
