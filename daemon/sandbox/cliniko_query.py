"""Cliniko list queries: ``q[]`` filters, ``sort``/``order``, ``page``/``per_page`` and ``links``.

Follows ``cliniko-api.txt``: a filter is ``FIELD:OPERATORVALUE``; operators depend on the field's
type (date-time ``> >= < <=``, integer ``= != > >= < <=`` with ``=1,2,3`` lists, string
``= != ~ ~~``, date ``= > >= < <=`` with ``*`` wildcards). ``archived_at:*`` matches every record,
archived or not. Every filter is ANDed. Strict on purpose (sandbox decision): an unknown field or
operator, a malformed value, or ``per_page`` outside 1..100 answers 400, so a client bug shows up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from multidict import MultiMapping

from daemon.sandbox.cliniko_model import parse_utc
from daemon.sandbox.middleware import ApiError

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100

FieldType = str  # "datetime" | "int" | "string" | "date"
_OPERATORS: dict[FieldType, tuple[str, ...]] = {
    "datetime": (">=", "<=", ">", "<"),
    "int": (">=", "<=", "!=", ">", "<", "="),
    "string": ("!=", "~~", "=", "~"),
    "date": (">=", "<=", ">", "<", "="),
}
_ALLOWED_PARAMS = {"page", "per_page", "sort", "order", "q", "q[]"}

Getter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    op: str
    value: Any  # datetime | list[int] | int | str | None ("*")


@dataclass(frozen=True, slots=True)
class ListQuery:
    filters: tuple[Filter, ...]
    sort: tuple[tuple[str, bool], ...]  # (field, descending)
    page: int
    per_page: int

    def mentions(self, field: str) -> bool:
        return any(f.field == field for f in self.filters)


def _int(raw: str, name: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"{name} must be {bound}, got {value}")
    return value


def _parse_filter(text: str, fields: Mapping[str, FieldType]) -> Filter:
    name, sep, rest = text.partition(":")
    if not sep:
        raise ApiError(400, f"Invalid filter {text!r}: expected FIELD:OPERATORVALUE")
    kind = fields.get(name)
    if kind is None:
        raise ApiError(400, f"Invalid filter {text!r}: {name!r} cannot be filtered on (allowed: {', '.join(fields)})")
    if kind == "datetime" and rest == "*":
        return Filter(name, "*", None)
    op = next((o for o in _OPERATORS[kind] if rest.startswith(o)), None)
    if op is None:
        raise ApiError(400, f"Invalid filter {text!r}: unknown operator for a {kind} field")
    raw = rest[len(op) :]
    value: Any
    try:
        if kind == "datetime":
            value = parse_utc(raw)
        elif kind == "int":
            values = [int(v) for v in raw.split(",")]
            if len(values) > 1 and op != "=":
                raise ValueError("lists only work with =")
            value = values
        elif kind == "date":
            if not re.fullmatch(r"[0-9*]{4}-[0-9*]{2}-[0-9*]{2}", raw):
                raise ValueError("dates are YYYY-MM-DD")
            value = raw
        else:
            value = raw
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter {text!r}: {exc}") from None
    return Filter(name, op, value)


def _parse_sort(raw_sort: str | None, order: str | None, sortable: Sequence[str]) -> tuple[tuple[str, bool], ...]:
    if order is not None and order not in ("asc", "desc"):
        raise ApiError(400, f"order must be asc or desc, got {order!r}")
    default_desc = order == "desc"
    if not raw_sort:
        return (("created_at", default_desc),)
    out: list[tuple[str, bool]] = []
    for part in raw_sort.split(","):
        name, _, direction = part.strip().partition(":")
        if name not in sortable:
            raise ApiError(400, f"Cannot sort by {name!r} (allowed: {', '.join(sortable)})")
        if direction not in ("", "asc", "desc"):
            raise ApiError(400, f"Invalid sort direction {direction!r} for {name!r}")
        out.append((name, direction == "desc" if direction else default_desc))
    return tuple(out)


def parse_list_query(query: MultiMapping[str], fields: Mapping[str, FieldType], sortable: Sequence[str]) -> ListQuery:
    for key in query:
        if key not in _ALLOWED_PARAMS:
            raise ApiError(400, f"Unknown parameter {key!r}")
    texts = [*query.getall("q[]", []), *query.getall("q", [])]
    filters = tuple(_parse_filter(t, fields) for t in texts)
    page = _int(query.get("page", "1"), "page", minimum=1)
    per_page = _int(query.get("per_page", str(DEFAULT_PER_PAGE)), "per_page", minimum=1, maximum=MAX_PER_PAGE)
    return ListQuery(filters, _parse_sort(query.get("sort"), query.get("order"), sortable), page, per_page)


def parse_show_query(query: MultiMapping[str], fields: Mapping[str, FieldType]) -> tuple[Filter, ...]:
    """The filters a single-record GET takes (Cliniko documents ``archived_at`` there)."""
    for key in query:
        if key not in ("q", "q[]"):
            raise ApiError(400, f"Unknown parameter {key!r}")
    return tuple(_parse_filter(t, fields) for t in [*query.getall("q[]", []), *query.getall("q", [])])


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def _wildcard(pattern: str, value: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def matches(record: Any, f: Filter, getter: Getter, kind: FieldType) -> bool:
    """Whether ``getter(record)`` (the field's value, None when unset) satisfies ``f``."""
    if f.op == "*":
        return True
    value = getter(record)
    if value is None:
        return f.op == "!=" and kind in ("int", "string")
    if kind == "datetime":
        assert isinstance(f.value, datetime)
        return _compare(f.op, parse_utc(value), f.value)
    if kind == "int":
        number = int(value)
        if f.op == "=":
            return number in f.value
        return _compare(f.op, number, f.value[0])
    if kind == "date":
        if f.op == "=" and "*" in f.value:
            return re.fullmatch(f.value.replace("*", r"\d"), value) is not None
        return _compare(f.op, value, f.value)
    text = str(value)
    if f.op == "~":
        return f.value.lower() in text.lower()
    if f.op == "~~":
        return _wildcard(f.value, text)
    return _compare(f.op, text, f.value)


def select(
    records: list[Any],
    query: ListQuery | tuple[Filter, ...],
    fields: Mapping[str, FieldType],
    getters: Mapping[str, Getter],
) -> list[Any]:
    """Filter ``records``; archived ones only when a filter names ``archived_at`` (Cliniko default)."""
    filters = query.filters if isinstance(query, ListQuery) else query
    if not any(f.field == "archived_at" for f in filters):
        records = [r for r in records if getters["archived_at"](r) is None]
    for f in filters:
        records = [r for r in records if matches(r, f, getters[f.field], fields[f.field])]
    if isinstance(query, ListQuery):
        # stable sorts from the last key to the first; ids break ties so pages never overlap
        records = sorted(records, key=lambda r: int(getters["id"](r)))
        for name, descending in reversed(query.sort):
            getter = getters[name]
            present = [r for r in records if getter(r) is not None]
            missing = [r for r in records if getter(r) is None]
            present.sort(key=lambda r: _sort_key(getter(r)), reverse=descending)
            records = present + missing if not descending else missing + present
    return records


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_utc(value)
        except ValueError:
            return value.lower()
    return value


def page_links(url_base: str, original: MultiMapping[str], page: int, per_page: int, total: int) -> dict[str, str]:
    """``self`` always, ``previous``/``next`` only when such a page exists (as the docs say)."""

    def link(number: int) -> str:
        pairs = [(k, v) for k, v in original.items() if k not in ("page", "per_page")]
        pairs += [("page", str(number)), ("per_page", str(per_page))]
        return f"{url_base}?{urlencode(pairs)}"

    links = {"self": link(page)}
    if page > 1:
        links["previous"] = link(page - 1)
    if page * per_page < total:
        links["next"] = link(page + 1)
    return links
