"""``libmirror status --metrics`` from a state store (read-only, offline) and the ``metrics_listen``
key's checks, through the real ``libmirror`` command."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.state.store import StateStore
from tests.cli.test_status import run, tree, write_config


def _samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, library) -> value."""
    return {
        (s.name, s.labels["library"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_no_state_yet_prints_no_series_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    before = tree(tmp_path)
    result = run(config, "status", "--metrics")
    assert result.returncode == 0, result.stderr
    assert _samples(result.stdout) == {}
    assert tree(tmp_path) == before


def test_the_stored_figures_of_each_library_are_printed(tmp_path: Path) -> None:
    config = write_config(tmp_path, libraries=("board", "clinic", "later"))

    async def stored() -> None:
        store = await StateStore.open(tmp_path / "state")
        board = await store.library_id("board")
        clinic = await store.library_id("clinic")
        async with store.transaction(board) as tx:
            await tx.record_failure("a.pdf", "HTTP 500", time.time(), base=60, factor=2, cap=3600)
            await tx.record_failure("b.pdf", "HTTP 500", time.time(), base=60, factor=2, cap=3600)
            await tx.set_status("gate", "would delete 3 of 6 synced files")
            await tx.set_status("last_pass", "2026-01-05T09:14:03+01:00")
            await tx.set_status("last_poll", "2026-01-05T09:15:00+01:00")
        async with store.transaction(clinic) as tx:
            await tx.set_status("last_pass", "2026-01-05T08:00:00+00:00")
        await store.close()

    anyio.run(stored)
    result = run(config, "status", "--metrics")
    assert result.returncode == 0, result.stderr
    samples = _samples(result.stdout)
    assert samples == {
        ("libmirror_tracked_files", "board"): 0,
        ("libmirror_tracked_files", "clinic"): 0,
        ("libmirror_files_in_backoff", "board"): 2,
        ("libmirror_files_in_backoff", "clinic"): 0,
        ("libmirror_safety_gate_held", "board"): 1,
        ("libmirror_safety_gate_held", "clinic"): 0,
        # the later of the last pass and the last poll, as `status --check` counts a success
        ("libmirror_last_successful_pass_timestamp_seconds", "board"): 1767600900.0,
        ("libmirror_last_successful_pass_timestamp_seconds", "clinic"): 1767600000.0,
    }  # "later" is configured but never synced: no series


def test_metrics_is_not_combined_with_json_or_check(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for other in ("--json", "--check"):
        result = run(config, "status", "--metrics", other)
        assert result.returncode == 2
        assert "status --metrics cannot be combined with --json or --check" in result.stderr
        assert result.stdout == ""


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("9464", '"9464" is not HOST:PORT'),
        (":9464", '":9464" is not HOST:PORT'),
        ("127.0.0.1:0", 'the port in "127.0.0.1:0" must be a number from 1 to 65535'),
        ("127.0.0.1:http", 'the port in "127.0.0.1:http" must be a number'),
        ("::1:9464", '"::1:9464": write an IPv6 address in brackets, like "[::1]:9464"'),
        ("[nope]:9464", '"nope" in "[nope]:9464" is not an IPv6 address'),
        ("http://h:9464", '"http://h:9464": write HOST:PORT without a scheme or path'),
        ("h/x:9464", '"h/x" in "h/x:9464" is not a host name or address'),
    ],
)
def test_a_bad_metrics_listen_is_a_config_error_naming_the_key(tmp_path: Path, listen: str, problem: str) -> None:
    config = write_config(tmp_path)
    config.write_text(f'metrics_listen = "{listen}"\n' + config.read_text())
    for command in (["check-config"], ["run"]):
        result = run(config, *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"{config}: metrics_listen: {problem}" in result.stderr


def test_good_metrics_listen_values_are_accepted(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text()
    for listen in ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", "localhost:9464", ""):
        config.write_text(f'metrics_listen = "{listen}"\n' + text)
        result = run(config, "check-config")
        assert result.returncode == 0, (listen, result.stderr)
