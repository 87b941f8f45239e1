"""The ``bwlimit`` keys, general and per library: rates, schedules, and errors that say how to fix them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.bandwidth import NO_LIMIT, Limit, Schedule, Slot
from daemon.config import ConfigIssue
from tests.test_config import issues, load, minimal, write

LIBMIRROR = str(Path(sys.executable).with_name("libmirror"))
MiB = 1024 * 1024


def test_bwlimit_defaults_to_no_limit(tmp_path: Path) -> None:
    config = load(write(tmp_path, minimal()))
    assert config.bwlimit == NO_LIMIT and config.libraries[0].bwlimit == NO_LIMIT


def test_a_rate_a_pair_and_a_schedule(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            minimal(
                extra_top='bwlimit = "1M:10M"',
                extra_lib='bwlimit = [{ at = "08:00", rate = "512k" }, { at = "18:00", rate = "off" }]',
            ),
        )
    )
    assert config.bwlimit == Schedule.constant(Limit(MiB, 10 * MiB))
    assert config.libraries[0].bwlimit == Schedule((Slot(480, Limit(512 * 1024, 512 * 1024)), Slot(1080, Limit())))


def only(found: list[ConfigIssue]) -> ConfigIssue:
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("top", "lib", "key", "words"),
    [
        ('bwlimit = "512"', "", "bwlimit", ['"512k"', "no unit"]),
        ("", 'bwlimit = "fast"', "library[board].bwlimit", ["not a rate", '"1M"', '"off"']),
        ("", "bwlimit = 1.5", "library[board].bwlimit", ["got a float", '"1M"']),
        (
            'bwlimit = [{ at = "18:00", rate = "off" }, { at = "08:00", rate = "1M" }]',
            "",
            "bwlimit",
            ["entry 2", "08:00 does not come after 18:00", "time order"],
        ),
        ('bwlimit = [{ at = "8am", rate = "1M" }]', "", "bwlimit", ["entry 1", '"HH:MM"']),
        ('bwlimit = [{ from = "08:00", rate = "1M" }]', "", "bwlimit[0]", ["missing at", 'at = "HH:MM"']),
        ('bwlimit = ["08:00,1M"]', "", "bwlimit[0]", ["got a string", "at = "]),
        ("bwlimit = []", "", "bwlimit", ["empty schedule"]),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, top: str, lib: str, key: str, words: list[str]) -> None:
    issue = only(issues(write(tmp_path, minimal(extra_top=top, extra_lib=lib))))
    assert issue.key == key
    for word in words:
        assert word in issue.message


def test_check_config_reports_a_bad_bwlimit(tmp_path: Path) -> None:
    config = write(tmp_path, minimal(extra_lib='bwlimit = "10M:fast"'))
    result = subprocess.run(
        [LIBMIRROR, "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COREDATA_KEY": "k" * 20, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert f"{config}: library[board].bwlimit: 'fast' is not a rate" in result.stderr


def test_check_config_says_how_it_read_the_limits(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        minimal(
            extra_top='bwlimit = "1M:10M"',
            extra_lib='bwlimit = [{ at = "08:00", rate = "512k" }, { at = "18:00", rate = "off" }]',
        ),
    )
    result = subprocess.run(
        [LIBMIRROR, "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COREDATA_KEY": "k" * 20, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "bwlimit of all libraries together: up 1 MiB/s, down 10 MiB/s" in result.stdout
    assert "bwlimit 08:00 512 KiB/s; 18:00 off" in result.stdout
