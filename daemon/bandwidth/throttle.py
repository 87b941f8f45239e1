"""What a transfer waits on: the buckets of its library and of the whole daemon, per direction.

The HTTP layer asks :func:`current_throttle` once per request; each library's work runs inside
:func:`use_throttle` (a context variable, so every task the library starts inherits it and no
provider needs to know about limits). A chunk takes its bytes from every bucket of its direction at
once and goes when all have earned them: the strictest limit holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from daemon.bandwidth.bucket import TokenBucket


async def _pass(buckets: tuple[TokenBucket, ...], size: int) -> None:
    tickets = [(bucket, bucket.take(size)) for bucket in buckets]
    for bucket, ticket in tickets:  # they earn in parallel: the total wait is the longest one
        await bucket.wait(ticket)


@dataclass(frozen=True, slots=True)
class Throttle:
    """The buckets uploads (``up``) and downloads (``down``) pass through."""

    up: tuple[TokenBucket, ...] = ()
    down: tuple[TokenBucket, ...] = ()

    async def sending(self, size: int) -> None:
        """Wait until ``size`` more bytes may be sent."""
        await _pass(self.up, size)

    async def received(self, size: int) -> None:
        """Account ``size`` bytes just received; wait until more may be read."""
        await _pass(self.down, size)


_CURRENT: ContextVar[Throttle | None] = ContextVar("libmirror_throttle", default=None)


def current_throttle() -> Throttle | None:
    """The throttle of the library whose work is running in this task, if any."""
    return _CURRENT.get()


@contextmanager
def use_throttle(throttle: Throttle | None) -> Iterator[None]:
    """Run the body (and every task it starts) under ``throttle``."""
    token = _CURRENT.set(throttle)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def set_throttle(throttle: Throttle | None) -> None:
    """From here on, this task (and the tasks it starts) runs under ``throttle`` (like ``bind_library``)."""
    _CURRENT.set(throttle)
