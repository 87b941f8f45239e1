"""A library folder on a network filesystem: changes other machines make there reach no watcher, so
the daemon rescans it beside the watcher, says so once in the log, and shows it in `status` and the
systemd STATUS line.

A network mount cannot be made here; ``filesystem = "network"`` takes the same path as a detected one,
and a change the watcher cannot see is made for real: the file's content is rewritten through a hard
link outside the library folder (inotify reports a change to the folder that holds the name it was
made through, so the library's watches see nothing, as with a write from another NFS client).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from daemon.sync.runner import WATCH_CATCH_UP_S
from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, NotifySocket, library_block, wait_until, write_daemon_config

TIMEOUT = 60
MODE = 'native + rescans every 5 s (filesystem = "network")'


def test_a_change_no_watcher_sees_is_found_by_the_network_rescans(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info = sandbox_procs("cd", 6)
    api = CoreDataAPI(info["remote"])
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    block = library_block(
        "board", root, info["remote"], filesystem="network", network_rescan_interval=5, poll_interval=600
    )
    write_daemon_config(config, tmp_path / "state", [block])
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = Daemon(config, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        event = daemon.wait_for(lambda e: e.get("event") == "watcher_network_filesystem", TIMEOUT)
        assert event["rescan_every_s"] == 5 and 'filesystem = "local"' in event["next_step"]
        daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)

        mark = len(daemon.events)
        (root / "scan.pdf").write_bytes(b"%PDF first")
        daemon.wait_for(lambda e: e.get("event") == "action" and e.get("path") == "scan.pdf", TIMEOUT, start=mark)

        # the watcher's start-up catch-up rescans would find the change too: make it after the last one
        done = daemon.wait_for(lambda e: e.get("event") == "watcher_catch_up_done", TIMEOUT)
        assert done["rescans"] == len(WATCH_CATCH_UP_S)
        outside = tmp_path / "elsewhere" / "scan.pdf"
        outside.parent.mkdir()
        outside.hardlink_to(root / "scan.pdf")
        mark = len(daemon.events)
        with outside.open("r+b") as handle:  # same inode, written through a name the watcher does not see
            handle.write(b"%PDF edited on another machine")
        daemon.wait_for(
            lambda e: e.get("event") == "action" and e.get("action") == "upload" and e.get("path") == "scan.pdf",
            TIMEOUT,
            start=mark,
        )
        [remote] = [f for f in api.files() if f.get("filename") == "scan.pdf" or f.get("name") == "scan.pdf"]
        assert api.content(remote["id"]) == b"%PDF edited on another machine"

        status = subprocess.run(
            [LIBMIRROR, "--config", str(config), "status", "--json"], capture_output=True, text=True, check=True
        )
        [row] = json.loads(status.stdout)["libraries"]
        assert row["watcher_mode"] == MODE and row["health"]["status"] == "OK"
        table = subprocess.run([LIBMIRROR, "--config", str(config), "status"], capture_output=True, text=True)
        assert f"board: watcher: {MODE}" in table.stdout
        wait_until(lambda: any(f"watcher: {MODE}" in f for f in notify.fields() if f.startswith("STATUS=")), 30)
        assert sum(e.get("event") == "watcher_network_filesystem" for e in daemon.events) == 1  # logged once
    finally:
        notify.close()
        assert daemon.stop() == 0
