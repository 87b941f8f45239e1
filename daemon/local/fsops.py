"""Small POSIX building blocks shared by the atomic writer, the trash and the checked operations."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


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


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` but never replace an existing ``dst`` (raise FileExistsError).

    ``os.rename`` silently overwrites, so for files we hard-link (atomic, fails with EEXIST) and then
    unlink the old name. Folders, and filesystems without hard links, fall back to check + rename,
    which leaves only a tiny window in which a file appearing at ``dst`` would be overwritten.
    """
    st = os.lstat(src)
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
