"""`libmirror sync --once` against a real `libmirror sandbox timetap` process.

The sandbox's session tokens expire after a handful of requests (``token_uses``), so every run below
renews its token mid-run: no action may fail because of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mirror, Sandbox, write_config
from tests.e2e.libraries import LIBRARIES, timetap_files
from tests.timetap_api import TimeTapAPI

TimeTapSandbox = Sandbox[TimeTapAPI]
remote_files = timetap_files


@pytest.fixture
def tt(tmp_path: Path) -> Iterator[TimeTapSandbox]:
    """The sandbox whose session tokens expire after a couple of requests (``TIMETAP_TOKEN_USES``)."""
    with LIBRARIES["timetap"].start(tmp_path) as sandbox:
        yield sandbox


def remote_dirs(tt: TimeTapSandbox) -> set[str]:
    return {p.rstrip("/") for p in tt.api.tree() if p.endswith("/")}


def local_dirs(mirror: Mirror) -> set[str]:
    return {
        p.relative_to(mirror.root).as_posix()
        for p in mirror.root.rglob("*")
        if p.is_dir() and ".libmirror" not in p.relative_to(mirror.root).parts
    }


def actions(mirror: Mirror, events: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return sorted((e["action"], e["path"], e.get("src")) for e in events if e["event"] == "action")


SEEN: list[dict[str, Any]] = []


def checked_sync(mirror: Mirror, *args: str) -> list[dict[str, Any]]:
    """One run that must succeed with no failed action (token renewals included)."""
    events = mirror.events(mirror.sync(*args))
    assert not [e for e in events if e["event"] in ("action_failed", "action_replanned")]
    SEEN.extend(events)
    return events


def test_timetap_two_way_mirror(tmp_path: Path, tt: TimeTapSandbox) -> None:
    mirror = write_config(tmp_path, tt.remote, provider="timetap")

    # 1. the seeded library arrives (checked in detail by test_every_provider.py)
    SEEN.clear()
    checked_sync(mirror)
    assert mirror.files() == remote_files(tt)

    # 2. new nested local folders go up
    (mirror.root / "Neu" / "Tief").mkdir(parents=True)
    (mirror.root / "Neu" / "Tief" / "a.txt").write_bytes(b"deep local file\n")
    (mirror.root / "Neu" / "b.txt").write_bytes(b"shallow local file\n")
    checked_sync(mirror)
    remote = remote_files(tt)
    assert remote["Neu/Tief/a.txt"] == b"deep local file\n" and remote["Neu/b.txt"] == b"shallow local file\n"

    # 3. a local folder rename is ONE remote move: same ids, nothing re-uploaded or deleted
    before = tt.api.tree()
    moved_ids = {p: o["fileLibraryUUID"] for p, o in before.items() if p.startswith("Berichte/")}
    assert len(moved_ids) >= 2
    (mirror.root / "Berichte").rename(mirror.root / "Reports")
    events = checked_sync(mirror)
    assert actions(mirror, events) == [("move_remote", "Reports", "Berichte")]
    after = tt.api.tree()
    assert {p: o["fileLibraryUUID"] for p, o in after.items() if p.startswith("Reports/")} == {
        "Reports/" + p.removeprefix("Berichte/"): i for p, i in moved_ids.items()
    }
    assert not any(p.startswith("Berichte/") for p in after)
    assert mirror.files() == remote_files(tt)

    # 4. edits on both sides propagate (TimeTap has no content update: new upload, then delete old)
    local_edit = "Reports/2023/" + next(
        p.removeprefix("Reports/2023/") for p in sorted(after) if p.startswith("Reports/2023/") and not p.endswith("/")
    )
    old_id = after[local_edit]["fileLibraryUUID"]
    (mirror.root / local_edit).write_bytes(b"edited locally\n")
    remote_edit = "Neu/b.txt"
    tree = tt.api.tree()
    replaced = tree[remote_edit]
    tt.api.upload(b"edited remotely\n", "b.txt", parent=replaced["parentFileLibraryUUID"])
    assert tt.api.delete(replaced["fileLibraryUUID"]) == 204
    checked_sync(mirror)
    remote = remote_files(tt)
    assert remote[local_edit] == b"edited locally\n"
    assert tt.api.tree()[local_edit]["fileLibraryUUID"] != old_id  # the old copy is gone
    assert old_id not in {o["fileLibraryUUID"] for o in tt.api.files()}
    assert (mirror.root / remote_edit).read_bytes() == b"edited remotely\n"

    # 5. a remote folder rename is one local rename; a synced local delete is permanent and says so
    folder = tt.api.tree()["Neu/"]
    tt.api.update(folder, fileName="Neuer Ordner")
    victim = next(p for p in sorted(mirror.files()) if p.startswith("Projekte/"))
    (mirror.root / victim).unlink()
    events = checked_sync(mirror)
    assert ("move_local", "Neuer Ordner", "Neu") in actions(mirror, events)
    deleted = [e for e in events if e["event"] == "remote_deleted"]
    assert [(e["path"], e["permanent"]) for e in deleted] == [(victim, True)]
    assert victim not in remote_files(tt)
    assert (mirror.root / "Neuer Ordner" / "Tief" / "a.txt").read_bytes() == b"deep local file\n"

    assert mirror.files() == remote_files(tt)
    assert local_dirs(mirror) == remote_dirs(tt)
    assert actions(mirror, mirror.events(mirror.sync())) == []

    # tokens expired in the middle of runs and were renewed without a failed action; no secret logged
    assert len([e for e in SEEN if e["event"] == "session_token_renewed"]) >= 1
    log_text = "\n".join(map(str, SEEN))
    for secret in (tt.remote["api_key"], tt.remote["private_key"], "st:api:api:"):
        assert secret not in log_text
