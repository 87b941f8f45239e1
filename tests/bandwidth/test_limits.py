"""The limits of a process: the daemon's and each library's buckets follow their schedules."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from structlog.testing import capture_logs

from daemon.bandwidth import NO_LIMIT, Bandwidth, Limit, Schedule, parse_schedule

MiB = 1024 * 1024
OFFICE = parse_schedule([("08:00", "1M"), ("18:00", "off")])


class WallClock:
    """Local time for the schedule, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def rates(bandwidth: Bandwidth, library: str) -> list[tuple[int | None, ...]]:
    throttle = bandwidth.throttle(library)
    return [tuple(b.rate for b in throttle.up), tuple(b.rate for b in throttle.down)]


def test_a_library_waits_on_its_own_buckets_and_the_daemons() -> None:
    bandwidth = Bandwidth(WallClock(datetime(2026, 12, 7, 9, 0)))
    bandwidth.configure(Schedule.constant(Limit(4 * MiB, 8 * MiB)), {"board": OFFICE, "hr": NO_LIMIT})
    assert rates(bandwidth, "board") == [(MiB, 4 * MiB), (MiB, 8 * MiB)]
    assert rates(bandwidth, "hr") == [(None, 4 * MiB), (None, 8 * MiB)]
    assert bandwidth.throttle("board").up[1] is bandwidth.throttle("hr").up[1]  # one daemon-wide bucket


def test_slots_switch_at_their_time_and_each_change_is_logged_once() -> None:
    clock = WallClock(datetime(2026, 12, 7, 7, 59))
    bandwidth = Bandwidth(clock)
    with capture_logs() as logs:
        bandwidth.configure(NO_LIMIT, {"board": OFFICE})
        assert logs == []  # unlimited, as before: nothing changed
        assert bandwidth.next_change() == datetime(2026, 12, 7, 8, 0)
        clock.now = datetime(2026, 12, 7, 8, 0)
        bandwidth.apply()
        bandwidth.apply()
        clock.now = datetime(2026, 12, 7, 18, 0)
        bandwidth.apply()
    assert [(e["event"], e["library"], e["up"], e["down"], e["since"]) for e in logs] == [
        ("bwlimit_changed", "board", "1 MiB/s", "1 MiB/s", "08:00"),
        ("bwlimit_changed", "board", "off", "off", "18:00"),
    ]
    assert rates(bandwidth, "board")[0] == (None, None)


def test_a_reload_sets_new_rates_on_the_same_buckets() -> None:
    bandwidth = Bandwidth(WallClock(datetime(2026, 12, 7, 9, 0)))
    bandwidth.configure(NO_LIMIT, {"board": OFFICE})
    before = bandwidth.throttle("board")
    with capture_logs() as logs:
        bandwidth.configure(Schedule.constant(Limit(None, 2 * MiB)), {"board": Schedule.constant(Limit(MiB, None))})
    assert before.up[0].rate == MiB and before.down[0].rate is None and before.down[1].rate == 2 * MiB
    assert {(e.get("library"), e.get("scope")) for e in logs} == {("board", None), (None, "daemon")}


@pytest.mark.anyio
async def test_a_transfer_waiting_at_the_boundary_goes_on_at_the_new_rate() -> None:
    # local time runs at the real pace from 50 ms before 08:00, when the night's 1 MiB/s turns off
    started = time.monotonic()

    def clock() -> datetime:
        return datetime(2026, 12, 7, 7, 59, 59, 950_000) + timedelta(seconds=time.monotonic() - started)

    bandwidth = Bandwidth(clock)
    bandwidth.configure(NO_LIMIT, {"board": parse_schedule([("08:00", "off"), ("18:00", "1M")])})
    bucket = bandwidth.throttle("board").down[0]
    ticket = bucket.take(1024 * MiB)  # about 17 minutes at 1 MiB/s
    with capture_logs() as logs:
        async with bandwidth.following():
            await bucket.wait(ticket)  # returns when the 08:00 slot lifts the limit
    assert bucket.rate is None
    assert [(e["event"], e["down"], e["since"]) for e in logs] == [("bwlimit_changed", "off", "08:00")]
