"""``libmirror status --check``: one line per library and a monitoring exit code (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN), read-only, without the network; ``status --json`` carries the same verdict under ``health``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio

from daemon.state.lock import StateLock
from daemon.state.store import STATE_FILE, StateStore
from tests.cli.test_status import BACKOFF_ERROR, BEARER, SIGNATURE, TOKEN, tree
from tests.cli.test_status import run as run_status
from tests.cli.test_status import write_config as unreachable_config
from tests.conftest import SandboxStarter
from tests.e2e.conftest import LIBMIRROR, Mirror, write_config

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def check(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIBMIRROR, "--config", str(config), "status", "--check", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LIBMIRROR_TEST_KEY": "not-a-real-key-0123"},
    )


def as_json(config: Path) -> dict[str, Any]:
    result = check(config, "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == report["health"]["code"], (result.returncode, report)
    return report


def synced(tmp_path: Path, sandbox_procs: SandboxStarter, **library: Any) -> Mirror:
    mirror = write_config(tmp_path, sandbox_procs("cd", 6)["remote"], **library)
    mirror.sync()
    return mirror


def test_no_state_yet_is_unknown_and_creates_nothing(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path)
    before = tree(tmp_path)
    result = check(config)
    assert result.returncode == UNKNOWN, result
    assert result.stdout.startswith("UNKNOWN: no state yet") and len(result.stdout.splitlines()) == 1
    assert tree(tmp_path) == before


def test_an_invalid_config_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('state_dir = "s"\n[[library]]\nname = "x"\n')
    result = check(config)
    assert result.returncode == UNKNOWN
    assert result.stdout.startswith("UNKNOWN: the configuration") and str(config) in result.stdout
    assert "Traceback" not in result.stderr


def test_in_sync_is_ok_then_stale_is_a_warning(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    mirror = synced(tmp_path, sandbox_procs, poll_interval=1)
    result = check(mirror.config)
    assert result.returncode == OK, result
    assert result.stdout.startswith("OK board: in sync, 6 files, last pass ")
    time.sleep(3.5)  # more than 3 poll intervals without a successful pass
    stale = check(mirror.config)
    assert stale.returncode == WARNING, stale
    assert "WARNING board: last successful pass " in stale.stdout and "expected every 1 s" in stale.stdout


def test_a_held_gate_is_a_warning(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    mirror = synced(tmp_path, sandbox_procs, max_delete_count=1)
    for path in sorted(p for p in mirror.root.rglob("*.*") if ".libmirror" not in p.parts)[:3]:
        path.unlink()
    mirror.sync(check=3)
    result = check(mirror.config)
    assert result.returncode == WARNING, result
    assert "WARNING board: safety gate holds 3 remote deletes back" in result.stdout
    report = as_json(mirror.config)
    assert report["libraries"][0]["health"]["status"] == "WARNING"


def test_rejected_credentials_are_critical(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    remote = sandbox_procs("cd", 2)["remote"]
    bad = {k: ("wrong-key-0123456789" if "key" in k else v) for k, v in remote.items()}
    mirror = write_config(tmp_path, bad)
    mirror.sync(check=1)
    result = check(mirror.config)
    assert result.returncode == CRITICAL, result
    assert result.stdout.startswith("CRITICAL board: credentials rejected: ")
    assert "wrong-key-0123456789" not in result.stdout


def test_a_library_that_never_synced_and_fails_is_critical(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path)
    assert run_status(config, "sync").returncode == 1
    result = check(config)
    assert result.returncode == CRITICAL, result
    assert result.stdout.startswith("CRITICAL board: failing since ") and "never synced" in result.stdout
    # the operator pauses the broken library: a page no more, a warning that it is paused
    assert run_status(config, "pause", "board").returncode == 0
    paused = check(config)
    assert paused.returncode == WARNING, paused
    assert paused.stdout.startswith("WARNING board: paused since ") and "failing" not in paused.stdout


def test_a_failure_after_a_recent_success_is_a_warning_then_critical(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    mirror = synced(tmp_path, sandbox_procs, poll_interval=1)
    text = mirror.config.read_text()
    remote_url = next(line for line in text.splitlines() if line.startswith("base_url"))
    mirror.config.write_text(text.replace(remote_url, 'base_url = "http://127.0.0.1:9"'))
    mirror.sync(check=1)
    result = check(mirror.config)
    if result.returncode == WARNING:  # within 3 s of the last success (the failed pass retries for a while)
        assert "last pass failed (retrying)" in result.stdout
        time.sleep(3.5)
        result = check(mirror.config)
    assert result.returncode == CRITICAL, result
    assert "failing every pass, last success " in result.stdout
    mirror.config.write_text(text)
    mirror.sync()  # recovered: the failure is history
    assert check(mirror.config).returncode == OK


def _seed(tmp_path: Path, **status: str) -> None:
    async def body() -> None:
        store = await StateStore.open(tmp_path / "state")
        lib = await store.library_id("board")
        async with store.transaction(lib) as tx:
            for key, value in status.items():
                await tx.set_status(key, value)
            if "backoff" in status:
                await tx.record_failure("docs/report.pdf", BACKOFF_ERROR, time.time(), base=60, factor=2, cap=3600)
        await store.close()

    anyio.run(body)


def _now() -> str:
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


def test_backoff_is_a_warning_and_no_secret_is_printed(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path)
    _seed(tmp_path, last_pass=_now(), backoff="1")
    result = check(config)
    assert result.returncode == WARNING, result
    assert "WARNING board: 1 file(s) in backoff, first docs/report.pdf" in result.stdout
    report = as_json(config)
    dumped = json.dumps(report)
    for secret in (TOKEN, SIGNATURE, BEARER, "AKIAEXAMPLE"):
        assert secret not in dumped + result.stdout
    assert report["libraries"][0]["backoff"][0]["last_error"].endswith("…")


def test_watcher_fallback_in_a_running_daemon_is_a_warning(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path)
    _seed(tmp_path, last_pass=_now(), watcher="fallback", daemon_state="idle")
    assert check(config).returncode == OK  # no daemon runs: nothing is watching or rescanning anyway
    with StateLock.acquire(tmp_path / "state", "run"):  # this test process stands in for the daemon
        result = check(config)
        report = as_json(config)
    assert result.returncode == WARNING, result
    assert "watcher unavailable" in result.stdout
    assert report["daemon"] == {"pid": os.getpid(), "command": "run"}


def test_an_unreadable_store_is_critical(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path)
    _seed(tmp_path, last_pass=_now())
    with sqlite3.connect(tmp_path / "state" / STATE_FILE) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    result = check(config)
    assert result.returncode == CRITICAL, result
    assert result.stdout.startswith("CRITICAL: ") and "cannot read the state store" in result.stdout


def test_lines_are_worst_first_one_per_library(tmp_path: Path) -> None:
    config = unreachable_config(tmp_path, libraries=("board", "later"))
    _seed(tmp_path, last_pass=_now(), gate="would delete 9 of 10 synced files remotely")
    result = check(config)
    assert result.returncode == WARNING, result
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["WARNING board", "UNKNOWN later"]
