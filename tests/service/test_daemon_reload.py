"""SIGHUP on a real `libmirror run`: a removed library stops, a changed one restarts with its new
settings, the untouched one keeps syncing throughout."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.service.daemon_proc import Daemon, library_block, wait_until, write_daemon_config

OPTS = {"settle": 0.2, "poll_interval": 1}


@pytest.fixture
def sandboxes(sandbox_procs: SandboxStarter) -> list[dict[str, Any]]:
    return [sandbox_procs(f"sandbox{n}", 2) for n in (1, 2, 3)]


def test_sighup_removes_and_changes_libraries(tmp_path: Path, sandboxes: list[dict[str, Any]]) -> None:
    remotes = [dict(s["remote"]) for s in sandboxes]
    roots = [tmp_path / name for name in ("keep", "drop", "change")]
    config = tmp_path / "config.toml"
    blocks = [library_block(root.name, root, remote, **OPTS) for root, remote in zip(roots, remotes, strict=True)]
    write_daemon_config(config, tmp_path / "state", blocks)
    daemon = Daemon(config)
    try:
        for root in roots:
            daemon.wait_for(lambda e, n=root.name: e["event"] == "pass" and e.get("library") == n, 30)

        # drop "drop", give "change" another ignore list; "keep" stays as it is
        changed = library_block("change", roots[2], remotes[2], ignore=["*.skip"], **OPTS)
        write_daemon_config(config, tmp_path / "state", [blocks[0], changed])
        mark = len(daemon.events)
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_for(lambda e: e["event"] == "config_reloaded", 30, start=mark)
        assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == ([], ["drop"], ["change"])
        daemon.wait_for(lambda e: e["event"] == "library_stopped" and e.get("library") == "drop", 30, start=mark)

        # the removed library is left alone; the changed one runs with its new ignore list; "keep" syncs
        (roots[1] / "after-removal.txt").write_bytes(b"nobody syncs this any more\n")
        (roots[2] / "ignored.skip").write_bytes(b"ignored now\n")
        (roots[2] / "synced.txt").write_bytes(b"still synced\n")
        (roots[0] / "keep.txt").write_bytes(b"keep syncing\n")
        api_keep, api_drop, api_change = (CoreDataAPI(r) for r in remotes)
        wait_until(lambda: "keep.txt" in api_keep.tree(), 30, step=0.1)
        wait_until(lambda: "synced.txt" in api_change.tree(), 30, step=0.1)
        assert "ignored.skip" not in api_change.tree()
        assert "after-removal.txt" not in api_drop.tree()
        assert not [e for e in daemon.events[mark:] if e["event"] == "library_stopped" and e.get("library") == "keep"]
        assert daemon.stop(timeout=20) == 0
    finally:
        daemon.kill()
