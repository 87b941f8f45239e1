"""A long pass of the running daemon shows its totals: in the systemd STATUS line and in
`libmirror status` (table and --json), with an ETA; they are gone once the pass ends."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, NotifySocket, library_block, wait_until, write_daemon_config

TIMEOUT = 90
PROGRESS_LINE = re.compile(r"\d+/\d+ files, [\d.]+ \w+/[\d.]+ \w+, [\d.]+ \w+/s, ETA \w+, \d+ errors")


def _status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIBMIRROR, "--config", str(config), "status", *args], capture_output=True, text=True)


def _progress(config: Path) -> dict[str, Any] | None:
    result = _status(config, "--json")
    assert result.returncode == 0, result.stderr
    libraries = json.loads(result.stdout)["libraries"]  # empty until the daemon made the state store
    progress: dict[str, Any] | None = libraries[0]["progress"] if libraries else None
    return progress


def test_a_long_first_pass_shows_its_totals_in_status_and_the_status_line(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info = sandbox_procs("cd", 6)
    api = CoreDataAPI(info["remote"])
    for i in range(6):  # 300 KiB beyond the bucket's first burst
        api.create(info["remote"]["root"], f"scan-{i}.pdf", bytes([i]) * 50 * 1024)
    config = tmp_path / "config.toml"
    # a download limit stretches the first pass over several seconds (progress is published every 2 s)
    block = library_block("board", tmp_path / "mirror", info["remote"], bwlimit="off:40k", poll_interval=30)
    write_daemon_config(config, tmp_path / "state", [block])
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = Daemon(config, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        deadline = time.monotonic() + TIMEOUT
        progress = None
        while progress is None and not any(e.get("event") == "pass" for e in daemon.events):
            assert time.monotonic() < deadline, "no progress in status while the first pass ran"
            progress = _progress(config)
        assert progress is not None, [str(e) for e in daemon.events if e.get("event") in ("pass", "bwlimit_changed")]
        assert progress["files_total"] > 0 and 0 <= progress["files_done"] <= progress["files_total"]
        assert 0 <= progress["bytes_done"] <= progress["bytes_total"]
        assert progress["errors"] == 0 and "eta_s" in progress and progress["at"]
        wait_until(lambda: any(PROGRESS_LINE.search(f) for f in notify.fields() if f.startswith("STATUS=")), 30)

        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)
        wait_until(lambda: _progress(config) is None, 30)  # cleared when the pass ends
        assert "files," not in _status(config).stdout
    finally:
        notify.close()
        assert daemon.stop() == 0
