"""One token bucket: ``rate`` bytes per second, a burst of at most ``BURST_S`` seconds' worth.

The arithmetic reads an injected clock and never sleeps, so it is tested on a fake clock. A chunk
takes a *ticket* (the running total of bytes asked for, including its own) and may go once the
running total of tokens earned reaches it; tickets are served in the order they were taken. The rate
may change at any time (a schedule slot, a reload): tokens up to then are earned at the old rate,
later ones at the new, and every waiter is woken to work out its wait again, so a transfer slowed to
1 MiB/s speeds up the moment the night slot turns the limit off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

BURST_S = 0.25
"""Seconds of tokens a full bucket holds: what an idle link may send at once before the rate holds."""
MIN_BURST = 64 * 1024
_SLACK_S = 1e-6  # a wait shorter than this is no wait (float rounding)


class TokenBucket:
    """Tokens are bytes. ``rate`` None is unlimited: nobody waits, and the bucket starts full when a
    rate is set again. One bucket is shared by every task of an event loop (it holds no lock: its
    state is only touched between awaits)."""

    def __init__(self, rate: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate: int | None = None
        self._asked = 0.0  # bytes asked for so far
        self._earned = 0.0  # tokens earned so far (never more than a full bucket ahead of _asked)
        self._last = clock()
        self._changed: anyio.Event | None = None
        self.set_rate(rate)

    @property
    def rate(self) -> int | None:
        return self._rate

    @property
    def taken(self) -> int:
        """Bytes asked for through this bucket so far (at any rate, unlimited included)."""
        return int(self._asked)

    @property
    def capacity(self) -> float:
        return 0.0 if self._rate is None else max(float(MIN_BURST), self._rate * BURST_S)

    def set_rate(self, rate: int | None) -> None:
        """From now on ``rate`` bytes per second (None: unlimited); wakes every waiter."""
        if rate is not None and rate <= 0:
            raise ValueError("a rate must be positive (None is unlimited)")
        self._refill()
        was_unlimited = self._rate is None
        self._rate = rate
        if rate is not None and was_unlimited:
            self._earned = self._asked + self.capacity  # start full, like a bucket idle for long
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def take(self, size: int) -> float:
        """Ask for ``size`` bytes; returns the ticket to wait for."""
        self._refill()
        self._asked += size
        if self._rate is None:
            self._earned = self._asked
        return self._asked

    def delay(self, ticket: float) -> float:
        """Seconds until ``ticket`` is earned at the present rate (0 when it is, or when unlimited)."""
        self._refill()
        if self._rate is None or self._earned >= ticket:
            return 0.0
        return (ticket - self._earned) / self._rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self._rate is None:
            self._earned = max(self._earned, self._asked)
        else:
            self._earned = min(self._earned + elapsed * self._rate, self._asked + self.capacity)

    async def wait(self, ticket: float) -> None:
        """Sleep until ``ticket`` is earned; a rate change meanwhile re-computes the wait at once."""
        while True:
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            delay = self.delay(ticket)
            if delay <= _SLACK_S:
                return
            with anyio.move_on_after(delay):
                await changed.wait()

    async def acquire(self, size: int) -> None:
        """Take ``size`` bytes and wait for them."""
        await self.wait(self.take(size))
