from __future__ import annotations

import calendar
import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from daemon.local.checks import LocalChanged, row_from_stat
from daemon.local.ignore import IgnoreMatcher
from daemon.local.marker import MARKER, MarkerMissing, ensure_marker, marker_present
from daemon.local.ops import (
    FolderKept,
    make_dir,
    move_local,
    remove_dir,
    remove_empty_dir,
    rename_conflict_copy,
    trash_file,
)
from daemon.local.trash import move_to_trash, purge_trash
from daemon.vocab import LocalRow


def _row(root: Path, rel: str) -> LocalRow:
    return row_from_stat(rel, os.lstat(root / rel), "d" * 32)


def test_marker(tmp_path: Path) -> None:
    assert not marker_present(tmp_path)
    ensure_marker(tmp_path)
    ensure_marker(tmp_path)  # idempotent
    assert marker_present(tmp_path)
    for sub in ("", "tmp", "trash"):
        assert stat.S_IMODE(Path(tmp_path / MARKER / sub).stat().st_mode) == 0o700
    assert "do not delete" in (tmp_path / MARKER / "README.txt").read_text().lower()
    with pytest.raises(FileNotFoundError):
        ensure_marker(tmp_path / "not-mounted")


def test_move_to_trash_keeps_path_mtime_and_numbers_duplicates(root: Path) -> None:
    (root / "d").mkdir()
    for n in range(3):
        (root / "d/f.txt").write_text(f"v{n}")
        os.utime(root / "d/f.txt", ns=(10**18, 10**18 + n))
        dst = move_to_trash(root, "d/f.txt", today=date(2024, 5, 1))
        assert dst.read_text() == f"v{n}"
        assert Path(dst).stat().st_mtime_ns == 10**18 + n
    day = root / MARKER / "trash" / "2024-05-01" / "d"
    assert sorted([p.name for p in day.iterdir()]) == ["f (2).txt", "f (3).txt", "f.txt"]
    assert stat.S_IMODE(Path(day.parent).stat().st_mode) == 0o700


def test_move_to_trash_uses_utc_today(root: Path) -> None:
    (root / "x").write_text("x")
    dst = move_to_trash(root, "x")
    assert dst.parent.name == datetime.now(UTC).date().isoformat()


