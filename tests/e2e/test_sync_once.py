"""`libmirror sync --once` against a real `libmirror sandbox coredata` process."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import Mirror, Sandbox, write_config


def remote_files(sandbox: Sandbox) -> dict[str, bytes]:
    return {path: sandbox.api.content(obj["id"]) for path, obj in sandbox.api.tree().items()}


def test_local_changes_propagate(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    local = mirror.files()
    victim, edited, moved = sorted(local)[:3]
    (mirror.root / edited).write_bytes(b"edited locally\n")
    (mirror.root / victim).unlink()
    (mirror.root / "new folder" / "deep").mkdir(parents=True)
    (mirror.root / "new folder" / "deep" / "added.txt").write_bytes(b"added locally\n")
    (mirror.root / moved).rename(mirror.root / "new folder" / "moved here.bin")
    mirror.sync()
    remote = remote_files(sandbox)
    assert remote == mirror.files()
    assert remote[edited] == b"edited locally\n"
    assert victim not in remote
    assert remote["new folder/deep/added.txt"] == b"added locally\n"
    assert remote["new folder/moved here.bin"] == local[moved]
    # the move was a metadata change, not a re-upload: same remote id
    assert "new folder/moved here.bin" in sandbox.api.tree()
    assert mirror.sync().returncode == 0


def test_remote_changes_propagate_and_deletes_go_to_trash(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    tree = sandbox.api.tree()
    names = sorted(tree)
    edited, deleted, moved = names[0], names[1], names[2]
    old_deleted = (mirror.root / deleted).read_bytes()
    assert sandbox.api.update(tree[edited]["id"], b"edited remotely\n").status == 201
    assert sandbox.api.delete(tree[deleted]["id"]).status == 204
    assert sandbox.api.move(tree[moved]["id"], sandbox.api.root, "moved to root.dat").status == 204
    new_id = sandbox.api.create(sandbox.api.root, "from the cloud.txt", b"new remotely\n")
    assert new_id
    inode_before = (mirror.root / moved).stat().st_ino
    mirror.sync()
    local = mirror.files()
    assert local == remote_files(sandbox)
    assert local[edited] == b"edited remotely\n"
    assert deleted not in local
    assert local["from the cloud.txt"] == b"new remotely\n"
    assert (mirror.root / "moved to root.dat").stat().st_ino == inode_before  # renamed, not re-downloaded
    assert old_deleted in mirror.trash().values()


def test_concurrent_edits_leave_remote_under_name_and_local_as_conflict_copy(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    tree = sandbox.api.tree()
    path = sorted(tree)[0]
    (mirror.root / path).write_bytes(b"local version\n")
    assert sandbox.api.update(tree[path]["id"], b"remote version\n").status == 201
    result = mirror.sync()
    assert [e for e in mirror.events(result) if e["event"] == "conflict"]
    local = mirror.files()
    remote = remote_files(sandbox)
    assert local == remote
    assert local[path] == b"remote version\n"
    copies = [p for p in local if "(conflicted copy " in p]
    assert len(copies) == 1 and local[copies[0]] == b"local version\n"
    stem = Path(path).stem
    assert Path(copies[0]).name.startswith(stem + " (conflicted copy ")
    assert mirror.sync().returncode == 0


def test_dry_run_changes_nothing(sandbox: Sandbox, mirror: Mirror) -> None:
    result = mirror.sync("--dry-run")
    assert not mirror.root.exists() or mirror.files() == {}
    assert "download" in result.stderr
    mirror.sync()
    (mirror.root / "local only.txt").write_bytes(b"x")
    before = sandbox.api.tree().keys()
    mirror.sync("--dry-run")
    assert sandbox.api.tree().keys() == before


def test_safety_gate_holds_mass_delete_until_confirmed(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    for path in list(mirror.files())[:8]:
        (mirror.root / path).unlink()
    held = mirror.sync(check=3)
    assert "max_delete" in held.stderr
    assert len(sandbox.api.tree()) == 12
    mirror.sync("--confirm-deletes")
    assert len(sandbox.api.tree()) == 4


def test_unmounted_disk_deletes_nothing(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    # simulate an unmounted disk: the folder is there but empty, marker gone
    for dirpath, _dirs, files in os.walk(mirror.root, topdown=False):
        for name in files:
            os.unlink(os.path.join(dirpath, name))
        if Path(dirpath) != mirror.root:
            os.rmdir(dirpath)
    result = mirror.sync(check=3)
    assert "marker" in result.stderr
    assert len(sandbox.api.tree()) == 12


def test_hostile_remote_names_stay_inside_root(sandbox: Sandbox, mirror: Mirror, tmp_path: Path) -> None:
    api = sandbox.api
    for name in [
        "../../escape.txt",
        "/etc/passwd",
        "a\\b.txt",
        "CON",
        "nul.txt",
        "trailing. ",
        "x" * 300 + ".txt",
    ]:
        api.create(api.root, name, name.encode())
    api.create(api.root, "dup.txt", b"one")
    api.create(api.root, "dup.txt", b"two")
    api.create(api.root, "Dup.txt", b"three")
    mirror.sync()
    outside = [p for p in tmp_path.rglob("*") if "escape" in p.name or p.name == "passwd"]
    assert all(p.is_relative_to(mirror.root) for p in outside)
    local = mirror.files()
    assert {b"one", b"two", b"three"} <= set(local.values())
    assert all(len(Path(p).name.encode()) <= 255 for p in local)
    assert mirror.sync().returncode == 0


def test_wrong_key_fails_clearly_and_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    remote = sandbox.remote | {"api_key": "wrong-key-0123456789"}
    mirror = write_config(tmp_path, remote)
    result = mirror.sync(check=1)
    assert "401" in result.stderr or "credentials" in result.stderr.lower() or "key" in result.stderr.lower()
    assert "wrong-key-0123456789" not in result.stdout + result.stderr
    assert not mirror.root.exists() or mirror.files() == {}


def test_logs_are_json_lines_without_secrets(sandbox: Sandbox, mirror: Mirror) -> None:
    result = mirror.sync()
    events = mirror.events(result)
    assert {"poll", "action", "pass"} <= {e["event"] for e in events}
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events)
    assert all(e.get("library") == "board" for e in events if e["event"] in ("action", "pass"))
    assert sandbox.remote["api_key"] not in result.stdout + result.stderr
    assert "Signature=" not in result.stdout


def test_deleting_a_folder_spares_its_sibling_that_differs_only_in_case(sandbox: Sandbox, mirror: Mirror) -> None:
    """Local ``Docs`` and ``docs`` are two folders; deleting ``Docs`` deletes ``Docs/a.txt`` remotely and
    nothing of ``docs`` (the store's subtree match once ignored case: ``docs/b.txt`` looked deleted
    locally and was deleted remotely while still on disk).

    ``sync --once`` lists the remote side in full first, and the name mapping keeps sibling names
    distinct case-insensitively, so this pass also gives the remote ``docs`` folder a suffixed local
    name (a rename, same inode); ``tests/sync/test_case_siblings.py`` covers the daemon's watcher
    pass, where ``docs/b.txt`` keeps its name."""
    mirror.sync()
    (mirror.root / "Docs").mkdir()
    (mirror.root / "Docs" / "a.txt").write_bytes(b"upper\n")
    (mirror.root / "docs").mkdir()
    (mirror.root / "docs" / "b.txt").write_bytes(b"lower\n")
    mirror.sync()
    remote = remote_files(sandbox)
    assert remote["Docs/a.txt"] == b"upper\n" and remote["docs/b.txt"] == b"lower\n"
    b_stat = (mirror.root / "docs" / "b.txt").stat()

    (mirror.root / "Docs" / "a.txt").unlink()
    (mirror.root / "Docs").rmdir()
    result = mirror.sync()
    deleted = [e["path"] for e in mirror.events(result) if e["event"] == "action" and e["action"] == "delete_remote"]
    assert deleted == ["Docs/a.txt"]
    remote = remote_files(sandbox)
    assert "Docs/a.txt" not in remote
    assert remote["docs/b.txt"] == b"lower\n"
    [(where, data)] = [(p, d) for p, d in mirror.files().items() if p.endswith("/b.txt")]
    assert data == b"lower\n" and where.startswith("docs")
    after = (mirror.root / where).stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (b_stat.st_ino, b_stat.st_mtime_ns, b_stat.st_size)
    assert b"lower\n" not in mirror.trash().values()
    assert mirror.sync().returncode == 0
    assert remote_files(sandbox)["docs/b.txt"] == b"lower\n"
