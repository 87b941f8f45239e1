"""Small checked local operations for the executor (DESIGN rules 1 and 2).

Each one stats the path again just before acting and raises LocalChanged when the disk is no longer
what the plan was made on; none of them overwrites an existing entry or unlinks content (deletes go
to the trash).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

import structlog

from daemon.local.checks import LocalChanged, require, row_from_stat
from daemon.local.fsops import fsync_dir, make_parents, rename_noreplace
from daemon.local.names import safe_local_path
from daemon.local.trash import trash_checked
from daemon.sync.model import LocalRow

log = structlog.get_logger(__name__)


def move_local(root: Path, src: str, dst: str, expected: LocalRow) -> LocalRow:
    """Rename library path ``src`` (which must still match ``expected``) to ``dst``, creating missing
    parent folders. An existing ``dst`` is never replaced: LocalChanged. Returns the row at ``dst``
    (the digest carries over: a rename does not change content)."""
    src_path = safe_local_path(root, src)
    dst_path = safe_local_path(root, dst)
    require(src_path, expected, src)
    if os.path.lexists(dst_path):
        raise LocalChanged(f"cannot move {src!r}: {dst!r} already exists")
    make_parents(root, dst_path)
    try:
        rename_noreplace(src_path, dst_path)
    except FileExistsError:
        raise LocalChanged(f"cannot move {src!r}: {dst!r} appeared meanwhile") from None
    fsync_dir(dst_path.parent)
    if dst_path.parent != src_path.parent:
        fsync_dir(src_path.parent)
    log.info("local_moved", src=src, path=dst)
    if expected.is_dir:
        return row_from_stat(dst, os.lstat(dst_path), None)
    # A rename keeps size, mtime and inode: the row is the checked one at its new path. Taking a fresh
    # stat here could pair an edit made during the move with the old digest, and the stat fast path would
    # then never look at the file again (found by the simulation: a local edit that was never pushed).
    return dataclasses.replace(expected, path=dst)


def rename_conflict_copy(root: Path, rel: str, new_rel: str, expected: LocalRow) -> LocalRow:
    """Move the local version at ``rel`` aside to ``new_rel`` (a conflict copy) so the remote version
    can take the name; same checks as ``move_local``."""
    row = move_local(root, rel, new_rel, expected)
    log.info("conflict_copy_made", path=rel, copy=new_rel)
    return row


def make_dir(root: Path, rel: str) -> LocalRow:
    """Create the folder ``rel`` (and missing parents). An existing folder is fine; a file or symlink
    in its place raises LocalChanged."""
    path = safe_local_path(root, rel)
    make_parents(root, path)
    try:
        path.mkdir()
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise LocalChanged(f"{rel!r} exists and is not a folder")
    fsync_dir(path.parent)
    return row_from_stat(rel, st, None)


def remove_empty_dir(root: Path, rel: str) -> bool:
    """Remove the folder ``rel`` only if it is empty (hidden and ignored entries count as content).
    Returns True when it is gone afterwards, False when it still holds something. A file or symlink
    in its place raises LocalChanged."""
    path = safe_local_path(root, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(st.st_mode):
        raise LocalChanged(f"{rel!r} is no longer a folder")
    try:
        path.rmdir()
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            log.info("local_dir_not_empty", path=rel)
            return False
        raise
    fsync_dir(path.parent)
    log.info("local_dir_removed", path=rel)
    return True


def trash_file(root: Path, rel: str, expected: LocalRow) -> Path:
    """Check that ``rel`` is still ``expected``, then move it into the trash; returns its trash path."""
    return trash_checked(root, rel, expected)
