"""A local name that is not valid UTF-8 never stops the library (issue 13 §1): it is skipped with one
warning, everything else syncs both ways, and `status` lists it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import LIBMIRROR, Mirror, Sandbox

BAD = b"\x19\x81\xfe"


def test_a_name_that_is_not_utf8_is_skipped_and_the_rest_syncs(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    root = os.fsencode(mirror.root)
    with open(os.path.join(root, BAD + b".txt"), "wb") as fh:
        fh.write(b"from an old disk")
    os.mkdir(os.path.join(root, BAD))
    with open(os.path.join(root, BAD, b"inside.txt"), "wb") as fh:
        fh.write(b"under a bad folder")
    (mirror.root / "fine.txt").write_bytes(b"a good name")
    folder_id = sandbox.api.folder_paths()[next(p.rpartition("/")[0] for p in sandbox.api.tree() if "/" in p)]
    sandbox.api.create(folder_id, "from the server.txt", b"pulled")

    for _ in range(2):
        result = mirror.sync()  # exit 0: the bad names do not fail the pass
        events = mirror.events(result)
        warned = [e for e in events if e["event"] == "name_not_utf8"]
        assert len(warned) == 2, warned  # the file and the folder, one line each per run
        assert all("\\x81\\xfe" in e["path"] for e in warned)
    assert "fine.txt" in sandbox.api.tree()
    assert any(p.endswith("/from the server.txt") for p in mirror.files())
    assert not any("inside.txt" in p for p in sandbox.api.tree())

    status = subprocess.run(
        [LIBMIRROR, "--config", str(mirror.config), "status", "--json"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    listed = json.loads(status.stdout)["libraries"][0]["unsyncable"]
    assert listed["count"] == 2 and all("\\x81\\xfe" in p for p in listed["paths"])
    table = subprocess.run(
        [LIBMIRROR, "--config", str(mirror.config), "status"], capture_output=True, text=True, timeout=60
    )
    assert "cannot be synced" in table.stdout


def test_the_daemon_watcher_skips_it_too(tmp_path: Path, sandbox: Sandbox, mirror: Mirror) -> None:
    """Through `libmirror run`: the watcher reports the bad name; the pass skips it and goes on."""
    from tests.service.daemon_proc import Daemon

    text = mirror.config.read_text().replace("[library.remote]", "settle = 0.3\n\n[library.remote]", 1)
    mirror.config.write_text(text)
    daemon = Daemon(mirror.config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass", 60)
        mark = len(daemon.events)
        with open(os.path.join(os.fsencode(mirror.root), BAD + b".txt"), "wb") as fh:
            fh.write(b"from an old disk")
        (mirror.root / "beside it.txt").write_bytes(b"synced")
        daemon.wait_for(lambda e: e.get("event") == "action" and e.get("path") == "beside it.txt", 60, start=mark)
        assert [e for e in daemon.events[mark:] if e.get("event") == "name_not_utf8"]
        assert not [e for e in daemon.events[mark:] if e.get("event") in ("library_failed", "pass_failed")], [
            line for line in daemon.lines if "library_failed" in line
        ]
    finally:
        assert daemon.stop() == 0
