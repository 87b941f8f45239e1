"""Small POSIX building blocks shared by the atomic writer, the trash and the checked operations."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range(2)`` from the C library (Python's ``os`` does not offer it)."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    func.restype = ctypes.c_int
    return func


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # start writing the dirty pages of the range; do not wait for them


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes of ``fd`` from ``offset`` to disk now, without waiting for them.

    A large download is fsynced before its rename; left to the kernel, all its pages would still be
    waiting then, and the fsync of a GiB cost a quarter of a second after the last byte arrived.
    Started as each buffer is written, the writing goes on while the next bytes arrive. A hint only:
    where the call is missing or refused, the fsync does it all, as before.
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def fsync_dir(path: Path) -> None:
    """Make a rename/creation inside ``path`` durable. Filesystems that cannot fsync a folder
    (some network mounts) are tolerated: there is nothing better we could do there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rename_noreplace(src: Path, dst: Path, src_stat: os.stat_result | None = None) -> None:
    """Rename ``src`` to ``dst`` but never replace an existing ``dst`` (raise FileExistsError).

    ``os.rename`` silently overwrites, so for files we hard-link (atomic, fails with EEXIST) and then
    unlink the old name. Folders, and filesystems without hard links, fall back to check + rename,
    which leaves only a tiny window in which a file appearing at ``dst`` would be overwritten.
    ``src_stat``: the caller's ``lstat`` of ``src`` when it has one (saves a system call per file).
    """
    st = src_stat if src_stat is not None else os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
        else:
            src.unlink()
            return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    src.rename(dst)


def make_parents(root: Path, path: Path) -> None:
    """Create the missing folders between ``root`` and ``path``'s parent (never above the root)."""
    parent = path.parent
    if parent == root or parent.is_dir():
        return
    parent.mkdir(parents=True, exist_ok=True)
