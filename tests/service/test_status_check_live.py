"""`libmirror status --check` beside a running `libmirror run`: a library whose credentials the server
rejects is CRITICAL while the other one is OK, and the check neither waits for nor disturbs the daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import SandboxStarter
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, library_block, wait_until, write_daemon_config

TIMEOUT = 60


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIBMIRROR, "--config", str(config), "status", "--check"], capture_output=True, text=True, timeout=TIMEOUT
    )


def test_check_beside_the_daemon_reports_each_library(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    remote = sandbox_procs("cd", 4)["remote"]
    bad = {k: ("rejected-key-0123456789" if "key" in k else v) for k, v in remote.items()}
    config = tmp_path / "config.toml"
    blocks = [
        library_block("good", tmp_path / "good", remote, settle=0.3, poll_interval=2),
        library_block("bad", tmp_path / "bad", bad, settle=0.3, poll_interval=2),
    ]
    write_daemon_config(config, tmp_path / "state", blocks)
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass" and e.get("library") == "good", TIMEOUT)
        daemon.wait_for(lambda e: e.get("event") == "library_failed" and e.get("library") == "bad", TIMEOUT)
        results: list[subprocess.CompletedProcess[str]] = []

        def critical_and_ok() -> bool:
            results.append(_check(config))
            lines = results[-1].stdout.splitlines()
            return results[-1].returncode == 2 and len(lines) == 2 and lines[1].startswith("OK good: in sync")

        wait_until(critical_and_ok, TIMEOUT, step=0.5)
        first = results[-1].stdout.splitlines()[0]
        assert first.startswith("CRITICAL bad: credentials rejected: AuthError"), results[-1].stdout
        assert "rejected-key-0123456789" not in results[-1].stdout
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
