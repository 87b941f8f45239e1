"""Verified atomic downloads (DESIGN rules 1-3).

Bytes go into a private temp file under ``ROOT/.libmirror/tmp/`` (same filesystem as the library, so
the final rename is atomic). ``commit`` fsyncs, verifies size and MD5, checks that the destination is
still what the plan saw, moves a replaced file into the trash, and only then puts the new file in
place without overwriting anything, and fsyncs the folder. A reader of the library therefore sees
either the old complete file or the new complete file, never a partial one.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import secrets
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio.to_thread
import structlog

from daemon.local.checks import LocalChanged, require, row_from_stat, stat_matches
from daemon.local.fsops import fsync_dir, make_parents, rename_noreplace, start_writeback
from daemon.local.marker import MARKER, TMP_DIR, MarkerMissing, marker_present, private_subdir
from daemon.local.names import safe_local_path
from daemon.local.trash import keep_in_trash, trash_checked
from daemon.logs import debug_enabled
from daemon.vocab import DigestMismatch, LocalRow

__all__ = ["DownloadTarget", "LocalChanged", "check_space", "cleanup_tmp", "open_download", "stat_matches"]

log = structlog.get_logger(__name__)

_TMP_PREFIX = "dl-"
_TMP_SUFFIX = ".part"
# temp names: a tag random per process and a counter (O_EXCL still refuses any name already taken)
_TMP_TAG = secrets.token_hex(4)
_TMP_COUNTER = itertools.count()
# created with the mode a new library file gets (the kernel applies the umask), so placing a new file
# needs no chmod; the folder they live in is private (0700) meanwhile
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is set-and-return)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_DEFAULT_FILE_MODE = 0o666 & ~_umask()


_BUFFER = 1024 * 1024  # bytes kept in memory before a write to the temp file (per download)
# A full buffer is written by a writer thread while the next one fills; its MD5 is computed by a
# hasher thread meanwhile (the slower of the two: done in turn, they set the pace of a large download).
_WRITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="libmirror-write")
_HASHERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="libmirror-md5")


def _hash_all(md5: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        md5.update(chunk)


def _create_temp(root: Path) -> tuple[int, Path]:
    """A new file in ``ROOT/.libmirror/tmp/``, opened for writing. Straight into the folder, which is
    there all but once: only a missing one costs the checks of ``private_subdir`` (MarkerMissing
    without the marker; ``tmp/`` made again otherwise). The caller checked the marker just before."""
    tmp_dir = root / MARKER / TMP_DIR
    checked = False
    while True:
        path = tmp_dir / f"{_TMP_PREFIX}{_TMP_TAG}-{next(_TMP_COUNTER)}{_TMP_SUFFIX}"
        try:
            return os.open(path, _TMP_FLAGS, 0o666), path
        except FileExistsError:
            continue  # a leftover of an earlier process with the same tag: the next number
        except FileNotFoundError:
            if checked:
                raise
            private_subdir(root, TMP_DIR)
            checked = True


class _TempFile:
    """The temp file and digest of one download attempt. Only one thread works on it at a time: the
    writer thread while a buffer is being written, else whoever holds the target."""

    __slots__ = ("fh", "md5", "path", "root")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path: Path | None = None
        self.fh: IO[bytes] | None = None
        self.md5 = hashlib.md5(usedforsecurity=False)

    def open(self) -> IO[bytes]:
        if self.fh is None:
            fd, self.path = _create_temp(self.root)
            self.fh = os.fdopen(fd, "wb")
        return self.fh

    def append(self, chunks: list[bytes]) -> None:
        """Write and hash ``chunks`` (hashlib and file writes release the GIL: the event loop goes on
        receiving meanwhile). A full buffer is hashed by a second thread while this one writes it."""
        fh = self.open()
        if sum(map(len, chunks)) < _BUFFER:
            for chunk in chunks:
                fh.write(chunk)
                self.md5.update(chunk)
            return
        hashed = _HASHERS.submit(_hash_all, self.md5, chunks)
        try:
            start = fh.tell()
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            start_writeback(fh.fileno(), start, fh.tell() - start)
        finally:
            hashed.result()  # the digest is whole before anyone reads it or hashes on

    def write_out(self) -> None:
        """Create the file if nothing was written yet, hand what is buffered to the kernel and start
        its writeback (see ``start_writeback``)."""
        fh = self.open()
        fh.flush()
        start_writeback(fh.fileno(), 0, 0)  # 0 bytes: to the end of the file

    def flush(self) -> None:
        """Create (if nothing was written yet), fsync and close the file."""
        fh = self.open()
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        self.fh = None

    def remove(self) -> None:
        """Close and remove the file (idempotent)."""
        if self.fh is not None:
            try:
                self.fh.close()
            finally:
                self.fh = None
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.path = None


class DownloadTarget:
    """One download in progress. Use as ``async with open_download(root, rel) as target:``.

    Chunks are buffered up to 1 MiB; the temp file is created, written and hashed in a worker thread
    only when the buffer fills or at ``commit``. A small file therefore costs one thread hop in all
    (create, write, fsync, verify, rename). A large one streams with memory bounded by two buffers,
    whatever its size: one being written while the next one fills.
    """

    def __init__(self, root: Path, rel: str) -> None:
        safe_local_path(root, rel)  # refuse a bad path before a single byte is fetched
        if not marker_present(root):
            raise MarkerMissing(f"{root / MARKER} is missing; is the library disk mounted?")
        self.root = root
        self.rel = rel
        self._file = _TempFile(root)
        self._writing: Future[None] | None = None  # the buffer a writer thread has in hand
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.size = 0
        self._done = False

    async def __aenter__(self) -> DownloadTarget:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Discard the download, once the buffer a writer thread may hold is written (its error, if
        any, no longer matters): the temp file is gone when this returns."""
        if self._done:
            return  # committed, or discarded already
        try:
            await self._written()
        except OSError:
            pass
        finally:
            self.discard()

    @property
    def tmp_path(self) -> Path | None:
        """The temp file, once created (None before the first write and after commit or discard)."""
        return self._file.path

    async def _written(self) -> None:
        """Wait until the buffer in a writer thread's hands is written; raises what the write raised."""
        writing = self._writing
        if writing is None:
            return
        if not writing.done():
            await anyio.to_thread.run_sync(wait_futures, [writing])
        self._writing = None
        writing.result()

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; file writes run in a worker thread (a slow disk never stalls the loop)."""
        if not chunk:
            return
        if self._done:
            raise RuntimeError("download target already committed or discarded")
        self.size += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= _BUFFER:
            await self._written()
            pending, self._pending, self._pending_size = self._pending, [], 0
            self._writing = _WRITERS.submit(self._file.append, pending)

    async def __call__(self, chunk: bytes) -> None:
        """A target is itself a download sink."""
        await self.write(chunk)

    async def reset(self) -> None:
        """Start over (the provider restarts a broken transfer from the first byte)."""
        await self.close()
        self._done = False
        self.size = 0

    @property
    def md5(self) -> str:
        return self._file.md5.hexdigest()

    def discard(self) -> None:
        """Close and remove the temp file (idempotent). A buffer still being written is left to its
        writer thread, which removes the file when done: the event loop never waits for a disk."""
        self._done = True
        self._pending, self._pending_size = [], 0
        file, writing = self._file, self._writing
        self._file, self._writing = _TempFile(self.root), None
        if writing is None:
            file.remove()
        else:
            writing.add_done_callback(lambda _: file.remove())

    def write_out(self) -> None:
        """In a worker thread: write every byte received to the temp file and start writing it to disk,
        without waiting for the disk. A batch of downloads does this for all its files before the
        first fsync: each fsync then waits for writes already under way (about a third of the time
        of fsyncs one after another, here, for small files)."""
        self._drain()
        self._file.write_out()

    def _drain(self) -> None:
        """In a worker thread: every byte received into the temp file (created if need be)."""
        if self._writing is not None:  # waiting here blocks no event loop
            writing, self._writing = self._writing, None
            writing.result()
        pending, self._pending, self._pending_size = self._pending, [], 0
        self._file.append(pending)

    def _flush(self) -> None:
        self._drain()
        self._file.flush()

    def place(self, replace: LocalRow | None) -> tuple[LocalRow, Path]:
        """Move the verified temp file into place; returns its row and the folder that received it,
        which the caller fsyncs before anyone records the row (see ``commit_batch``)."""
        dest = safe_local_path(self.root, self.rel)
        if replace is not None and replace.is_dir:
            raise LocalChanged(f"{self.rel!r} is a folder; a download cannot replace it")
        require(dest, replace, self.rel)
        mode = _DEFAULT_FILE_MODE
        if replace is not None:
            mode = stat.S_IMODE(os.lstat(dest).st_mode)
            trash_checked(self.root, self.rel, replace)
        assert self.tmp_path is not None
        # the stat of OUR bytes, taken while the file is still private: a rename keeps size, mtime and
        # inode, and an edit that lands right after the rename then shows as a change to re-hash (a
        # stat taken after the rename could pair someone's new content with our digest)
        ours = os.lstat(self.tmp_path)
        if stat.S_IMODE(ours.st_mode) != mode:  # a replaced file's mode; or the umask changed meanwhile
            self.tmp_path.chmod(mode)
            ours = os.lstat(self.tmp_path)
        make_parents(self.root, dest)
        try:
            rename_noreplace(self.tmp_path, dest, ours)
        except FileExistsError:
            raise LocalChanged(f"{self.rel!r} appeared on disk while it was being downloaded") from None
        self._file.path = None  # it is the library's file now: a discard must not remove it
        return row_from_stat(self.rel, ours, self.md5), dest.parent

    def verify(self, expected_size: int | None, expected_md5: str | None) -> None:
        self._flush()
        if expected_size is not None and self.size != expected_size:
            raise DigestMismatch(f"{self.rel}: got {self.size} bytes, listing promised {expected_size}")
        if expected_md5 is not None and self.md5 != expected_md5.strip().lower():
            raise DigestMismatch(f"{self.rel}: md5 {self.md5} does not match listing {expected_md5}")

    def _finish(self, expected_size: int | None, expected_md5: str | None, replace: LocalRow | None) -> LocalRow:
        self.verify(expected_size, expected_md5)
        row, folder = self.place(replace)
        fsync_dir(folder)
        return row

    def _finish_in_trash(self, expected_size: int | None, expected_md5: str | None) -> Path:
        self.verify(expected_size, expected_md5)
        assert self.tmp_path is not None
        kept = keep_in_trash(self.root, self.tmp_path, self.rel)
        self._file.path = None
        return kept

    async def commit_to_trash(self, expected_size: int | None, expected_md5: str | None) -> Path:
        """Verify and move into the trash instead of the library: the copy kept of a remote version
        about to be deleted for good. Raises DigestMismatch when the bytes are not the expected
        version. The temp file is gone afterwards either way."""
        if self._done:
            raise RuntimeError("download target already committed or discarded")
        try:
            kept = await anyio.to_thread.run_sync(self._finish_in_trash, expected_size, expected_md5)
        finally:
            self.discard()
        return kept

    def begin_commit(self) -> None:
        """Refuse a second commit (a committed or discarded target has no bytes left to place)."""
        if self._done:
            raise RuntimeError("download target already committed or discarded")

    def committed(self, row: LocalRow, replaced: bool) -> None:
        """Mark the target as placed (``row`` is what it became); a later ``discard`` does nothing."""
        self._done = True
        if debug_enabled():
            log.debug("download_committed", path=self.rel, bytes=row.size, replaced=replaced)

    async def commit(self, expected_size: int | None, expected_md5: str | None, replace: LocalRow | None) -> LocalRow:
        """Verify and move into place; returns the new LocalRow (with its MD5).

        Raises DigestMismatch (temp discarded; retry the download), LocalChanged (the destination is
        not ``replace``; None means it must not exist; temp discarded; re-plan). A replaced file goes
        to the trash first.
        """
        self.begin_commit()
        try:
            row = await anyio.to_thread.run_sync(self._finish, expected_size, expected_md5, replace)
        except BaseException:
            self.discard()
            raise
        self.committed(row, replace is not None)
        return row


def check_space(root: Path, size: int | None) -> None:
    """Refuse a download that cannot fit before writing any of it: a file the disk cannot hold fails
    at once (ENOSPC) instead of filling the disk and failing every other download beside it."""
    if not size:
        return
    try:
        st = os.statvfs(root)
    except OSError:
        return  # nothing to measure: the write itself will tell
    free = st.f_bavail * st.f_frsize
    if size > free:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: the file needs {size} bytes, {free} are free under {root}; "
            "free some space, the download is retried on the next pass",
        )


def open_download(root: Path, rel: str) -> DownloadTarget:
    """A temp file for library path ``rel``; raises ValueError for an unsafe path and MarkerMissing
    when the root marker is absent (an unmounted disk must not be written into)."""
    return DownloadTarget(root, rel)


def cleanup_tmp(root: Path) -> int:
    """Remove leftovers of downloads interrupted by a crash. Returns how many files were removed.
    Only call this while no download of this library runs."""
    tmp_dir = root / MARKER / TMP_DIR
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            Path(entry.path).unlink()
            removed += 1
    if removed:
        log.info("tmp_cleaned", removed=removed)
    return removed
