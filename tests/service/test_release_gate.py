"""`libmirror release-gate LIBRARY` beside a running `libmirror run`: a held gate is released without
stopping the service and without a second writer on the state store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, library_block, write_daemon_config

POLL = 2.0
TIMEOUT = 60


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIBMIRROR, "--config", str(config), *args], capture_output=True, text=True, timeout=TIMEOUT)


def _status(config: Path) -> dict[str, Any]:
    result = _cli(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    row: dict[str, Any] = json.loads(result.stdout)["libraries"][0]
    return row


def _delete_in_one_pass(config: Path, daemon: Daemon, root: Path, rels: list[str]) -> None:
    """Delete ``rels`` so that one pass sees them all: on a busy machine the watcher may report the
    unlinks in two batches, and a first pass would then apply a delete the gate allows (max 1) before
    the gate sees the rest. The library is paused meanwhile; its resume re-observes the folder in full."""
    mark = len(daemon.events)
    assert _cli(config, "pause", "board").returncode == 0
    for rel in rels:
        (root / rel).unlink()
    daemon.wait_for(lambda e: e.get("event") == "library_paused", TIMEOUT, start=mark)
    assert _cli(config, "resume", "board").returncode == 0


def test_release_gate_lets_the_running_service_apply_the_held_deletes(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info = sandbox_procs("cd", 6)
    api = CoreDataAPI(info["remote"])
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    block = library_block("board", root, info["remote"], settle=0.3, poll_interval=POLL, max_delete_count=1)
    write_daemon_config(config, tmp_path / "state", [block])

    nothing = _cli(config, "release-gate", "board")
    assert nothing.returncode == 0 and "nothing to release" in nothing.stdout
    assert not (tmp_path / "state" / "control").exists()

    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*") if ".libmirror" not in p.parts)
        victims = files[:3]
        mark = len(daemon.events)
        _delete_in_one_pass(config, daemon, root, victims)
        gate = daemon.wait_for(lambda e: e.get("event") == "safety_gate", TIMEOUT, start=mark)
        assert gate["remote_deletes"] == 3 and "release-gate board" in gate["reason"]
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT, start=daemon.events.index(gate))
        row = _status(config)
        assert row["state"] == "halted" and row["held"]["remote_deletes"] == 3
        assert all(rel in api.tree() for rel in victims)

        mark = len(daemon.events)
        released = _cli(config, "release-gate", "board")
        assert released.returncode == 0, released.stderr
        assert f"pid {daemon.proc.pid}" in released.stdout
        daemon.wait_for(lambda e: e.get("event") == "gate_released", POLL * 5 + TIMEOUT, start=mark)
        daemon.wait_for(
            lambda e: e.get("event") == "pass" and e.get("deleted") == 3 and e.get("held") == 0, TIMEOUT, start=mark
        )
        assert not any(rel in api.tree() for rel in victims)
        assert _status(config)["state"] != "halted"
        assert list((tmp_path / "state" / "control").iterdir()) == []  # the request was taken
    finally:
        assert daemon.stop() == 0


def test_a_release_of_other_changes_than_those_held_is_not_applied(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    """A release names what it lets through: one made for two held deletes is not applied once a third
    one joined them (the operator must look again)."""
    from daemon.control import ControlDir

    info = sandbox_procs("cd", 6)
    api = CoreDataAPI(info["remote"])
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    block = library_block("board", root, info["remote"], settle=0.3, poll_interval=POLL, max_delete_count=1)
    write_daemon_config(config, tmp_path / "state", [block])
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*") if ".libmirror" not in p.parts)
        mark = len(daemon.events)
        _delete_in_one_pass(config, daemon, root, files[:2])
        daemon.wait_for(lambda e: e.get("event") == "safety_gate" and e["remote_deletes"] == 2, TIMEOUT, start=mark)
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT, start=mark)
        released_two = _status(config)["halted_because"]
        mark = len(daemon.events)
        (root / files[2]).unlink()
        daemon.wait_for(lambda e: e.get("event") == "safety_gate" and e["remote_deletes"] == 3, TIMEOUT, start=mark)
        # the operator's release of the two, arriving now (as if asked a moment before the third delete)
        mark = len(daemon.events)
        ControlDir(tmp_path / "state").request_release("board", released_two)
        daemon.wait_for(lambda e: e.get("event") == "gate_release_not_applied", TIMEOUT, start=mark)
        assert all(rel in api.tree() for rel in files[:3])
        assert not [e for e in daemon.events if e.get("event") in ("remote_deleted", "gate_released")]
    finally:
        assert daemon.stop() == 0
