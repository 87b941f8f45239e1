"""One writer per state store (DESIGN rule 9): an exclusive ``flock`` on ``state_dir/lock``.

Every process that writes the store (``libmirror run``, ``libmirror sync``, ``libmirror demo`` on its
own state dir) takes the lock before it opens the store and keeps it for its whole life. The kernel
drops the lock when its holder ends, however it ends (SIGKILL and crashes included), so a stale lock
never needs cleaning up: the file stays, the lock does not. Right after locking, the holder writes its
pid and command into the file, so a process that finds the lock taken can name the holder.

Readers (``libmirror status``) never touch this file, nor do commands that only leave a request for the
running daemon under ``state_dir/control/``.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOCK_FILE = "lock"
_MAX_READ = 512
_NAME_RETRIES = 20
_NAME_RETRY_S = 0.025


@dataclass(frozen=True)
class Holder:
    """Who holds a state directory's lock, as its lock file says (``None``: unknown)."""

    pid: int | None
    command: str | None


class StateLocked(Exception):
    """Another process holds the writer lock of ``state_dir``."""

    def __init__(self, state_dir: Path, holder: Holder) -> None:
        self.state_dir = state_dir
        self.holder = holder
        who = f"pid {holder.pid}" if holder.pid is not None else "another process (pid unknown)"
        super().__init__(f"the state store {state_dir} is in use by {who}")


class StateLock:
    """The held writer lock of one state directory; released by :meth:`release` or at process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path, command: str) -> StateLock:
        """Lock ``state_dir`` for this process, without waiting.

        Creates ``state_dir`` (mode 0700) and the lock file (0600) when missing. ``command`` (e.g.
        ``"run"``) is written after the pid, for the message of a refused process. Raises
        :class:`StateLocked` when another process holds the lock, ``OSError`` when the directory or the
        file cannot be created or opened.
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / LOCK_FILE
        # no O_TRUNC: a process that does not get the lock must leave the holder's pid readable
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            # the holder writes its pid right after it locks: a refused process that came in between
            # (two started together) reads again for a moment, so the message can name it
            for _ in range(_NAME_RETRIES):
                if holder.pid is not None:
                    break
                time.sleep(_NAME_RETRY_S)
                holder = _read_holder(fd)
            os.close(fd)
            raise StateLocked(state_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            # write, then cut: a reader never finds the file empty, at worst followed by the tail of
            # a longer old text (it reads the first two lines only)
            body = f"{os.getpid()}\n{command}\n".encode()
            os.pwrite(fd, body, 0)
            os.ftruncate(fd, len(body))
        except OSError:
            pass  # the lock is what matters; the pid only serves the message of a refused process
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up; the file stays (removing it would race with the next holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # this process's only descriptor of the file: the flock goes with it

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def current_holder(state_dir: Path) -> Holder | None:
    """Who holds ``state_dir``'s lock, as far as its file says, for readers (``status``): the pid
    written by the last holder, if that process is alive. Opens the file read-only and takes no lock
    (a probe could make a writer starting at that instant refuse); None when there is no file or no
    live holder."""
    try:
        fd = os.open(Path(state_dir) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    return holder if holder.pid is not None else None


def _read_holder(fd: int) -> Holder:
    try:
        lines = os.pread(fd, _MAX_READ, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        return Holder(None, None)
    if not lines or not lines[0].strip().isdigit():
        return Holder(None, None)
    pid = int(lines[0].strip())
    if not _alive(pid):
        # read in the instant between the new holder's flock and its write: the text is the last
        # holder's, who has exited
        return Holder(None, None)
    command = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return Holder(pid, command)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, belongs to another user
    return True
