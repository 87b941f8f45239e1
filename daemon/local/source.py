"""The one place an upload reads a local file (DESIGN rules 2 and 6).

The executor checks a file with ``lstat`` when it starts an upload, but the provider opens it later
(and again for each retry): a symlink swapped in between would have sent whatever file it points to,
anything the daemon can read. So an upload carries an ``UploadSource``, the path with the stat the
plan was made on, and every provider reads through ``UploadSource.open``: ``O_NOFOLLOW`` (a symlink
in the last component is refused, never followed), then ``fstat`` of the descriptor it got compared
with the planned size, mtime_ns and inode, then the bytes stream from that same descriptor. Another
file at the path (a swap, a hard link, a rewrite) raises ``LocalChanged``: the action is re-planned.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from daemon.local.checks import LocalChanged
from daemon.vocab import LocalRow

# O_NONBLOCK: a FIFO swapped in must not block the open until someone writes to it (it is refused
# right after as not a regular file); for regular files the flag changes nothing, and it is cleared.
SMALL_FILE = 64 * 1024  # bytes: a file this size or smaller is read whole when opened (see ``open``)
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True, slots=True)
class UploadSource:
    """A local file to upload, as the plan saw it: ``size`` bytes with MD5 ``digest``, and the
    ``mtime_ns`` and ``inode`` that identify that version of it."""

    path: Path
    size: int
    digest: str
    mtime_ns: int
    inode: int

    @classmethod
    def planned(cls, path: Path, row: LocalRow) -> UploadSource:
        """The file at ``path`` as the local row ``row`` describes it (a file row with a digest)."""
        if row.is_dir or row.digest is None:
            raise ValueError(f"{row.path!r} is not a hashed file row")
        return cls(path, row.size, row.digest, row.mtime_ns, row.inode)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The planned file, opened without following a symlink and checked on its descriptor.

        Raises ``LocalChanged`` when the path is gone, is a symlink or anything but a regular file, or
        holds another file or version than planned. Meant as a request body factory: each attempt opens
        (and checks) anew. The caller still compares what the server stored with ``digest``: the file
        may be rewritten in place while it streams.
        """
        try:
            fd = os.open(self.path, _FLAGS)
        except FileNotFoundError:
            raise LocalChanged(f"{self.path.name!r} is gone since it was planned on") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):  # ELOOP/EMLINK: a symlink (Linux/BSD)
                raise LocalChanged(f"{self.path.name!r} is not the planned file any more (a symlink?)") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LocalChanged(f"{self.path.name!r} is not a regular file any more")
            if (st.st_size, st.st_mtime_ns, st.st_ino) != (self.size, self.mtime_ns, self.inode):
                raise LocalChanged(f"{self.path.name!r} changed on disk since it was planned on")
            os.set_blocking(fd, True)
            handle = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with handle:
            if st.st_size <= SMALL_FILE:
                # read at once, here: streamed, a small file cost the HTTP layer two trips to a worker
                # thread (the read, then the close), more than the read itself from the page cache
                data = handle.read()
                handle.close()
                yield io.BytesIO(data)
            else:
                yield handle
