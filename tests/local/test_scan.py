from __future__ import annotations

import hashlib
import os
import sys
import unicodedata
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from daemon.local import scan as scan_mod
from daemon.local.ignore import IgnoreMatcher
from daemon.local.marker import ensure_marker
from daemon.local.names import name_of, parent_of
from daemon.local.scan import (
    FolderPrints,
    KnownRows,
    LocalChange,
    Unsyncable,
    Vanished,
    md5_file,
    observe_paths,
    scan_tree,
)
from daemon.vocab import LocalRow
from daemon.vocab.fingerprint import FolderRow, entry_fingerprint
from tests.local.memory_known import MemoryKnown

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=["per_folder", "printed", "printed_unknown"])
def known_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scan of this module runs three times: asking the known rows one folder at a time (what a
    watcher pass does), and as a full rescan does, from each folder's fingerprint sum (``FolderPrints``),
    with the fingerprints known or not known yet (rows of a store of schema version 3)."""
    monkeypatch.setattr(sys.modules[__name__], "_MODE", request.param)
    return str(request.param)


_MODE = "per_folder"


def _printed(known: MemoryKnown, *, unknown: bool = False) -> FolderPrints:
    """What ``StateStore.local_folder_prints`` and ``local_folder`` would give for ``known``'s rows."""
    rows: dict[str, list[FolderRow]] = {}
    for path, row in known.rows.items():
        fp = None if unknown else entry_fingerprint(name_of(path), row.is_dir, row.size, row.mtime_ns, row.inode)
        rows.setdefault(parent_of(path), []).append((path, int(row.is_dir), row.size, row.mtime_ns, row.inode, fp))
    prints: dict[str, tuple[int, int] | None] = {
        parent: None if unknown else (len(found), sum(r[5] or 0 for r in found)) for parent, found in rows.items()
    }

    async def read(parent: str) -> list[FolderRow]:
        return list(rows.get(parent, []))

    async def fill(filled: list[tuple[str, int, int, int, int, int]]) -> None:
        for path, *_stat, fp in filled:
            assert fp == entry_fingerprint(name_of(path), bool(_stat[0]), *_stat[1:])

    return FolderPrints(prints, read, fill)


async def _scan(root: Path, known: MemoryKnown, ignore: IgnoreMatcher | None = None) -> list[LocalChange]:
    out: list[LocalChange] = []
    rows: KnownRows = known if _MODE == "per_folder" else _printed(known, unknown=_MODE == "printed_unknown")
    async for batch in scan_tree(root, ignore or IgnoreMatcher(), rows):
        assert batch
        out.extend(batch)
        known.apply(batch)
    return out


def _rows(changes: list[LocalChange]) -> dict[str, LocalRow]:
    return {c.path: c for c in changes if isinstance(c, LocalRow)}


