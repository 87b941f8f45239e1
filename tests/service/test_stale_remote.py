"""Check, then act on the remote side (DESIGN rule 2), through a real `libmirror run`.

A watcher-triggered pass plans against a remote tree up to ``poll_interval`` old. Here the poll
interval is long, so every change a colleague makes through the API lands between the plan's view
(the last poll) and the action the watcher pass takes: exactly the window in which the daemon used to
delete or replace a version it had never seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.service.daemon_proc import Daemon, wait_until, write_daemon_config
from tests.timetap_api import TimeTapAPI

SETTLE = 0.3
LONG_POLL = 600  # no poll happens during a test: every remote change is unseen when the watcher acts
TIMEOUT = 60


def _block(provider: str, root: Path, remote: dict[str, Any]) -> str:
    lines = [
        "[[library]]",
        'name = "lib"',
        f'provider = "{provider}"',
        f'local_path = "{root}"',
        f"settle = {SETTLE}",
        f"poll_interval = {LONG_POLL}",
        "",
        "[library.remote]",
    ]
    lines += [f"{k} = {json.dumps(str(v))}" for k, v in remote.items()]
    return "\n".join(lines) + "\n"


def _start(tmp_path: Path, provider: str, remote: dict[str, Any]) -> tuple[Daemon, Path]:
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    write_daemon_config(config, tmp_path / "state", [_block(provider, root, remote)])
    daemon = Daemon(config)
    daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT)  # the start-up pass: both sides in sync
    return daemon, root


def _settled_after(daemon: Daemon, mark: int) -> None:
    """Wait for the end of the watcher pass that began after ``mark`` and of the passes it caused."""
    daemon.wait_for(lambda e: e.get("event") == "pass", TIMEOUT, start=mark)


FILLERS = {f"other-{n}.txt": f"another file {n}".encode() for n in range(3)}  # one delete stays under the gates


def _timetap_live(api: TimeTapAPI) -> dict[str, bytes]:
    live = {p: api.content(o) for p, o in api.tree().items() if not p.endswith("/")}
    return {p: c for p, c in live.items() if p not in FILLERS}


def _timetap_with_fillers(sandbox_procs: SandboxStarter) -> tuple[dict[str, Any], TimeTapAPI]:
    info = sandbox_procs("tt", 0, provider="timetap")
    api = TimeTapAPI(info["remote"])
    for name, data in FILLERS.items():
        api.upload(data, name)
    return info, api


def _trash(root: Path) -> dict[str, bytes]:
    base = root / ".libmirror" / "trash"
    return {p.name: p.read_bytes() for p in base.rglob("*") if p.is_file()} if base.is_dir() else {}


def test_timetap_remote_rename_then_local_delete_keeps_the_renamed_file(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info, api = _timetap_with_fillers(sandbox_procs)
    obj = api.upload(b"intake form, filled in", "intake-form.txt")
    daemon, root = _start(tmp_path, "timetap", info["remote"])
    try:
        assert (root / "intake-form.txt").read_bytes() == b"intake form, filled in"
        api.update(obj, fileName="intake-form (reviewed).txt")  # a colleague, unseen by the daemon
        mark = len(daemon.events)
        (root / "intake-form.txt").unlink()
        daemon.wait_for(
            lambda e: (
                e.get("event") == "action"
                and e.get("action") == "download"
                and e.get("path") == "intake-form (reviewed).txt"
            ),
            TIMEOUT,
            start=mark,
        )
        _settled_after(daemon, mark)
        assert _timetap_live(api) == {"intake-form (reviewed).txt": b"intake form, filled in"}
        assert (root / "intake-form (reviewed).txt").read_bytes() == b"intake form, filled in"
        events = daemon.events[mark:]
        assert not [e for e in events if e.get("event") == "remote_deleted"]
        assert any(e.get("event") == "action_replanned" and e.get("path") == "intake-form.txt" for e in events)
    finally:
        assert daemon.stop() == 0


def test_timetap_remote_rename_then_local_edit_keeps_both_versions(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info, api = _timetap_with_fillers(sandbox_procs)
    obj = api.upload(b"intake form, filled in", "intake-form.txt")
    daemon, root = _start(tmp_path, "timetap", info["remote"])
    try:
        api.update(obj, fileName="intake-form (reviewed).txt")
        mark = len(daemon.events)
        (root / "intake-form.txt").write_bytes(b"intake form, corrected locally")
        wait_until(lambda: (root / "intake-form (reviewed).txt").exists(), TIMEOUT)
        daemon.wait_for(
            lambda e: e.get("event") == "action" and e.get("action") == "upload" and e.get("path") == "intake-form.txt",
            TIMEOUT,
            start=mark,
        )
        _settled_after(daemon, mark)
        assert _timetap_live(api) == {
            "intake-form (reviewed).txt": b"intake form, filled in",
            "intake-form.txt": b"intake form, corrected locally",
        }
        assert not [e for e in daemon.events[mark:] if e.get("event") == "remote_deleted"]
    finally:
        assert daemon.stop() == 0


def test_timetap_local_delete_keeps_the_destroyed_version_in_the_trash(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    """TimeTap deletes for good: the bytes go to ROOT/.libmirror/trash/ before the DELETE is sent."""
    info, api = _timetap_with_fillers(sandbox_procs)
    api.upload(b"last year's consent form", "consent.txt")
    daemon, root = _start(tmp_path, "timetap", info["remote"])
    try:
        mark = len(daemon.events)
        (root / "consent.txt").unlink()
        daemon.wait_for(lambda e: e.get("event") == "remote_deleted", TIMEOUT, start=mark)
        assert _timetap_live(api) == {}
        assert _trash(root) == {"consent.txt": b"last year's consent form"}
        assert sorted(_timetap_live(api)) == [], "only the fillers are left"
        kept = [e for e in daemon.events[mark:] if e.get("event") == "remote_version_kept"]
        assert [e["path"] for e in kept] == ["consent.txt"]
    finally:
        assert daemon.stop() == 0


def test_coredata_remote_edit_then_local_delete_pulls_the_edit(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    info = sandbox_procs("cd", 0)
    api = CoreDataAPI(info["remote"])
    for name, data in FILLERS.items():
        api.create(info["remote"]["root"], name, data)
    file_id = api.create(info["remote"]["root"], "minutes.txt", b"minutes, draft")
    daemon, root = _start(tmp_path, "coredata", info["remote"])
    try:
        assert (root / "minutes.txt").read_bytes() == b"minutes, draft"
        assert api.update(file_id, b"minutes, approved by the board").status in (200, 201, 204)
        mark = len(daemon.events)
        (root / "minutes.txt").unlink()
        daemon.wait_for(
            lambda e: e.get("event") == "action" and e.get("action") == "download" and e.get("path") == "minutes.txt",
            TIMEOUT,
            start=mark,
        )
        assert (root / "minutes.txt").read_bytes() == b"minutes, approved by the board"
        assert "minutes.txt" in api.tree(), "the edited version was sent to the tenant trash"
        assert not [e for e in daemon.events[mark:] if e.get("event") == "remote_deleted"]
    finally:
        assert daemon.stop() == 0
