"""`libmirror pause LIBRARY` / `resume LIBRARY` beside a running `libmirror run`: the service runs no pass of
a paused library (across a restart) until it is resumed, and `status` says so."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, library_block, write_daemon_config

POLL = 1.0
TIMEOUT = 60


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIBMIRROR, "--config", str(config), *args], capture_output=True, text=True, timeout=TIMEOUT)


def _row(config: Path) -> dict[str, Any]:
    result = _cli(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    row: dict[str, Any] = json.loads(result.stdout)["libraries"][0]
    return row


def test_pause_holds_the_service_across_a_restart_until_resume(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    info = sandbox_procs("cd", 3)
    api = CoreDataAPI(info["remote"])
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    write_daemon_config(
        config, tmp_path / "state", [library_block("board", root, info["remote"], settle=0.3, poll_interval=POLL)]
    )
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)
        mark = len(daemon.events)
        paused = _cli(config, "pause", "board")
        assert paused.returncode == 0, paused.stderr
        assert "board: paused" in paused.stdout and f"pid {daemon.proc.pid}" in paused.stdout
        daemon.wait_for(lambda e: e.get("event") == "library_paused", TIMEOUT, start=mark)
        again = _cli(config, "pause", "board")
        assert again.returncode == 0 and "already paused" in again.stdout
        (root / "while-paused.txt").write_text("not yet")
        time.sleep(POLL * 4)  # several polls and the watcher's settle time: nothing may run
        assert "while-paused.txt" not in api.tree()
        assert not [e for e in daemon.events[mark:] if e.get("event") in ("pass", "action")]
        row = _row(config)
        assert row["state"] == "paused" and row["paused"]["since"]
        check = _cli(config, "status", "--check")
        assert check.returncode == 1 and "WARNING board: paused since" in check.stdout, check.stdout
    finally:
        assert daemon.stop() == 0
    assert len([e for e in daemon.events if e.get("event") == "library_paused"]) == 1  # logged once

    daemon = Daemon(config)  # a restart keeps the pause
    try:
        daemon.wait_for(lambda e: e.get("event") == "library_paused", TIMEOUT)
        time.sleep(POLL * 3)
        assert "while-paused.txt" not in api.tree()
        assert not [e for e in daemon.events if e.get("event") in ("pass", "action")]
        mark = len(daemon.events)
        resumed = _cli(config, "resume", "board")
        assert resumed.returncode == 0 and "board: resumed" in resumed.stdout, resumed
        daemon.wait_for(lambda e: e.get("event") == "library_resumed", TIMEOUT, start=mark)
        daemon.wait_for(lambda e: e.get("event") == "pass" and e.get("pushed") == 1, TIMEOUT, start=mark)
        assert "while-paused.txt" in api.tree()
        assert _row(config)["paused"] is None
        assert _cli(config, "status", "--check").returncode == 0
        not_paused = _cli(config, "resume", "board")
        assert not_paused.returncode == 0 and "not paused" in not_paused.stdout
    finally:
        assert daemon.stop() == 0


def test_sync_skips_a_paused_library_and_unknown_names_are_refused(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info = sandbox_procs("cd", 3)
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    write_daemon_config(config, tmp_path / "state", [library_block("board", root, info["remote"])])
    unknown = _cli(config, "pause", "nope")
    assert unknown.returncode == 2 and "no library named nope" in unknown.stderr
    assert _cli(config, "pause", "board").returncode == 0
    skipped = _cli(config, "--log-format", "json", "sync")
    assert skipped.returncode == 0, skipped.stderr
    assert "[board] paused since" in skipped.stderr and "libmirror resume board" in skipped.stderr
    assert '"event": "library_paused"' in skipped.stdout
    assert not root.exists()  # no pass ran: the folder was never made
    assert _cli(config, "resume", "board").returncode == 0
    synced = _cli(config, "--log-format", "json", "sync")
    assert synced.returncode == 0, synced.stderr
    assert len([p for p in root.rglob("*") if p.is_file() and ".libmirror" not in p.parts]) == 3
