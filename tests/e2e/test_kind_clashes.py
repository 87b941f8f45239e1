"""Kind clashes (issue 13 §4) beyond tests/e2e/test_kinds_and_lengths.py: a local FILE that replaced a
synced remote folder, with and without new remote content in that folder, converges in one
`libmirror sync --once` and is never silent; a second run has nothing to do."""

from __future__ import annotations

import shutil
from typing import Any

from tests.e2e.conftest import Mirror, Sandbox, write_config


def _events(mirror: Mirror, result: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == name]


def remote_files(sandbox: Sandbox) -> dict[str, bytes]:
    return {path: sandbox.api.content(obj["id"]) for path, obj in sandbox.api.tree().items()}


def _replace_folder_by_file(mirror: Mirror) -> None:
    shutil.rmtree(mirror.root / "X")
    (mirror.root / "X").write_bytes(b"a local file named X")


def test_a_local_file_replacing_a_synced_folder_converges_in_one_pass(sandbox: Sandbox, mirror: Mirror) -> None:
    api = sandbox.api
    folder = api.mkdir(api.root, "X")
    api.create(folder, "a.txt", b"synced inside X")
    mirror.sync()
    _replace_folder_by_file(mirror)

    first = mirror.sync()  # exit 0
    assert not _events(mirror, first, "action_failed")
    local, remote = mirror.files(), remote_files(sandbox)
    assert local == remote
    # the local file survives on both sides; the synced folder's file was deleted locally, so remotely too
    mine = {p: d for p, d in local.items() if d == b"a local file named X"}
    assert len(mine) == 1 and next(iter(mine)).startswith("X")
    assert not any(p.startswith("X/") for p in remote)
    assert _events(mirror, first, "conflict") or _events(mirror, first, "action")
    assert not _events(mirror, mirror.sync(), "action")


def test_a_local_file_replacing_a_folder_with_new_remote_content_converges_in_one_pass(
    sandbox: Sandbox, mirror: Mirror
) -> None:
    api = sandbox.api
    folder = api.mkdir(api.root, "X")
    api.create(folder, "a.txt", b"synced inside X")
    mirror.sync()
    _replace_folder_by_file(mirror)
    api.create(folder, "b.txt", b"new remotely inside X")  # the remote folder has content we never saw

    first = mirror.sync()  # exit 0: one pass, no error
    assert not _events(mirror, first, "action_failed")
    local, remote = mirror.files(), remote_files(sandbox)
    assert local == remote
    # the remote folder keeps the name (its new content came down), the local file is kept as a copy
    assert local["X/b.txt"] == b"new remotely inside X"
    assert "X/a.txt" not in local  # deleted locally, so remotely too
    [conflict] = _events(mirror, first, "conflict")
    assert conflict["path"] == "X"
    copies = [p for p, d in local.items() if d == b"a local file named X"]
    assert len(copies) == 1 and copies[0].startswith("X (conflicted copy ")
    assert not _events(mirror, mirror.sync(), "action")


def test_uploads_under_a_file_whose_delete_is_held_wait_without_spinning(tmp_path: Any, sandbox: Sandbox) -> None:
    """A synced file X replaced locally by a folder with a child: the remote X must go first. While a
    safety gate holds that delete, the child's upload cannot go either: the pass says so (exit 3) and does
    not spend its rounds re-planning an upload the executor refuses ("remote 'X' is a file")."""
    mirror = write_config(tmp_path, sandbox.remote, max_delete_count=0)
    api = sandbox.api
    api.create(api.root, "X", b"a synced file X")
    mirror.sync()
    (mirror.root / "X").unlink()
    (mirror.root / "X").mkdir()
    (mirror.root / "X" / "c.txt").write_bytes(b"a new local child")

    held = mirror.sync(check=3)
    assert not _events(mirror, held, "action_replanned"), _events(mirror, held, "action_replanned")
    [pass_line] = _events(mirror, held, "pass")
    assert pass_line["rounds"] <= 1 and pass_line["held"] == 1
    assert _events(mirror, held, "safety_gate")
    assert remote_files(sandbox)["X"] == b"a synced file X"

    released = mirror.sync("--confirm-deletes")  # one pass: the file goes, the folder and its child come
    assert not _events(mirror, released, "action_failed")
    remote = remote_files(sandbox)
    assert remote["X/c.txt"] == b"a new local child" and "X" not in remote
    assert mirror.files() == remote
    assert not _events(mirror, mirror.sync(), "action")


def test_a_folder_deleted_remotely_that_holds_only_ignored_files_goes_to_the_trash(
    sandbox: Sandbox, mirror: Mirror
) -> None:
    """The remote deleted folder X; locally X still holds a file libmirror ignores (Finder's .DS_Store).
    The folder cannot be removed empty, and the scanner never reports the ignored file, so every pass
    re-planned the removal in all its rounds, silently. Now it goes to the trash whole, in one pass."""
    api = sandbox.api
    folder = api.mkdir(api.root, "X")
    inside = api.create(folder, "a.txt", b"synced inside X")
    mirror.sync()
    (mirror.root / "X" / ".DS_Store").write_bytes(b"finder junk")
    assert api.delete(inside).status in (200, 202, 204)
    assert api.call("DELETE", f"/api/v2/folders/{folder}/").status in (200, 202, 204)

    first = mirror.sync()
    assert not _events(mirror, first, "action_replanned")
    assert not (mirror.root / "X").exists()
    trash = mirror.trash()
    assert sorted(trash.values()) == [b"finder junk", b"synced inside X"]  # nothing lost
    assert mirror.files() == remote_files(sandbox)
    second = mirror.sync()
    assert not _events(mirror, second, "action") and not _events(mirror, second, "action_replanned")


def test_a_folder_deleted_remotely_that_holds_an_unsyncable_entry_fails_loudly(
    sandbox: Sandbox, mirror: Mirror
) -> None:
    """Something in the folder that is never synced and is no junk (here a symlink) keeps it: the removal
    is reported as failed, once per pass (exit 1, `status` backoff), instead of re-planned in every round."""
    api = sandbox.api
    folder = api.mkdir(api.root, "X")
    inside = api.create(folder, "a.txt", b"synced inside X")
    mirror.sync()
    (mirror.root / "X" / "link").symlink_to("/etc/hostname")
    assert api.delete(inside).status in (200, 202, 204)
    assert api.call("DELETE", f"/api/v2/folders/{folder}/").status in (200, 202, 204)

    first = mirror.sync(check=1)
    assert not _events(mirror, first, "action_replanned")
    [failed] = _events(mirror, first, "action_failed")
    assert failed["path"] == "X" and "X/link" in failed["error"]
    assert (mirror.root / "X" / "link").is_symlink()  # left where it is
    assert "failed: X:" in first.stderr
