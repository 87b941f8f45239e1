"""The sandbox server's own clock.

Vendors stamp objects with naive timestamps from their own clock. Clients must only compare those
stamps with each other (DESIGN rule 4), so the sandbox can run its clock skewed from ours, and it
never hands out the same stamp twice: every change gets a strictly later ``modified``, which makes
``modified__gt`` cursors and ``order_by=modified`` well defined.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_TICK = timedelta(microseconds=1)


def format_timestamp(value: datetime) -> str:
    """Render a naive timestamp exactly as the server does (always with microseconds)."""
    return value.strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """Parse a naive ISO timestamp as a client may send it back; ``ValueError`` when malformed or aware."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        raise ValueError("timestamps are naive server times; drop the zone")
    return value


class ServerClock:
    """Strictly increasing naive UTC time, optionally skewed by ``skew_s`` seconds."""

    def __init__(self, *, skew_s: float = 0.0, not_before: str | None = None) -> None:
        self._skew = timedelta(seconds=skew_s)
        self._last = parse_timestamp(not_before) if not_before else datetime.min

    def observe(self, stamp: str) -> None:
        """Remember a stamp issued earlier (e.g. loaded from disk) so later ones come after it."""
        value = parse_timestamp(stamp)
        if value > self._last:
            self._last = value

    def now(self) -> str:
        """A fresh stamp, later than every stamp issued or observed before."""
        value = datetime.now(UTC).replace(tzinfo=None) + self._skew
        if value <= self._last:
            value = self._last + _TICK
        self._last = value
        return format_timestamp(value)
