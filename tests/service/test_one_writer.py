"""One writer per state store (DESIGN rule 9), with a real ``libmirror run`` holding the store.

A ``sync --once`` beside the daemon is refused with exit 4 naming the daemon's pid (before the lock,
both synced the same files and doubled them, or one died on "database is locked"); the lock lasts
across SIGHUP and goes with the process, even a killed one. ``status`` reads beside the daemon
without creating, registering or locking anything.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from daemon.state.store import STATE_FILE
from tests.conftest import SandboxStarter
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, library_block, write_daemon_config

EXIT_LOCKED = 4
BUSY_EVENTS = {"poll", "pass", "action", "scan", "pass_failed", "daemon_started"}


def libmirror(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIBMIRROR, "--config", str(config), "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line[line.index(">") + 1 :]) for line in result.stdout.splitlines() if line.startswith("<")]


def assert_refused(result: subprocess.CompletedProcess[str], daemon: Daemon, state: Path) -> None:
    assert result.returncode == EXIT_LOCKED, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    err = result.stderr
    assert f"libmirror pid {daemon.proc.pid} (`libmirror run`)" in err, err
    assert str(state) in err and "systemctl stop libmirror" in err and "libmirror status" in err, err
    assert "Traceback" not in err
    # nothing was done: no poll, no scan, no pass, no action, no log line at all from the refused process
    assert not {e.get("event") for e in events(result)} & BUSY_EVENTS, result.stdout[-2000:]


def test_sync_beside_a_running_daemon_is_refused_and_the_lock_goes_with_the_daemon(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    remote = dict(sandbox_procs("sandbox", 6)["remote"])
    root, state, config = tmp_path / "root", tmp_path / "state", tmp_path / "config.toml"
    write_daemon_config(config, state, [library_block("lib", root, remote, poll_interval=1, settle=0.2)])

    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e["event"] == "pass", 120)
        files_before = sorted(p.name for p in root.rglob("*") if p.is_file() and ".libmirror" not in p.parts)
        assert_refused(libmirror(config, "sync", "--once"), daemon, state)
        assert_refused(libmirror(config, "sync", "--once", "--dry-run"), daemon, state)

        # a reload keeps the same process, so the same lock
        mark = len(daemon.events)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda e: e["event"] == "config_reloaded", 60, start=mark)
        assert_refused(libmirror(config, "sync", "--once"), daemon, state)
        # a second daemon is refused the same way (it must not start syncing beside the first)
        second = libmirror(config, "run", timeout=120)
        assert_refused(second, daemon, state)

        assert sorted(p.name for p in root.rglob("*") if p.is_file() and ".libmirror" not in p.parts) == files_before
        assert daemon.proc.poll() is None  # the daemon kept running throughout
        assert daemon.stop(timeout=60) == 0
    finally:
        daemon.kill()
    # stopped: the store is free again
    after_stop = libmirror(config, "sync", "--once")
    assert after_stop.returncode == 0, after_stop.stderr[-2000:]

    # killed (no clean-up of any kind): the kernel dropped the lock with the process
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e["event"] == "pass", 120)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=30)
    finally:
        daemon.kill()
    after_kill = libmirror(config, "sync", "--once")
    assert after_kill.returncode == 0, after_kill.stderr[-2000:]
    assert [e["pushed"] + e["pulled"] for e in events(after_kill) if e["event"] == "pass"] == [0]


def test_status_reads_beside_a_running_daemon_and_writes_nothing(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    remote = dict(sandbox_procs("sandbox", 6)["remote"])
    root, state, config = tmp_path / "root", tmp_path / "state", tmp_path / "config.toml"
    block = library_block("lib", root, remote, poll_interval=1, settle=0.2)
    write_daemon_config(config, state, [block])
    # the operator added a library to the file and has not reloaded yet: status must not register it
    status_config = tmp_path / "status.toml"
    write_daemon_config(status_config, state, [block, library_block("later", tmp_path / "later", remote)])

    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e["event"] == "pass", 120)
        lock_text = (state / "lock").read_text()
        assert lock_text.startswith(f"{daemon.proc.pid}\n")
        entries = sorted(p.name for p in state.iterdir())
        # keep the daemon writing while status reads: a burst of local files to push
        for i in range(40):
            (root / f"burst {i:02d}.txt").write_bytes(b"burst %d\n" % i)
        mark = len(daemon.events)
        for _ in range(3):
            started = time.monotonic()
            result = libmirror(status_config, "status", "--json", timeout=60)
            assert result.returncode == 0, result.stderr[-2000:]
            assert time.monotonic() - started < 30  # did not wait for the daemon
            rows = {row["library"]: row for row in json.loads(result.stdout)["libraries"]}
            assert rows["lib"]["files"] >= 6 and rows["lib"]["last_pass"] is not None
            assert rows["later"]["state"] == "new" and rows["later"]["files"] == 0
        table = libmirror(status_config, "status", timeout=60)
        assert table.returncode == 0 and "later" in table.stdout and "new" in table.stdout
        daemon.wait_for(lambda e: e["event"] == "pass" and e.get("pushed", 0) > 0, 120, start=mark)
        assert sorted(p.name for p in state.iterdir()) == entries  # status created nothing
        assert (state / "lock").read_text() == lock_text  # nor touched the lock
        assert daemon.proc.poll() is None
        assert daemon.stop(timeout=60) == 0
    finally:
        daemon.kill()
    with sqlite3.connect(state / STATE_FILE) as db:
        assert db.execute("SELECT name FROM libraries ORDER BY name").fetchall() == [("lib",)]
