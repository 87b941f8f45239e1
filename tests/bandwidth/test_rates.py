"""Rates and schedules as the config writes them."""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.bandwidth import UNLIMITED, Limit, Schedule, format_rate, parse_limit, parse_schedule

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("1M", Limit(MiB, MiB)),
        ("512k", Limit(512 * KiB, 512 * KiB)),
        ("512K", Limit(512 * KiB, 512 * KiB)),
        ("1.5M", Limit(int(1.5 * MiB), int(1.5 * MiB))),
        ("2G", Limit(2 * GiB, 2 * GiB)),
        ("10MiB/s", Limit(10 * MiB, 10 * MiB)),
        ("100B", Limit(100, 100)),
        ("off", UNLIMITED),
        ("1M:10M", Limit(MiB, 10 * MiB)),
        ("off:512k", Limit(None, 512 * KiB)),
        ("1M:off", Limit(MiB, None)),
        (65536, Limit(65536, 65536)),
    ],
)
def test_rates_read_like_rclone(text: str | int, limit: Limit) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("512", "no unit"),
        ("fast", "not a rate"),
        ("0k", "zero"),
        ("1M:2M:3M", "not a rate"),
        (0, "at least 1"),
        (1.5, "expected a rate"),
        (True, "expected a rate"),
    ],
)
def test_bad_rates_say_how_to_write_one(value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_limit(value)


def test_format_rate() -> None:
    assert format_rate(MiB) == "1 MiB/s"
    assert format_rate(512 * KiB) == "512 KiB/s"
    assert format_rate(100) == "100 B/s"
    assert format_rate(None) == "off"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute)


OFFICE = parse_schedule([("08:00", "1M"), ("12:00", "2M:4M"), ("18:00", "off")])


def test_a_slot_lasts_until_the_next_and_the_last_runs_over_midnight() -> None:
    assert OFFICE.limit_at(at(7, 59)) == UNLIMITED
    assert OFFICE.limit_at(at(8)) == Limit(MiB, MiB)
    assert OFFICE.limit_at(at(11, 59)) == Limit(MiB, MiB)
    assert OFFICE.limit_at(at(12)) == Limit(2 * MiB, 4 * MiB)
    assert OFFICE.limit_at(at(18)) == UNLIMITED
    assert OFFICE.limit_at(at(0)) == UNLIMITED


def test_the_next_change_is_the_next_slot_or_the_first_one_tomorrow() -> None:
    assert OFFICE.next_change(at(7, 59)) == at(8)
    assert OFFICE.next_change(at(8)) == at(12)
    assert OFFICE.next_change(at(20)) == datetime(2026, 12, 8, 8, 0)
    assert Schedule.constant(Limit(MiB, MiB)).next_change(at(8)) is None


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([], "empty schedule"),
        ([("8", "1M")], "entry 1: '8' is not a time of day"),
        ([("24:00", "1M")], "not a time of day"),
        ([("08:00", "1M"), ("07:00", "off")], "entry 2: 07:00 does not come after 08:00"),
        ([("08:00", "1M"), ("18:00", "lots")], "entry 2: 'lots' is not a rate"),
    ],
)
def test_bad_schedules_name_the_entry(entries: list[tuple[object, object]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_schedule(entries)
