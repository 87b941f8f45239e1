"""Which filesystem holds a library folder (statfs), and which ones inotify cannot be trusted on."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.local import filesystems
from daemon.local.filesystems import REMOTE_FILESYSTEMS, filesystem_kind, statfs_type

PROC_SUPER_MAGIC, TMPFS_MAGIC = 0x9FA0, 0x01021994


def test_local_filesystems_of_this_machine_are_not_network_ones(tmp_path: Path) -> None:
    assert statfs_type(Path("/proc")) == PROC_SUPER_MAGIC
    assert filesystem_kind(Path("/proc")).remote_name is None
    if Path("/dev/shm").is_dir() and statfs_type(Path("/dev/shm")) == TMPFS_MAGIC:
        assert filesystem_kind(Path("/dev/shm")).watcher_sees_everything
    kind = filesystem_kind(tmp_path)
    assert kind.f_type is not None and kind.remote_name is None  # ext4, xfs, overlay, tmpfs...


def test_a_missing_folder_has_no_answer(tmp_path: Path) -> None:
    assert statfs_type(tmp_path / "gone") is None
    assert filesystem_kind(tmp_path / "gone").watcher_sees_everything


@pytest.mark.parametrize(
    ("magic", "name"), [(0x6969, "nfs"), (0xFF534D42, "cifs"), (0xFE534D42, "smb2"), (0x65735546, "fuse")]
)
def test_network_filesystems_are_named(monkeypatch: pytest.MonkeyPatch, magic: int, name: str) -> None:
    monkeypatch.setattr(filesystems, "statfs_type", lambda _path: magic)
    kind = filesystem_kind(Path("/srv/share"))
    assert (kind.f_type, kind.remote_name, kind.watcher_sees_everything) == (magic, name, False)
    assert REMOTE_FILESYSTEMS[magic] == name
