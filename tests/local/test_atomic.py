from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from daemon.local.atomic import LocalChanged, cleanup_tmp, open_download, stat_matches
from daemon.local.checks import row_from_stat
from daemon.local.marker import MarkerMissing
from daemon.vocab import DigestMismatch, LocalRow

pytestmark = pytest.mark.anyio

DATA = b"new content " * 10_000


def _tmp_files(root: Path) -> list[str]:
    return [p.name for p in (root / ".libmirror" / "tmp").iterdir()]


def _trash_files(root: Path) -> list[Path]:
    return [p for p in (root / ".libmirror" / "trash").rglob("*") if p.is_file()]


def _row(root: Path, rel: str) -> LocalRow:
    p = root / rel
    return row_from_stat(rel, os.lstat(p), hashlib.md5(p.read_bytes()).hexdigest())


async def _download(
    root: Path, rel: str, replace: LocalRow | None, data: bytes = DATA, md5: str | None = None
) -> LocalRow:
    async with open_download(root, rel) as target:
        for i in range(0, len(data), 4096):
            await target.write(data[i : i + 4096])
        return await target.commit(len(data), md5 or hashlib.md5(data).hexdigest(), replace)


async def test_commit_new_file_creates_parents(root: Path) -> None:
    row = await _download(root, "a/b/new.bin", None)
    assert (root / "a/b/new.bin").read_bytes() == DATA
    assert row.digest == hashlib.md5(DATA).hexdigest() and row.size == len(DATA)
    assert stat_matches(root / "a/b/new.bin", row)
    assert _tmp_files(root) == []
    mode = stat.S_IMODE(Path(root / "a/b/new.bin").stat().st_mode)
    assert mode & 0o044  # not left at mkstemp's private 0600 (the umask decides)


async def test_digest_and_size_mismatch_discard_tmp(root: Path) -> None:
    with pytest.raises(DigestMismatch):
        await _download(root, "x.bin", None, md5="0" * 32)
    with pytest.raises(DigestMismatch):
        async with open_download(root, "x.bin") as target:
            await target.write(b"short")
            await target.commit(10, None, None)
    assert not (root / "x.bin").exists()
    assert _tmp_files(root) == []


async def test_replace_moves_old_version_to_trash(root: Path) -> None:
    (root / "doc.txt").write_bytes(b"old version")
    Path(root / "doc.txt").chmod(0o640)
    old = _row(root, "doc.txt")
    row = await _download(root, "doc.txt", old)
    assert (root / "doc.txt").read_bytes() == DATA
    assert row.inode != old.inode
    trashed = _trash_files(root)
    assert len(trashed) == 1 and trashed[0].read_bytes() == b"old version"
    assert trashed[0].name == "doc.txt"
    assert stat.S_IMODE(Path(root / "doc.txt").stat().st_mode) == 0o640  # mode of the replaced file kept


async def test_local_changed_when_destination_moved_on(root: Path) -> None:
    (root / "doc.txt").write_bytes(b"old version")
    old = _row(root, "doc.txt")
    (root / "doc.txt").write_bytes(b"user edited this meanwhile")
    with pytest.raises(LocalChanged):
        await _download(root, "doc.txt", old)
    assert (root / "doc.txt").read_bytes() == b"user edited this meanwhile"
    assert _trash_files(root) == [] and _tmp_files(root) == []


async def test_local_changed_when_new_file_appeared(root: Path) -> None:
    (root / "doc.txt").write_bytes(b"appeared")
    with pytest.raises(LocalChanged):
        await _download(root, "doc.txt", None)
    assert (root / "doc.txt").read_bytes() == b"appeared"
    assert _tmp_files(root) == []


async def test_exit_without_commit_and_unsafe_paths(root: Path) -> None:
    async with open_download(root, "a.txt") as target:
        await target.write(b"partial" * 200_000)  # past the in-memory buffer: written in the background
        await target.write(b"partial" * 200_000)  # another buffer: waits until the first one is on disk
        assert target.tmp_path is not None and target.tmp_path.exists()
    assert _tmp_files(root) == []
    with pytest.raises(ValueError):
        open_download(root, "../escape.txt")


