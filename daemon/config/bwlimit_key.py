"""Reading a ``bwlimit`` key (general or per library): one rate, or a day-time schedule of rates.

``bwlimit = "1M"`` (both directions), ``bwlimit = "1M:10M"`` (up:down), ``bwlimit = "off"``, or a
schedule, an array of ``{ at = "HH:MM", rate = ... }`` tables in time order::

    bwlimit = [{ at = "08:00", rate = "1M" }, { at = "18:00", rate = "off" }]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.bandwidth import Schedule, parse_limit, parse_schedule
from daemon.providers.settings import Key
from daemon.providers.settings_reader import MISSING, TableReader, type_name

HINT = 'bwlimit = "1M" (or "UP:DOWN" like "1M:10M", or "off")'
SCHEDULE_HINT = 'bwlimit = [{ at = "08:00", rate = "1M" }, { at = "18:00", rate = "off" }]'
ENTRY_KEYS = ("at", "rate")


def read_bwlimit(p: TableReader, key: Key, values: Mapping[str, Any]) -> Schedule:
    """The schedule ``key`` gives (a constant rate is a one-slot schedule); issues name the fix."""
    raw = p.raw(key.name)
    if raw is MISSING:
        return Schedule()
    if isinstance(raw, list):
        return _schedule(p, key.name, raw)
    try:
        return Schedule.constant(parse_limit(raw))
    except ValueError as exc:
        p.error(key.name, f"{_got(raw)}{exc}; e.g. {HINT}, or a schedule: {SCHEDULE_HINT}")
        return Schedule()


def _got(raw: object) -> str:
    return "" if isinstance(raw, str) else f"got {type_name(raw)}: "


def _schedule(p: TableReader, name: str, raw: list[Any]) -> Schedule:
    entries: list[tuple[object, object]] = []
    for index, item in enumerate(raw):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            p.error(where, f"expected a table {{ at = ..., rate = ... }}, got {type_name(item)}; e.g. {SCHEDULE_HINT}")
            return Schedule()
        missing = [k for k in ENTRY_KEYS if k not in item]
        extra = [k for k in item if k not in ENTRY_KEYS]
        if missing or extra:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown key {', '.join(extra)}"
            p.error(where, f'{problem}; each slot is {{ at = "HH:MM", rate = "1M" }}')
            return Schedule()
        entries.append((item["at"], item["rate"]))
    try:
        return parse_schedule(entries)
    except ValueError as exc:
        p.error(name, f"{exc}; e.g. {SCHEDULE_HINT}")
        return Schedule()
