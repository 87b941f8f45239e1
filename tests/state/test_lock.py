"""The writer lock of a state directory (``daemon/state/lock.py``): one holder, named; gone with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.state.lock import LOCK_FILE, StateLock, StateLocked

HOLD = """
import sys, time
from daemon.state.lock import StateLock
lock = StateLock.acquire(sys.argv[1], "run")
print("locked", flush=True)
time.sleep(600)
"""


def test_second_writer_is_refused_with_the_holders_pid_until_the_first_releases(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    first = StateLock.acquire(state, "sync --once")
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert oct((state / LOCK_FILE).stat().st_mode & 0o777) == "0o600"
    assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\nsync --once\n"
    with pytest.raises(StateLocked) as refused:
        StateLock.acquire(state, "run")  # another open file description: flock refuses it, same process or not
    assert refused.value.holder.pid == os.getpid()
    assert refused.value.holder.command == "sync --once"
    assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\nsync --once\n"  # the refused one changed nothing
    first.release()
    with StateLock.acquire(state, "run") as second:
        assert second.held
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\nrun\n"
    assert not second.held


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StateLocked) as refused:
            StateLock.acquire(state, "sync --once")
        assert refused.value.holder.pid == holder.pid
        assert f"pid {holder.pid}" in str(refused.value)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    # no clean-up step: the kernel dropped the lock with the process; the stale pid in the file is ignored
    with StateLock.acquire(state, "sync --once"):
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\nsync --once\n"


def test_a_stale_pid_is_not_named_as_the_holder(tmp_path: Path) -> None:
    """Between a new holder's flock and its write, the file still names the last (exited) holder."""
    state = tmp_path / "state"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with StateLock.acquire(state, "run"):
        (state / LOCK_FILE).write_text(f"{dead.stdout.strip()}\nrun\n")  # as if not yet rewritten
        with pytest.raises(StateLocked) as refused:
            StateLock.acquire(state, "sync --once")
    assert refused.value.holder.pid is None and refused.value.holder.command is None
    assert "pid unknown" in str(refused.value)