async def test_refuses_without_marker(tmp_path: Path) -> None:
    with pytest.raises(MarkerMissing):
        open_download(tmp_path, "a.txt")
    assert not (tmp_path / ".libmirror").exists()


async def test_a_removed_tmp_folder_is_made_again_private(root: Path) -> None:
    (root / ".libmirror/tmp").rmdir()
    await _download(root, "a.txt", None)
    assert (root / "a.txt").read_bytes() == DATA
    assert stat.S_IMODE((root / ".libmirror/tmp").stat().st_mode) == 0o700


async def test_a_marker_gone_after_the_check_refuses_the_temp_file(root: Path) -> None:
    target = open_download(root, "a.txt")  # the marker is checked here
    (root / ".libmirror/tmp").rmdir()
    (root / ".libmirror/trash").rmdir()
    (root / ".libmirror/README.txt").unlink()
    (root / ".libmirror").rmdir()  # the disk unmounted meanwhile
    await target.write(b"x")
    with pytest.raises(MarkerMissing):
        await target.commit(1, None, None)
    assert not (root / ".libmirror").exists() and not (root / "a.txt").exists()


async def test_a_leftover_temp_name_is_never_reused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    from daemon.local import atomic

    monkeypatch.setattr(atomic, "_TMP_COUNTER", itertools.count())
    taken = root / ".libmirror/tmp" / f"dl-{atomic._TMP_TAG}-0.part"
    taken.write_bytes(b"left by a crash")
    await _download(root, "a.txt", None)
    assert taken.read_bytes() == b"left by a crash"  # O_EXCL: the next number was used
    assert (root / "a.txt").read_bytes() == DATA


async def test_a_new_file_gets_the_umask_mode_without_a_chmod(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chmods: list[object] = []
    real = Path.chmod
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kw: (chmods.append(self), real(self, mode, **kw))[1])
    await _download(root, "a.txt", None)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((root / "a.txt").stat().st_mode) == 0o666 & ~mask
    assert chmods == []


def test_stat_matches(root: Path) -> None:
    p = root / "f"
    assert stat_matches(p, None)
    p.write_bytes(b"1")
    row = _row(root, "f")
    assert stat_matches(p, row) and not stat_matches(p, None)
    assert not stat_matches(p, LocalRow(path="f", is_dir=True))
    os.utime(p, ns=(1, 1))
    assert not stat_matches(p, row)
    assert stat_matches(root, LocalRow(path="", is_dir=True))


def test_cleanup_tmp(root: Path) -> None:
    (root / ".libmirror/tmp/dl-crash.part").write_bytes(b"half")
    assert cleanup_tmp(root) == 1
    assert _tmp_files(root) == []


async def test_large_download_written_while_the_next_buffer_fills(root: Path) -> None:
    """Several MiB in uneven chunks: each full buffer goes to a writer thread while the next one
    fills, hashed by another thread meanwhile; what lands on disk and its digest are still the bytes
    in the order they came."""
    data = os.urandom(5 * 1024 * 1024 + 12_345)
    async with open_download(root, "big.bin") as target:
        at = 0
        for size in [1, 300_000, 1_048_576, 7, 2_000_000] * 10:
            if at >= len(data):
                break
            await target.write(data[at : at + size])
            at += size
        await target.write(data[at:])
        row = await target.commit(len(data), hashlib.md5(data).hexdigest(), None)
    assert (root / "big.bin").read_bytes() == data
    assert row.digest == hashlib.md5(data).hexdigest() and row.size == len(data)
    assert _tmp_files(root) == []


async def test_a_failed_background_write_fails_the_download(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails in the writer thread (a full disk: nothing here can fill one) is raised by
    the download's next write, and leaving the target removes its temp file."""
    from daemon.local import atomic

    real = atomic._TempFile.append

    def full_disk(self: atomic._TempFile, chunks: list[bytes]) -> None:
        real(self, chunks[:1])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic._TempFile, "append", full_disk)
    with pytest.raises(OSError, match="No space left"):
        async with open_download(root, "big.bin") as target:
            for _ in range(3):
                await target.write(b"x" * 1_100_000)
    assert _tmp_files(root) == []
    assert not (root / "big.bin").exists()
