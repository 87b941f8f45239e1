"""What a ``bwlimit`` value means: a rate per direction, and the day-time slots that change it.

Pure: no clock is read here. A rate is written like rclone's: ``"512k"``, ``"1M"``, ``"1.5M"``,
``"2G"`` (binary units: KiB, MiB, GiB per second; a trailing ``B``, ``iB`` or ``/s`` is allowed) or
``"off"`` (unlimited); ``"UP:DOWN"`` limits the two directions apart (``"1M:10M"``: uploads 1 MiB/s,
downloads 10 MiB/s). A TOML integer is bytes per second. A schedule is a list of slots, each starting
at a local ``HH:MM`` and lasting until the next one; the last slot runs over midnight into the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_UNITS = {"": None, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_RATE_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[bkmg]?)(?:i?b)?(?:/s)?", re.IGNORECASE)
_TIME_RE = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d{2})")
OFF_WORDS = frozenset({"off", "unlimited"})
MINUTES_PER_DAY = 24 * 60

RATE_EXAMPLES = '"1M" (1 MiB/s), "512k", "off", or "UP:DOWN" like "1M:10M"'


@dataclass(frozen=True, slots=True)
class Limit:
    """Bytes per second allowed up (uploads) and down (downloads); None is unlimited."""

    up: int | None = None
    down: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.up is None and self.down is None

    def describe(self) -> dict[str, str]:
        """The two rates as a person reads them, for log lines and status."""
        return {"up": format_rate(self.up), "down": format_rate(self.down)}


UNLIMITED = Limit()


@dataclass(frozen=True, slots=True)
class Slot:
    """From ``minute`` (minutes after local midnight) until the next slot, ``limit`` applies."""

    minute: int
    limit: Limit

    @property
    def at(self) -> str:
        return f"{self.minute // 60:02d}:{self.minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The slots of a day in time order; one slot at 00:00 is a limit that never changes."""

    slots: tuple[Slot, ...] = (Slot(0, UNLIMITED),)

    @classmethod
    def constant(cls, limit: Limit) -> Schedule:
        return cls((Slot(0, limit),))

    @property
    def unlimited(self) -> bool:
        return all(slot.limit.unlimited for slot in self.slots)

    def describe(self) -> str:
        """One line: ``"1 MiB/s"``, ``"up 1 MiB/s, down off"``, or ``"08:00 1 MiB/s; 18:00 off"``."""
        if len(self.slots) == 1:
            return _describe_limit(self.slots[0].limit)
        return "; ".join(f"{slot.at} {_describe_limit(slot.limit)}" for slot in self.slots)

    def slot_at(self, minute: int) -> Slot:
        """The slot in force ``minute`` minutes after midnight (before the first: the last one, from the day before)."""
        current = self.slots[-1]
        for slot in self.slots:
            if slot.minute <= minute:
                current = slot
        return current

    def limit_at(self, when: datetime) -> Limit:
        return self.slot_at(when.hour * 60 + when.minute).limit

    def next_change(self, when: datetime) -> datetime | None:
        """The next local time a slot starts after ``when``; None when there is only one slot."""
        if len(self.slots) < 2:
            return None
        minute = when.hour * 60 + when.minute
        later = [slot.minute for slot in self.slots if slot.minute > minute]
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        if later:
            return midnight + timedelta(minutes=later[0])
        return midnight + timedelta(days=1, minutes=self.slots[0].minute)


NO_LIMIT = Schedule()
"""The schedule of a ``bwlimit`` not set: unlimited all day."""


def _describe_limit(limit: Limit) -> str:
    up, down = format_rate(limit.up), format_rate(limit.down)
    return up if up == down else f"up {up}, down {down}"


def format_rate(rate: int | None) -> str:
    """``1048576`` → ``"1 MiB/s"``; None → ``"off"``."""
    if rate is None:
        return "off"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if rate >= size:
            return f"{rate / size:g} {unit}/s"
    return f"{rate} B/s"


def parse_rate(text: str) -> int | None:
    """One direction's rate: bytes per second, or None for ``"off"``. ``ValueError`` says what is wrong."""
    word = text.strip()
    if word.lower() in OFF_WORDS:
        return None
    match = _RATE_RE.fullmatch(word)
    if match is None:
        raise ValueError(f"{text!r} is not a rate; write {RATE_EXAMPLES}")
    unit = _UNITS[match["unit"].lower()]
    if unit is None:
        raise ValueError(f'{text!r} has no unit; write "{word}k" (KiB/s), "{word}M" (MiB/s) or "{word}B" (bytes/s)')
    rate = int(float(match["num"]) * unit)
    if rate < 1:
        raise ValueError(f'{text!r} is zero; write "off" for no limit, or a rate like "512k"')
    return rate


def parse_limit(value: object) -> Limit:
    """A ``bwlimit`` rate: ``"1M"`` (both directions), ``"UP:DOWN"``, ``"off"``, or an integer (bytes/s)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a rate such as {RATE_EXAMPLES}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError('a rate in bytes per second must be at least 1; write "off" for no limit')
        return Limit(value, value)
    if ":" in value:
        up, _, down = value.partition(":")
        return Limit(parse_rate(up), parse_rate(down))
    rate = parse_rate(value)
    return Limit(rate, rate)


def parse_minute(text: object) -> int:
    """``"08:30"`` → 510. ``ValueError`` when it is not a 24-hour ``HH:MM``."""
    match = _TIME_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match["h"]) > 23 or int(match["m"]) > 59:
        raise ValueError(f'{text!r} is not a time of day; write it as "HH:MM" (24-hour), e.g. "08:00"')
    return int(match["h"]) * 60 + int(match["m"])


def parse_schedule(entries: Sequence[tuple[object, object]]) -> Schedule:
    """Slots from ``(at, rate)`` pairs; times must rise strictly. ``ValueError`` names the entry."""
    if not entries:
        raise ValueError("an empty schedule; give at least one { at = ..., rate = ... } or a single rate")
    slots: list[Slot] = []
    for index, (at, rate) in enumerate(entries):
        try:
            slot = Slot(parse_minute(at), parse_limit(rate))
        except ValueError as exc:
            raise ValueError(f"entry {index + 1}: {exc}") from None
        if slots and slot.minute <= slots[-1].minute:
            raise ValueError(
                f"entry {index + 1}: {slot.at} does not come after {slots[-1].at}; list the slots in time order"
            )
        slots.append(slot)
    return Schedule(tuple(slots))
