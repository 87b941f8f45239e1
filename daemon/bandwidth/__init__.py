"""Bandwidth limits (``bwlimit``): rates and day-time schedules, token buckets, the throttle a transfer
waits on, and the schedule that switches rates while transfers run.

``rates`` parses what the config says (pure), ``bucket`` is one token bucket on an injected clock,
``throttle`` is what the HTTP layer waits on (a library's buckets plus the daemon-wide ones, found
through a context variable set around each library's work), and ``limits`` keeps the buckets of a
process at the rates the schedules give for the current time of day.
"""

from __future__ import annotations

from daemon.bandwidth.bucket import TokenBucket
from daemon.bandwidth.limits import Bandwidth
from daemon.bandwidth.rates import NO_LIMIT, UNLIMITED, Limit, Schedule, Slot, format_rate, parse_limit, parse_schedule
from daemon.bandwidth.throttle import Throttle, current_throttle, set_throttle, use_throttle

__all__ = [
    "NO_LIMIT",
    "UNLIMITED",
    "Bandwidth",
    "Limit",
    "Schedule",
    "Slot",
    "Throttle",
    "TokenBucket",
    "current_throttle",
    "format_rate",
    "parse_limit",
    "parse_schedule",
    "set_throttle",
    "use_throttle",
]
