"""``UploadSource.open``: the only way an upload reads a local file (``daemon/local/source.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.local.checks import LocalChanged
from daemon.local.source import SMALL_FILE, UploadSource
from daemon.vocab import LocalRow
from tests.upload_sources import write_source


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_planned_file_is_read_from_the_checked_descriptor(tmp_path: Path) -> None:
    source = write_source(tmp_path / "a.txt", b"planned bytes")
    with source.open() as handle:
        os.rename(tmp_path / "a.txt", tmp_path / "moved.txt")  # what the descriptor reads stays put
        (tmp_path / "a.txt").symlink_to(tmp_path / "moved.txt")
        assert handle.read() == b"planned bytes"


def test_planned_takes_the_stat_of_the_local_row(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    st = path.stat()
    row = LocalRow("a.txt", size=3, mtime_ns=st.st_mtime_ns, inode=st.st_ino, digest="d")
    assert UploadSource.planned(path, row) == UploadSource(path, 3, "d", st.st_mtime_ns, st.st_ino)
    with pytest.raises(ValueError):
        UploadSource.planned(path, LocalRow("a.txt", is_dir=True))


def _symlink(path: Path, secret: Path) -> None:
    path.unlink()
    path.symlink_to(secret)


def _hard_link(path: Path, secret: Path) -> None:
    path.unlink()
    os.link(secret, path)


def _fifo(path: Path, secret: Path) -> None:
    path.unlink()
    os.mkfifo(path)  # opening it for reading would block until a writer comes: refused at once


def _rewritten(path: Path, secret: Path) -> None:
    path.write_bytes(b"same inode, other bytes")


def _touched(path: Path, secret: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))


def _gone(path: Path, secret: Path) -> None:
    path.unlink()


def _folder(path: Path, secret: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("swap", [_symlink, _hard_link, _fifo, _rewritten, _touched, _gone, _folder])
def test_anything_but_the_planned_file_is_refused(tmp_path: Path, swap: Callable[[Path, Path], None]) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"private")
    path = tmp_path / "a.txt"
    source = write_source(path, b"planned bytes")
    swap(path, secret)
    before = open_fds()
    with pytest.raises(LocalChanged), source.open():
        pytest.fail("the swapped file was opened")
    assert open_fds() == before  # the refused descriptor is closed


def test_a_small_file_is_read_whole_at_open_and_its_descriptor_closed(tmp_path: Path) -> None:
    """Small files are sent from memory (no worker-thread trip per read and close in the HTTP layer):
    the bytes are the checked version, and no descriptor stays open while the request is sent."""
    small = write_source(tmp_path / "small.txt", b"planned bytes")
    before = open_fds()
    with small.open() as handle:
        assert open_fds() == before
        (tmp_path / "small.txt").write_bytes(b"edited after the open")
        assert handle.read() == b"planned bytes"
    large = write_source(tmp_path / "large.bin", b"x" * (SMALL_FILE + 1))
    with large.open() as handle:
        assert open_fds() == before + 1  # streamed from the checked descriptor
        assert len(handle.read()) == SMALL_FILE + 1
    assert open_fds() == before