def test_trash_requires_marker(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(MarkerMissing):
        move_to_trash(tmp_path, "x")
    assert (tmp_path / "x").exists()


def test_purge_trash(root: Path) -> None:
    trash = root / MARKER / "trash"
    for d in ("2024-01-01", "2024-01-30", "2024-01-31", "notes"):
        (trash / d).mkdir()
        (trash / d / "f").write_text("x")
    now = calendar.timegm((2024, 3, 1, 12, 0, 0))  # 30 days after 2024-01-31
    assert purge_trash(root, 30, float(now)) == 2
    assert sorted([p.name for p in trash.iterdir()]) == ["2024-01-31", "notes"]
    assert purge_trash(root / "missing", 30, float(now)) == 0


def test_trash_file_checks_first(root: Path) -> None:
    (root / "f.txt").write_text("v1")
    row = _row(root, "f.txt")
    (root / "f.txt").write_text("v2 is longer")
    with pytest.raises(LocalChanged):
        trash_file(root, "f.txt", row)
    assert (root / "f.txt").read_text() == "v2 is longer"
    dst = trash_file(root, "f.txt", _row(root, "f.txt"))
    assert dst.read_text() == "v2 is longer" and not (root / "f.txt").exists()


def test_move_local(root: Path) -> None:
    (root / "a.txt").write_text("a")
    row = _row(root, "a.txt")
    moved = move_local(root, "a.txt", "x/y/b.txt", row)
    assert (root / "x/y/b.txt").read_text() == "a" and not (root / "a.txt").exists()
    assert moved.path == "x/y/b.txt" and moved.inode == row.inode and moved.digest == row.digest
    (root / "c.txt").write_text("c")
    with pytest.raises(LocalChanged):  # never overwrites
        move_local(root, "c.txt", "x/y/b.txt", _row(root, "c.txt"))
    with pytest.raises(LocalChanged):  # source no longer as planned
        move_local(root, "c.txt", "d.txt", row)
    assert (root / "c.txt").read_text() == "c"
    copy = rename_conflict_copy(root, "c.txt", "c (conflict).txt", _row(root, "c.txt"))
    assert copy.path == "c (conflict).txt" and (root / "c (conflict).txt").exists()


def test_move_local_folder(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir/f").write_text("f")
    moved = move_local(root, "dir", "renamed", LocalRow(path="dir", is_dir=True))
    assert moved.is_dir and (root / "renamed/f").read_text() == "f"


def test_make_and_remove_dir(root: Path) -> None:
    row = make_dir(root, "p/q")
    assert row.is_dir and (root / "p/q").is_dir()
    assert make_dir(root, "p/q").inode == row.inode
    (root / "file").write_text("x")
    with pytest.raises(LocalChanged):
        make_dir(root, "file")
    (root / "p/q/.hidden").write_text("h")
    assert remove_empty_dir(root, "p/q") is False
    (root / "p/q/.hidden").unlink()
    assert remove_empty_dir(root, "p/q") is True
    assert not (root / "p/q").exists()
    assert remove_empty_dir(root, "p/q") is True
    with pytest.raises(LocalChanged):
        remove_empty_dir(root, "file")


def test_trash_names_fit_and_a_file_in_the_way_is_no_dead_end(tmp_path: Path) -> None:
    """Numbered trash names obey the length limit; a file trashed earlier under the name a folder has
    now (``a.txt``, later a folder ``a.txt/``) does not block trashing what is inside that folder."""
    from daemon.local.marker import ensure_marker
    from daemon.local.names import MAX_NAME_BYTES
    from daemon.local.trash import move_to_trash

    root = tmp_path / "root"
    root.mkdir()
    ensure_marker(root)
    long = "y" * 251 + ".txt"
    for _ in range(2):
        (root / long).write_bytes(b"v")
        kept = move_to_trash(root, long)
        assert len(kept.name.encode()) <= MAX_NAME_BYTES
    (root / "a.txt").write_bytes(b"a file first")
    move_to_trash(root, "a.txt")
    (root / "a.txt").mkdir()
    (root / "a.txt" / "inner.md").write_bytes(b"then a folder of that name")
    kept = move_to_trash(root, "a.txt/inner.md")
    assert kept.read_bytes() == b"then a folder of that name"


def test_remove_dir_trashes_a_folder_of_ignored_entries_and_refuses_one_that_keeps_something(root: Path) -> None:
    ignore = IgnoreMatcher()
    (root / "d" / "inner").mkdir(parents=True)
    (root / "d" / ".DS_Store").write_bytes(b"finder")
    (root / "d" / "inner" / "~$report.docx").write_bytes(b"office lock")
    assert remove_dir(root, "d", ignore) is True
    assert not (root / "d").exists()
    trashed = sorted(p.name for p in (root / MARKER / "trash").rglob("*") if p.is_file())
    assert trashed == [".DS_Store", "~$report.docx"]  # kept in the trash, not unlinked

    (root / "e" / "sub").mkdir(parents=True)
    (root / "e" / "sub" / "new.txt").write_text("a new file the scanner reports")
    assert remove_dir(root, "e", ignore) is False  # re-planned: the planner will see it
    assert (root / "e" / "sub" / "new.txt").exists()

    (root / "f").mkdir()
    (root / "f" / ".DS_Store").write_bytes(b"finder")
    (root / "f" / "link").symlink_to("/etc/hostname")
    with pytest.raises(FolderKept, match="'f/link', which is never synced"):
        remove_dir(root, "f", ignore)
    assert (root / "f" / "link").is_symlink() and (root / "f" / ".DS_Store").exists()  # nothing moved

    os.mkdir(os.fsencode(root) + b"/g")
    with open(os.fsencode(root) + b"/g/\x81.txt", "wb") as fh:
        fh.write(b"a name that is not UTF-8")
    with pytest.raises(FolderKept, match=r"'g/\\x81.txt'"):
        remove_dir(root, "g", ignore)
    assert remove_dir(root, "gone", ignore) is True
