"""The watcher wrapper on a real folder: settle batching, our own folder ignored, fallback on failure."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from daemon.local.watch import WatcherUnavailable, relative_path, watch_changes


@pytest.mark.anyio
async def test_batches_after_settle_and_ignores_libmirror(tmp_path: Path) -> None:
    (tmp_path / ".libmirror" / "tmp").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    batches: list[set[str]] = []
    first = anyio.Event()

    def collect(batch: set[str]) -> None:
        batches.append(batch)
        first.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_changes, tmp_path, 0.3, collect)
        await anyio.sleep(0.3)  # let the watcher start
        for i in range(5):
            (tmp_path / "sub" / f"f{i}.txt").write_text(str(i))
            (tmp_path / ".libmirror" / "tmp" / f"dl{i}").write_text("ours")
            await anyio.sleep(0.05)  # quicker than settle: all one batch
        with anyio.fail_after(5):
            await first.wait()
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    assert len(batches) == 1
    assert {f"sub/f{i}.txt" for i in range(5)} <= batches[0]
    assert not any(p.startswith(".libmirror") for p in batches[0])


def test_relative_path(tmp_path: Path) -> None:
    assert relative_path(tmp_path, str(tmp_path / "a" / "b.txt")) == "a/b.txt"
    assert relative_path(tmp_path, str(tmp_path)) is None
    assert relative_path(tmp_path, str(tmp_path / ".libmirror" / "trash" / "x")) is None
    assert relative_path(tmp_path, "/elsewhere/x") is None


@pytest.mark.anyio
async def test_watch_limit_names_the_sysctl(tmp_path: Path) -> None:
    # the inotify limit cannot be lowered without root, so the watcher's failure is injected
    async def failing(*_paths: Any, **_kw: Any) -> AsyncIterator[set[Any]]:
        raise OSError(errno.ENOSPC, "OS file watch limit reached")
        yield set()

    with structlog.testing.capture_logs() as logs, pytest.raises(WatcherUnavailable):
        await watch_changes(tmp_path, 0.1, lambda _batch: None, awatch=failing)
    assert logs[0]["event"] == "watcher_unavailable"
    assert "fs.inotify.max_user_watches" in logs[0]["reason"] + logs[0]["next_step"]


@pytest.mark.anyio
async def test_missing_root_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(WatcherUnavailable):
        await watch_changes(tmp_path / "missing", 0.1, lambda _batch: None)


@pytest.mark.anyio
async def test_a_batch_waits_for_settle_seconds_of_quiet(tmp_path: Path) -> None:
    """Events keep the batch open; it is handed over only once ``settle`` s passed without one."""
    settle = 0.6
    arrived: list[tuple[float, set[str]]] = []
    done = anyio.Event()

    def collect(batch: set[str]) -> None:
        arrived.append((anyio.current_time(), batch))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_changes, tmp_path, settle, collect)
        await anyio.sleep(0.3)
        for i in range(4):  # 0.3 s apart: shorter than settle, so one batch
            (tmp_path / f"f{i}.txt").write_text(str(i))
            last = anyio.current_time()
            await anyio.sleep(0.3)
        with anyio.fail_after(10):
            await done.wait()
        tg.cancel_scope.cancel()
    [(at, batch)] = arrived
    assert batch == {f"f{i}.txt" for i in range(4)}
    assert at - last >= settle - 0.05  # not before the folder was quiet for settle seconds
