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
from daemon.local.ignore import IgnoreMatcher
from daemon.local.names import safe_local_path
from daemon.local.scan import shown_path
from daemon.local.trash import move_to_trash, trash_checked
from daemon.vocab import LocalRow

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


class FolderKept(OSError):
    """A folder to remove holds an entry that is never synced and is not ignored (a symlink, a special
    file, a name that is not UTF-8, an unreadable folder): no pass will ever empty it."""


def remove_dir(root: Path, rel: str, ignore: IgnoreMatcher) -> bool:
    """Remove the folder ``rel`` (a synced folder whose removal was planned) once it holds nothing that
    is synced. Empty: removed. Holding only entries the library ignores (Finder's .DS_Store, office lock
    files...): moved to the trash whole, with them, so they are kept for ``trash_days`` (rule 1); the
    scanner never reports them, so waiting for the folder to empty would re-plan its removal for ever.

    Returns False when a new entry the scanner does report keeps it (re-plan: the planner sees it then).
    Raises FolderKept when what keeps it is never synced, and LocalChanged when a file or symlink is in
    its place or something arrived while it was moved to the trash (put back)."""
    if remove_empty_dir(root, rel):
        return True
    path = safe_local_path(root, rel)
    kept = _kept_by(path, rel, ignore)
    if kept is not None:
        kept_rel, synced_kind = kept
        if synced_kind:
            return False
        raise FolderKept(
            errno.ENOTEMPTY,
            f"the local folder '{shown_path(rel)}' cannot be removed: it holds '{shown_path(kept_rel)}', which is "
            "never synced (a symlink, a special file, an unreadable folder or a name that is not UTF-8); move "
            "that out of the folder and the folder follows",
        )
    dst = move_to_trash(root, rel)
    if _kept_by(dst, rel, ignore) is not None:  # something arrived between the look and the move
        try:
            rename_noreplace(dst, path)
        except OSError:
            log.warning(
                "local_trash_raced",
                path=rel,
                trash=str(dst),
                next_step="the folder stays in the trash with what arrived in it; the path is re-observed",
            )
        raise LocalChanged(f"{rel!r} changed while it was being moved to the trash")
    log.info("local_dir_trashed", path=rel, trash=str(dst.relative_to(root)), reason="it held only ignored entries")
    return True


def _kept_by(folder: Path, rel: str, ignore: IgnoreMatcher) -> tuple[str, bool] | None:
    """The first entry under ``folder`` (library path ``rel``) that is not ignored, and whether the
    scanner reports such an entry (a regular file with a UTF-8 path); None when there is none.
    Folders are looked into, not counted: an empty or ignored-only subfolder keeps nothing."""
    stack = [(folder, rel)]
    while stack:
        here, here_rel = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError:
            return here_rel, False  # cannot be read, so cannot be known empty
        for entry in entries:
            entry_rel = f"{here_rel}/{entry.name}"
            is_dir = entry.is_dir(follow_symlinks=False)
            if ignore.matches_entry(entry_rel, is_dir):
                continue
            if is_dir:
                stack.append((Path(entry.path), entry_rel))
                continue
            return entry_rel, entry.is_file(follow_symlinks=False) and _utf8(entry_rel)
    return None


def _utf8(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def trash_file(root: Path, rel: str, expected: LocalRow) -> Path:
    """Check that ``rel`` is still ``expected``, then move it into the trash; returns its trash path."""
    return trash_checked(root, rel, expected)
