"""The token bucket on a fake clock: the rate holds, bursts are bounded, a rate change applies at once."""

from __future__ import annotations

import anyio
import pytest

from daemon.bandwidth import TokenBucket
from daemon.bandwidth.bucket import BURST_S, MIN_BURST

MiB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_one_burst_through_then_the_rate_holds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4 * MiB, clock=clock)
    burst = 4 * MiB * BURST_S
    assert bucket.delay(bucket.take(int(burst))) == 0.0
    ticket = bucket.take(MiB)
    assert bucket.delay(ticket) == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.delay(ticket) == 0.0


def test_sending_n_bytes_takes_n_over_rate_seconds_after_the_burst() -> None:
    clock = FakeClock()
    rate = 5 * MiB
    bucket = TokenBucket(rate, clock=clock)
    for _ in range(200):  # 50 MiB in 256 KiB chunks, each sent once its wait is over
        ticket = bucket.take(256 * 1024)
        clock.now += bucket.delay(ticket)
    elapsed = clock.now - 1000.0
    assert elapsed == pytest.approx((50 * MiB - rate * BURST_S) / rate)


def test_an_idle_bucket_fills_to_its_capacity_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock)
    clock.now += 3600
    assert bucket.capacity == MiB * BURST_S
    assert bucket.delay(bucket.take(int(bucket.capacity))) == 0.0
    assert bucket.delay(bucket.take(MiB)) == pytest.approx(1.0)


def test_a_slow_rate_still_allows_a_chunk_at_once() -> None:
    bucket = TokenBucket(1024, clock=FakeClock())
    assert bucket.capacity == MIN_BURST


def test_tickets_are_served_in_the_order_they_were_taken() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock)
    bucket.take(int(bucket.capacity))
    first, second = bucket.take(MiB), bucket.take(MiB)
    assert bucket.delay(first) == pytest.approx(1.0)
    assert bucket.delay(second) == pytest.approx(2.0)


def test_a_rate_change_counts_earlier_time_at_the_old_rate_and_later_time_at_the_new() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock)
    bucket.take(int(bucket.capacity))
    ticket = bucket.take(2 * MiB)
    clock.now += 1.0  # 1 MiB earned at 1 MiB/s
    bucket.set_rate(4 * MiB)
    assert bucket.delay(ticket) == pytest.approx(0.25)  # the other MiB at 4 MiB/s


def test_unlimited_never_waits_and_a_new_limit_starts_with_a_full_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock)
    ticket = bucket.take(100 * MiB)
    bucket.set_rate(None)
    assert bucket.delay(ticket) == 0.0
    assert bucket.delay(bucket.take(10**12)) == 0.0
    bucket.set_rate(MiB)
    assert bucket.delay(bucket.take(int(bucket.capacity))) == 0.0
    assert bucket.delay(bucket.take(MiB)) == pytest.approx(1.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


@pytest.mark.anyio
async def test_a_waiter_is_released_when_the_limit_is_lifted() -> None:
    bucket = TokenBucket(1024)  # the real clock: the chunk would wait about 17 minutes
    ticket = bucket.take(1024 * 1024)
    released = anyio.Event()

    async def wait() -> None:
        await bucket.wait(ticket)
        released.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert not released.is_set()
        bucket.set_rate(None)
        await released.wait()
