"""The root marker ``ROOT/.libmirror/``: proof that the library folder is the one we synced into.

DESIGN rule 5: when the marker is missing (an unmounted disk leaves an empty mount point) nothing
destructive may run. That is why only ``ensure_marker`` creates it, at set-up time, and the tmp and
trash helpers refuse to work without it instead of silently recreating it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MARKER = ".libmirror"
TMP_DIR = "tmp"
TRASH_DIR = "trash"
PRIVATE_MODE = 0o700

README_TEXT = """\
This folder belongs to libmirror, the sync daemon that mirrors this library.

- tmp/    downloads in progress (verified, then moved into place)
- trash/  local files that were replaced or deleted by a sync, kept for a number of days

Do not delete this folder: libmirror treats its absence as "the disk is not mounted"
and stops every destructive action until it is back.
"""


class MarkerMissing(FileNotFoundError):
    """``ROOT/.libmirror/`` is absent: the root is probably not mounted. Nothing is written."""


def marker_dir(root: Path) -> Path:
    return root / MARKER


def marker_present(root: Path) -> bool:
    """True when ``ROOT/.libmirror`` is a real folder (a symlink does not count)."""
    try:
        st = os.lstat(root / MARKER)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode)


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(PRIVATE_MODE)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{path} exists and is not a folder") from None
        return
    path.chmod(PRIVATE_MODE)  # mkdir's mode is filtered by the umask


def ensure_marker(root: Path) -> None:
    """Create ``.libmirror/`` with ``tmp/`` and ``trash/`` (0700) and a README. The root itself must
    exist: creating it would hide an unmounted disk."""
    if not root.is_dir():
        raise FileNotFoundError(f"library root {root} does not exist or is not a folder")
    base = root / MARKER
    _private_dir(base)
    _private_dir(base / TMP_DIR)
    _private_dir(base / TRASH_DIR)
    readme = base / "README.txt"
    if not readme.exists():
        readme.write_text(README_TEXT, encoding="utf-8")


def private_subdir(root: Path, name: str) -> Path:
    """``ROOT/.libmirror/<name>`` (created 0700 if missing); raises MarkerMissing without the marker."""
    if not marker_present(root):
        raise MarkerMissing(f"{root / MARKER} is missing; is the library disk mounted?")
    path = root / MARKER / name
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return path  # the common case, one call: every download asks for tmp/
    except FileNotFoundError:
        pass
    _private_dir(path)
    return path
