"""Downloads put in place in batches: one worker-thread hop and one folder fsync per batch.

Each finished download used to cost its own trip to a worker thread (write, fsync, verify, rename,
fsync the folder). Under concurrency, the downloads that finish while a batch is on disk wait and go
together in the next one: every file is still written, fsynced and verified before its rename, and
every folder that received a file is fsynced once, after the renames and before any caller returns,
so the state store never records a file that a crash could still take back (DESIGN rule 3). Each
download keeps its own outcome: one that fails (a digest mismatch, a destination changed on disk)
fails alone and leaves the others of its batch in place.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread

from daemon.local.atomic import DownloadTarget
from daemon.local.fsops import fsync_dir
from daemon.vocab import LocalRow

__all__ = ["CommitBatcher"]


class _Job:
    __slots__ = ("done", "error", "expected_md5", "expected_size", "replace", "row", "target")

    def __init__(
        self, target: DownloadTarget, expected_size: int | None, expected_md5: str | None, replace: LocalRow | None
    ) -> None:
        self.target = target
        self.expected_size = expected_size
        self.expected_md5 = expected_md5
        self.replace = replace
        self.row: LocalRow | None = None
        self.error: BaseException | None = None
        self.done = False


def _finish_all(jobs: list[_Job]) -> None:
    """In a worker thread: write every file and start its writeback, then fsync and verify each, rename
    each into place, and fsync each folder that received one. A job's exception is kept on the job,
    never raised here."""
    folders: dict[Path, None] = {}
    for job in jobs:  # every file's writeback under way before the first fsync
        try:
            job.target.write_out()
        except Exception as exc:
            job.error = exc
    for job in jobs:
        if job.error is not None:
            continue
        try:
            job.target.verify(job.expected_size, job.expected_md5)
            job.row, folder = job.target.place(job.replace)
            folders[folder] = None
        except Exception as exc:
            job.error = exc
    for folder in folders:
        fsync_dir(folder)


class CommitBatcher:
    """Puts finished downloads in place, those finishing together in one batch (see the module doc).

    The first caller starts a batch at once; callers arriving while it is on disk are taken together
    by the next. Nobody waits for a batch to fill, so a lone download is as quick as before. Everyone
    waiting wakes at once when a batch is done, so the state store's group commit that follows gets
    the whole batch together too.
    """

    def __init__(self) -> None:
        self._pending: list[_Job] = []
        self._running: anyio.Event | None = None  # set when the batch on disk is done

    async def commit(
        self, target: DownloadTarget, expected_size: int | None, expected_md5: str | None, replace: LocalRow | None
    ) -> LocalRow:
        """Like ``DownloadTarget.commit``: verify, move into place, return the new LocalRow; raises
        DigestMismatch or LocalChanged for this download only (its temp file is then discarded)."""
        target.begin_commit()
        job = _Job(target, expected_size, expected_md5, replace)
        self._pending.append(job)
        try:
            # shielded: a batch is a few ms of disk work that holds other downloads' files; a cancel
            # must not leave a temp file half-way between its write and its rename
            with anyio.CancelScope(shield=True):
                while not job.done:
                    if self._running is None:
                        await self._run_batch()
                    else:
                        await self._running.wait()
        finally:
            if job.row is None:
                target.discard()
        if job.error is not None:
            raise job.error
        assert job.row is not None
        target.committed(job.row, replace is not None)
        return job.row

    async def _run_batch(self) -> None:
        batch, self._pending = self._pending, []
        running = self._running = anyio.Event()
        try:
            await anyio.to_thread.run_sync(_finish_all, batch)
        except BaseException as exc:
            for each in batch:
                if each.row is None and each.error is None:
                    each.error = exc
            raise
        finally:
            for each in batch:
                each.done = True
            self._running = None
            running.set()
