"""Bandwidth limits in a real `libmirror run`: logged at start, changed by SIGHUP without a restart."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import SandboxStarter
from tests.service.daemon_proc import Daemon, library_block, write_daemon_config

OPTS = {"settle": 0.2, "poll_interval": 1}


def test_sighup_sets_new_limits_without_restarting_the_library(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    remote = dict(sandbox_procs("sandbox", 2)["remote"])
    root, state, config = tmp_path / "board", tmp_path / "state", tmp_path / "config.toml"
    write_daemon_config(config, state, [library_block("board", root, remote, bwlimit="1M", **OPTS)])
    daemon = Daemon(config)
    try:
        started = daemon.wait_for(lambda e: e["event"] == "bwlimit_changed", 30)
        assert (started["library"], started["up"], started["down"]) == ("board", "1 MiB/s", "1 MiB/s")
        daemon.wait_for(lambda e: e["event"] == "pass" and e.get("library") == "board", 30)

        write_daemon_config(config, state, [library_block("board", root, remote, bwlimit="off:256k", **OPTS)])
        config.write_text('bwlimit = "4M"\n' + config.read_text())
        mark = len(daemon.events)
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_for(lambda e: e["event"] == "config_reloaded", 30, start=mark)
        assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == ([], [], [])
        changes = {
            e.get("library") or e["scope"]: (e["up"], e["down"])
            for e in daemon.events[mark:]
            if e["event"] == "bwlimit_changed"
        }
        assert changes == {"board": ("off", "256 KiB/s"), "daemon": ("4 MiB/s", "4 MiB/s")}
        assert not [e for e in daemon.events[mark:] if e["event"] in ("library_stopped", "library_started")]
        assert daemon.stop(timeout=20) == 0
    finally:
        daemon.kill()
