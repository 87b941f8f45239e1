"""Which filesystem a library folder lives on, and whether inotify can see every change there.

inotify reports changes made through the local kernel only. On a network filesystem (NFS, SMB/CIFS)
or most FUSE mounts, a file another machine writes produces no event at all, so the watcher alone
would leave such edits waiting for the hourly rescan. The daemon asks ``statfs(2)`` for the folder's
filesystem type and, on those, runs periodic rescans beside the watcher.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# f_type magic numbers from linux/magic.h and statfs(2) of filesystems whose changes can come from
# elsewhere than this kernel: inotify cannot be trusted on them.
REMOTE_FILESYSTEMS: dict[int, str] = {
    0x6969: "nfs",
    0x517B: "smb",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x65735546: "fuse",  # sshfs, rclone mount, s3fs...: most FUSE mounts are remote, so assumed to be
    0x01021997: "9p",
    0x00C36400: "ceph",
    0x5346414F: "afs",
    0x6B414653: "afs",  # kAFS
    0x73757245: "coda",
    0x7461636F: "ocfs2",
    0x01161970: "gfs2",
    0x564C: "ncp",
    0x47504653: "gpfs",
    0x0BD00BD0: "lustre",
}

_STATFS_BUFFER = 256  # larger than struct statfs on every Linux ABI; f_type is its first field


@dataclass(frozen=True, slots=True)
class FilesystemKind:
    """The answer for one folder: its ``f_type`` and, when inotify misses remote changes there, a
    short name for the log and ``status`` (``nfs``, ``cifs``, ``fuse`` ...)."""

    f_type: int | None
    remote_name: str | None

    @property
    def watcher_sees_everything(self) -> bool:
        return self.remote_name is None


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def statfs_type(path: Path) -> int | None:
    """``f_type`` of the filesystem holding ``path``; None where statfs cannot be called."""
    libc = _libc()
    if libc is None or not hasattr(libc, "statfs"):
        return None
    buffer = ctypes.create_string_buffer(_STATFS_BUFFER)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return None
    # f_type is a C long (__fsword_t) at offset 0; the magic numbers fit 32 bits, read unsigned
    (value,) = struct.unpack_from("@l", buffer.raw)
    return int(value) & 0xFFFFFFFF


def filesystem_kind(path: Path) -> FilesystemKind:
    """The filesystem holding ``path``: a network one (by name) when changes made elsewhere escape inotify."""
    f_type = statfs_type(path)
    return FilesystemKind(f_type, REMOTE_FILESYSTEMS.get(f_type) if f_type is not None else None)