def _vanished(changes: list[LocalChange]) -> set[str]:
    return {c.path for c in changes if isinstance(c, Vanished)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "lib"
    r.mkdir()
    ensure_marker(r)
    (r / "a.txt").write_bytes(b"hello")
    (r / "sub" / "deep").mkdir(parents=True)
    (r / "sub" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (r / "sub" / "deep" / "c.txt").write_bytes(b"")
    return r


@pytest.fixture
def md5_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = scan_mod.md5_file

    def counting(path: str | Path) -> tuple[int, str]:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(scan_mod, "md5_file", counting)
    return calls


def test_md5_file_streams_correctly(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    assert md5_file(tmp_path / "f") == (len(data), hashlib.md5(data).hexdigest())
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(OSError):
        md5_file(tmp_path / "link")


async def test_new_then_unchanged_then_changed(root: Path, md5_calls: list[Path]) -> None:
    known = MemoryKnown()
    first = await _scan(root, known)
    rows = _rows(first)
    assert set(rows) == {"a.txt", "sub", "sub/b.bin", "sub/deep", "sub/deep/c.txt"}  # .libmirror ignored
    assert rows["a.txt"].digest == hashlib.md5(b"hello").hexdigest()
    assert rows["a.txt"].size == 5
    assert rows["sub"].is_dir and rows["sub"].digest is None
    assert rows["sub/b.bin"].digest == hashlib.md5((root / "sub/b.bin").read_bytes()).hexdigest()
    assert rows["sub/deep/c.txt"].digest == hashlib.md5(b"").hexdigest()
    assert len(md5_calls) == 3

    md5_calls.clear()
    assert await _scan(root, known) == []
    assert md5_calls == []  # stat fast path: nothing re-hashed

    (root / "a.txt").write_bytes(b"hello world")
    changed = await _scan(root, known)
    assert [c.path for c in changed] == ["a.txt"]
    assert _rows(changed)["a.txt"].digest == hashlib.md5(b"hello world").hexdigest()
    assert md5_calls == [root / "a.txt"]


async def test_vanished_file_and_folder(root: Path) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    (root / "a.txt").unlink()
    (root / "sub/deep/c.txt").unlink()
    (root / "sub/deep").rmdir()
    changes = await _scan(root, known)
    assert changes == [Vanished("a.txt", False), Vanished("sub/deep", True)]
    assert set(known.rows) == {"sub", "sub/b.bin"}


async def test_kind_changes_are_order_independent(root: Path) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    (root / "a.txt").unlink()
    (root / "a.txt").mkdir()
    changes = await _scan(root, known)
    assert len(changes) == 1 and isinstance(changes[0], LocalRow) and changes[0].is_dir
    assert known.rows["a.txt"].is_dir
    # folder -> file: the new row plus its former children vanished, never the path itself
    (root / "sub/deep/c.txt").unlink()
    (root / "sub/deep").rmdir()
    (root / "sub/deep").write_text("now a file")
    changes = await _scan(root, known)
    assert _vanished(changes) == {"sub/deep/c.txt"}
    assert set(_rows(changes)) == {"sub/deep"} and not known.rows["sub/deep"].is_dir
    assert "sub/deep/c.txt" not in known.rows


async def test_symlinks_skipped_and_warned_once(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    (root / "dirlink").symlink_to(outside)
    (root / "filelink").symlink_to(root / "a.txt")
    known = MemoryKnown()
    with capture_logs() as logs:
        changes = await _scan(root, known)
        await _scan(root, known)
    assert not any("link" in c.path for c in changes)
    warned = sorted(e["path"] for e in logs if e["event"] == "symlink_skipped")
    assert warned == ["dirlink", "filelink"]


async def test_fifo_and_ignored_entries_skipped(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "doc.txt.swp").write_text("swap")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("obj")
    known = MemoryKnown()
    changes = await _scan(root, known, IgnoreMatcher(["build/"]))
    paths = {c.path for c in changes}
    assert "pipe" not in paths and "doc.txt.swp" not in paths
    assert not any(p.startswith("build") for p in paths)
    # a known path that becomes ignored is reported vanished
    again = await _scan(root, known, IgnoreMatcher(["build/", "*.bin"]))
    assert again == [Vanished("sub/b.bin", False)]


async def test_unreadable_file_skipped_not_vanished(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    target = root / "a.txt"
    target.write_bytes(b"changed")
    if os.geteuid() == 0:  # root reads anything: simulate EACCES at the one place it would surface
        real = scan_mod.md5_file

        def refuse(path: str | Path) -> tuple[int, str]:
            if Path(path) == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(scan_mod, "md5_file", refuse)
    else:
        target.chmod(0)
    with capture_logs() as logs:
        assert await _scan(root, known) == []
        assert await _scan(root, known) == []
    assert [e["event"] for e in logs].count("file_unreadable") == 1
    assert "a.txt" in known.rows  # not reported vanished


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
async def test_unreadable_folder_keeps_children(root: Path) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    (root / "sub").chmod(0)
    try:
        assert await _scan(root, known) == []
        assert "sub/b.bin" in known.rows
    finally:
        (root / "sub").chmod(0o755)


async def test_unstable_file_skipped(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = scan_mod.md5_file
    target = root / "a.txt"

    def growing(path: str | Path) -> tuple[int, str]:
        result = real(path)
        if Path(path) == target:
            with target.open("ab") as fh:
                fh.write(b"more")  # someone keeps writing while we hash
        return result

    monkeypatch.setattr(scan_mod, "md5_file", growing)
    known = MemoryKnown()
    with capture_logs() as logs:
        changes = await _scan(root, known)
    assert "a.txt" not in {c.path for c in changes}
    assert any(e["event"] == "file_unstable" and e["path"] == "a.txt" for e in logs)


async def test_nfd_names_renamed_to_nfc(root: Path) -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    nfc = unicodedata.normalize("NFC", "café.txt")
    (root / nfd).write_text("x")
    twin_nfd = unicodedata.normalize("NFD", "naïve.txt")
    (root / twin_nfd).write_text("d")
    (root / unicodedata.normalize("NFC", "naïve.txt")).write_text("c")
    known = MemoryKnown()
    with capture_logs() as logs:
        changes = await _scan(root, known)
    paths = {c.path for c in changes}
    assert nfc in paths and nfd not in paths
    assert (root / nfc).exists() and not (root / nfd).exists()
    assert twin_nfd not in paths and "naïve.txt" in paths
    assert (root / twin_nfd).exists()  # left alone: its NFC twin exists
    events = {e["event"] for e in logs}
    assert {"name_normalized", "name_not_nfc_skipped"} <= events


async def test_start_subtree_and_limiter(root: Path) -> None:
    known = MemoryKnown()
    out: list[LocalChange] = []
    async for batch in scan_tree(root, IgnoreMatcher(), known, start="sub", hash_limiter=anyio.CapacityLimiter(1)):
        out.extend(batch)
    assert {c.path for c in out} == {"sub/b.bin", "sub/deep", "sub/deep/c.txt"}


async def test_many_small_files_hashed_in_batches(tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"f{i:03}.txt").write_text(str(i))
    known = MemoryKnown()
    changes = await _scan(tmp_path, known)
    rows = _rows(changes)
    assert len(rows) == 200
    assert rows["f007.txt"].digest == hashlib.md5(b"7").hexdigest()


async def test_observe_paths(root: Path) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    (root / "new" / "inner").mkdir(parents=True)
    (root / "new" / "inner" / "n.txt").write_text("n")
    (root / "a.txt").unlink()
    (root / "x.swp").write_text("ignored")
    (root / "sub" / "deep" / "more.txt").write_text("m")
    changes = await observe_paths(
        root,
        ["new/inner/n.txt", "a.txt", "x.swp", "../escape", "sub/deep", "sub/b.bin", "gone/never"],
        IgnoreMatcher(),
        known,
    )
    rows = _rows(changes)
    assert set(rows) == {"new", "new/inner", "new/inner/n.txt", "sub/deep/more.txt"}
    assert rows["new"].is_dir and rows["new/inner"].is_dir
    assert _vanished(changes) == {"a.txt"}
    known.apply(changes)
    # a folder path is scanned recursively
    (root / "new" / "inner" / "n2.txt").write_text("n2")
    again = await observe_paths(root, ["new"], IgnoreMatcher(), known)
    assert [c.path for c in again] == ["new/inner/n2.txt"]


async def test_observe_nfd_path_is_normalized(root: Path) -> None:
    nfd = unicodedata.normalize("NFD", "résumé.txt")
    (root / nfd).write_text("cv")
    known = MemoryKnown()
    changes = await observe_paths(root, [nfd], IgnoreMatcher(), known)
    assert [c.path for c in changes] == [unicodedata.normalize("NFC", nfd)]
    known.apply(changes)
    # the watcher then reports the old NFD name as gone: the NFC file must not read as vanished
    assert await observe_paths(root, [nfd], IgnoreMatcher(), known) == []


BAD = b"\x19\x81\xfe"  # not UTF-8 (issue 13 §1); 0x19 is a control character as well


def _plant_bad_names(root: Path) -> None:
    raw = os.fsencode(root)
    with open(raw + b"/" + BAD, "wb") as f:
        f.write(b"file")
    os.mkdir(raw + b"/dir " + BAD)
    with open(raw + b"/dir " + BAD + b"/inside.txt", "wb") as f:
        f.write(b"under a broken folder")
    with open(raw + b"/sub/" + BAD + b".txt", "wb") as f:
        f.write(b"in a good folder")
    with open(raw + b"/sub/" + BAD + b".swp", "wb") as f:
        f.write(b"ignored, whatever its name")


# shown escaped: the bytes that are not UTF-8 and the control character, so nothing raw reaches a terminal
SHOWN = {"\\x19\\x81\\xfe", "dir \\x19\\x81\\xfe", "sub/\\x19\\x81\\xfe.txt"}


def _all_utf8(changes: list[LocalChange]) -> bool:
    try:
        for c in changes:
            if not isinstance(c, Unsyncable):
                c.path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(changes: list[LocalChange]) -> list[str]:
    return sorted(c.shown for c in changes if isinstance(c, Unsyncable))


async def test_names_not_utf8_are_skipped_and_shown_printable(root: Path) -> None:
    _plant_bad_names(root)
    known = MemoryKnown()
    with capture_logs() as logs:
        out = await _scan(root, known)
    # nothing with a broken name (or under a broken folder) is reported, the rest is
    assert _all_utf8(out)
    assert set(_rows(out)) == {"a.txt", "sub", "sub/b.bin", "sub/deep", "sub/deep/c.txt"}
    assert _shown(out) == sorted(SHOWN)
    warned = [e for e in logs if e["event"] == "name_not_utf8"]
    assert sorted(e["path"] for e in warned) == sorted(SHOWN)
    assert all(e["path"].isprintable() for e in warned)


async def test_observe_paths_reports_a_broken_name_once_by_its_own_path(root: Path) -> None:
    known = MemoryKnown()
    await _scan(root, known)
    _plant_bad_names(root)
    (root / "new.txt").write_text("n")
    # what a watcher hands over: the broken names, and a file under the broken folder
    watcher = [
        os.fsdecode(p)
        for p in (BAD, b"dir " + BAD + b"/inside.txt", b"dir " + BAD, b"sub/" + BAD + b".txt", b"sub/" + BAD + b".swp")
    ]
    with capture_logs() as logs:
        changes = await observe_paths(root, [*watcher, "new.txt"], IgnoreMatcher(), known)
    assert _all_utf8(changes)
    assert set(_rows(changes)) == {"new.txt"}
    # the file under the broken folder is not a broken name of its own: the folder is (one entry, one warning)
    assert _shown(changes) == sorted(SHOWN)
    assert sorted(e["path"] for e in logs if e["event"] == "name_not_utf8") == sorted(SHOWN)
    # a broken name the watcher reports once it is gone (renamed to a good name) is not listed
    os.rename(os.fsencode(root) + b"/" + BAD, os.fsencode(root) + b"/fixed.txt")
    changes = await observe_paths(root, [os.fsdecode(BAD), "fixed.txt"], IgnoreMatcher(), known)
    assert set(_rows(changes)) == {"fixed.txt"} and _shown(changes) == []
