"""Test helpers: an ``UploadSource`` for a local file as it is on disk now, and one whose file changes
right after the provider opened it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from daemon.local.source import UploadSource


def source_of(path: Path) -> UploadSource:
    """The file at ``path`` as it is now (size, MD5, mtime_ns, inode), ready to upload."""
    st = os.lstat(path)
    return UploadSource(path, st.st_size, hashlib.md5(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_ino)


def write_source(path: Path, data: bytes) -> UploadSource:
    """Write ``data`` to ``path`` and return it as an upload source."""
    path.write_bytes(data)
    return source_of(path)


class EditedOnceOpened:
    """Stands in for ``real`` (an ``UploadSource``): ``edit`` runs right after the provider opened and
    checked the file, so the open descriptor streams whatever ``edit`` leaves in that same inode (a
    rewrite or an append in place), not what was planned. A change in the middle of a transfer."""

    def __init__(self, real: UploadSource, edit: Callable[[], object]) -> None:
        self.real = real
        self.edit = edit
        self.path, self.size, self.digest = real.path, real.size, real.digest

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with self.real.open() as handle:
            self.edit()
            yield handle


def edited_once_opened(real: UploadSource, edit: Callable[[], object]) -> UploadSource:
    """``EditedOnceOpened`` typed as the source it stands in for (it has the same surface)."""
    return cast(UploadSource, EditedOnceOpened(real, edit))
