"""The local trash, ``ROOT/.libmirror/trash/YYYY-MM-DD/<library path>`` (DESIGN rule 1).

Whatever a sync replaces or deletes locally is moved here instead of being unlinked, so no version is
ever lost; ``purge_trash`` drops whole day folders after ``trash_days``. A rename keeps the inode, the
content and the mtime; the day is the UTC date of the move.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog

from daemon.local.checks import LocalChanged, require, stat_matches
from daemon.local.fsops import fsync_dir, rename_noreplace
from daemon.local.marker import MARKER, TRASH_DIR, private_subdir
from daemon.local.names import safe_local_path, with_suffix
from daemon.vocab import LocalRow

log = structlog.get_logger(__name__)

_MAX_SUFFIX = 10_000


def _numbered(rel: str, n: int) -> str:
    head, _, name = rel.rpartition("/")
    numbered = with_suffix(name, f" ({n})")
    return f"{head}/{numbered}" if head else numbered


def _move(src: Path, dst: Path) -> None:
    try:
        rename_noreplace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # .libmirror on another filesystem (a bind mount): copy with metadata, then remove
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "destination exists", str(dst)) from exc
        shutil.move(src, dst, copy_function=shutil.copy2)


def move_to_trash(root: Path, rel: str, *, today: date | None = None) -> Path:
    """Move the file or folder at library path ``rel`` into today's trash folder and return where it
    went. A taken name gets `` (2)``, `` (3)``... before the extension. Raises FileNotFoundError when
    there is nothing to move and MarkerMissing when the root marker is absent."""
    src = safe_local_path(root, rel)
    os.lstat(src)  # FileNotFoundError early, before creating folders
    dst = _into_trash(root, src, rel, today)
    log.info("local_trashed", path=rel, trash=str(dst.relative_to(root)))
    return dst


def keep_in_trash(root: Path, src: Path, rel: str) -> Path:
    """Move ``src`` (a verified temp file under ``ROOT/.libmirror/``) into today's trash under the
    library path ``rel``: a copy of a remote version about to be destroyed for good."""
    return _into_trash(root, src, rel, None)


def _into_trash(root: Path, src: Path, rel: str, today: date | None) -> Path:
    private_subdir(root, TRASH_DIR)
    day = (today or datetime.now(UTC).date()).isoformat()
    day_rel = f"{MARKER}/{TRASH_DIR}/{day}"
    day_dir = safe_local_path(root, day_rel)
    try:
        day_dir.mkdir(0o700)
    except FileExistsError:
        pass
    blocked = False
    for n in range(1, _MAX_SUFFIX):
        # numbered names of the last component; when a folder on the way is a file in the trash (a file
        # trashed earlier under the name a folder has now), the whole path under a folder "~N" instead
        candidate_rel = f"~{n}/{rel}" if blocked else rel if n == 1 else _numbered(rel, n)
        try:
            dst = safe_local_path(root, f"{day_rel}/{candidate_rel}")
            if os.path.lexists(dst):
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError, ValueError):
            blocked = True
            continue
        try:
            _move(src, dst)
        except FileExistsError:
            continue
        fsync_dir(dst.parent)
        fsync_dir(src.parent)
        return dst
    raise FileExistsError(errno.EEXIST, "no free name in the trash", rel)


def trash_checked(root: Path, rel: str, expected: LocalRow) -> Path:
    """Check, then trash: raise LocalChanged unless ``rel`` still matches ``expected``. If the file
    changed in the instant between the check and the move, it is put back (when its place is still
    free) and LocalChanged is raised, so a fresh edit is never hidden in the trash."""
    path = safe_local_path(root, rel)
    require(path, expected, rel)
    dst = move_to_trash(root, rel)
    if not stat_matches(dst, expected):
        try:
            rename_noreplace(dst, path)
        except OSError:
            log.warning(
                "local_trash_raced",
                path=rel,
                trash=str(dst),
                next_step="the newer version stays in the trash; the path is re-observed",
            )
        raise LocalChanged(f"{rel!r} changed while it was being moved to the trash")
    return dst


def purge_trash(root: Path, days: int, now: float) -> int:
    """Delete trash day folders whose whole day ended more than ``days`` days before ``now`` (epoch
    seconds). Returns the number of day folders removed. Names that are not dates are left alone."""
    trash = root / MARKER / TRASH_DIR
    try:
        entries = list(os.scandir(trash))
    except FileNotFoundError:
        return 0
    cutoff = datetime.fromtimestamp(now, UTC).date() - timedelta(days=days)
    removed = 0
    for entry in entries:
        try:
            day = date.fromisoformat(entry.name)
        except ValueError:
            continue
        if len(entry.name) != 10 or day >= cutoff:
            continue
        st = os.lstat(entry.path)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(entry.path)  # does not follow symlinks inside
        else:
            Path(entry.path).unlink()
        removed += 1
        log.info("trash_purged", day=entry.name)
    return removed
