"""Check, then act (DESIGN rule 2): compare what is on disk now with the row a plan was made on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from daemon.vocab import LocalRow


class LocalChanged(Exception):
    """The local file is not what the plan assumed. Drop the action, re-observe and re-plan."""


def stat_matches(path: Path, expected: LocalRow | None) -> bool:
    """Whether ``path`` (not following a symlink) is what ``expected`` describes.

    None: nothing may exist there (not even a dangling symlink). A folder row: a real folder. A
    file row: a regular file with the same size, mtime_ns and inode.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return expected is None
    except NotADirectoryError:
        return expected is None
    if expected is None:
        return False
    if expected.is_dir:
        return stat.S_ISDIR(st.st_mode)
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == expected.size
        and st.st_mtime_ns == expected.mtime_ns
        and st.st_ino == expected.inode
    )


def row_from_stat(rel: str, st: os.stat_result, digest: str | None) -> LocalRow:
    if stat.S_ISDIR(st.st_mode):
        return LocalRow(path=rel, is_dir=True, size=0, mtime_ns=st.st_mtime_ns, inode=st.st_ino)
    return LocalRow(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, digest=digest)


def require(path: Path, expected: LocalRow | None, rel: str) -> None:
    if not stat_matches(path, expected):
        raise LocalChanged(f"{rel!r} changed on disk since it was planned on")
