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

    async def collect() -> None:
        async for batch in watch_changes(tmp_path, 0.3):
            batches.append(batch)
            first.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
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
        async for _ in watch_changes(tmp_path, 0.1, awatch=failing):
            pass
    assert logs[0]["event"] == "watcher_unavailable"
    assert "fs.inotify.max_user_watches" in logs[0]["reason"] + logs[0]["next_step"]


@pytest.mark.anyio
async def test_missing_root_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(WatcherUnavailable):
        async for _ in watch_changes(tmp_path / "missing", 0.1):
            pass
