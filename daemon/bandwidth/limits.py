"""The bandwidth limits of one process: a pair of buckets for the daemon and one per library, kept at
the rates their schedules give for the local time of day.

:meth:`Bandwidth.configure` sets the schedules (at start and on reload) and applies them now;
:meth:`Bandwidth.follow_schedules` sleeps until the next slot starts and applies it, until cancelled.
Every change of a rate is logged once as ``bwlimit_changed`` (``library`` set for a library's limit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
import structlog

from daemon.bandwidth.bucket import TokenBucket
from daemon.bandwidth.rates import UNLIMITED, Limit, Schedule
from daemon.bandwidth.throttle import Throttle

log = structlog.get_logger(__name__)

DAEMON = ""
"""The key of the daemon-wide limit (library names are never empty)."""
MAX_SLEEP_S = 300.0
"""Longest sleep between checks of the wall clock (it may jump: DST, NTP, a suspended machine)."""


class _Pair:
    """The two buckets of one scope and the limit they were last set to."""

    def __init__(self) -> None:
        self.up = TokenBucket()
        self.down = TokenBucket()
        self.limit = UNLIMITED

    def apply(self, limit: Limit) -> bool:
        """Set the rates; True when they changed."""
        if limit == self.limit:
            return False
        self.up.set_rate(limit.up)
        self.down.set_rate(limit.down)
        self.limit = limit
        return True


class Bandwidth:
    """The buckets of one process. ``now`` gives the local time (a parameter for tests)."""

    def __init__(self, now: Callable[[], datetime] = datetime.now) -> None:
        self._now = now
        self._schedules: dict[str, Schedule] = {}
        self._pairs: dict[str, _Pair] = {DAEMON: _Pair()}
        self._changed: anyio.Event | None = None

    def configure(self, daemon: Schedule, libraries: Mapping[str, Schedule]) -> None:
        """The daemon-wide schedule and each library's (a library left out keeps no limit of its own)."""
        self._schedules = {DAEMON: daemon, **libraries}
        for name in libraries:
            self._pairs.setdefault(name, _Pair())
        for name in list(self._pairs):
            if name not in self._schedules:
                self._schedules[name] = Schedule()
        self.apply()
        if self._changed is not None:
            self._changed.set()  # the follower recomputes its next wake-up
            self._changed = None

    def throttle(self, library: str) -> Throttle:
        """What ``library``'s transfers wait on: its own buckets and the daemon's."""
        own = self._pairs.setdefault(library, _Pair())
        daemon = self._pairs[DAEMON]
        return Throttle(up=(own.up, daemon.up), down=(own.down, daemon.down))

    def apply(self) -> None:
        """Set every bucket to the slot in force now; log each change."""
        now = self._now()
        for name, schedule in self._schedules.items():
            limit = schedule.limit_at(now)
            if self._pairs[name].apply(limit):
                slot = schedule.slot_at(now.hour * 60 + now.minute)
                fields = {"library": name} if name != DAEMON else {"scope": "daemon"}
                log.info(
                    "bwlimit_changed",
                    **fields,
                    **limit.describe(),
                    up_bps=limit.up,
                    down_bps=limit.down,
                    since=slot.at if len(schedule.slots) > 1 else None,
                )

    def next_change(self) -> datetime | None:
        """When the next slot of any schedule starts."""
        now = self._now()
        changes = [when for s in self._schedules.values() if (when := s.next_change(now)) is not None]
        return min(changes, default=None)

    async def follow_schedules(self) -> None:
        """Apply each slot when it starts (until cancelled); wakes early when :meth:`configure` runs."""
        while True:
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            when = self.next_change()
            if when is None:
                await changed.wait()
            else:
                delay = min(MAX_SLEEP_S, max(0.0, (when - self._now()).total_seconds()))
                with anyio.move_on_after(delay):
                    await changed.wait()
            self.apply()

    @asynccontextmanager
    async def following(self) -> AsyncIterator[Bandwidth]:
        """:meth:`follow_schedules` in the background for the body of the ``async with``."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.follow_schedules, name="bwlimit schedules")
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
