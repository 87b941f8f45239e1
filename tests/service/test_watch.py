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

PROBE = ".probe"


async def _ready(root: Path, batches: list[set[str]], settle: float) -> None:
    """Return once the watcher reports events: a probe file is written (again every few settle
    periods) until a batch holds it. A fixed sleep for the watcher to start loses the first events
    on a busy machine."""
    with anyio.fail_after(60):
        while not any(PROBE in b for b in batches):
            for _ in range(3):  # a few writes while the watcher starts, then one settle period of quiet
                (root / PROBE).write_text("x")
                await anyio.sleep(0.2)
            with anyio.move_on_after(settle + 1):
                while not any(PROBE in b for b in batches):  # noqa: ASYNC110 - the watcher's own thread
                    await anyio.sleep(0.05)


def _real(batches: list[set[str]]) -> list[set[str]]:
    """The batches with the readiness probe taken out (a late probe write may make a batch of its own)."""
    return [b - {PROBE} for b in batches if b - {PROBE}]


@pytest.mark.anyio
async def test_batches_after_settle_and_ignores_libmirror(tmp_path: Path) -> None:
    (tmp_path / ".libmirror" / "tmp").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    settle = 1.0
    batches: list[set[str]] = []

    def collect(batch: set[str]) -> None:
        batches.append(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_changes, tmp_path, settle, collect)
        await _ready(tmp_path, batches, settle)
        for i in range(5):  # back to back, far quicker than settle: all one batch
            (tmp_path / "sub" / f"f{i}.txt").write_text(str(i))
            (tmp_path / ".libmirror" / "tmp" / f"dl{i}").write_text("ours")
        with anyio.fail_after(30):
            while not any("sub/f4.txt" in b for b in batches):  # noqa: ASYNC110 - the watcher's own thread
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    real = _real(batches)
    assert len(real) == 1, real
    assert {f"sub/f{i}.txt" for i in range(5)} <= real[0]
    assert not any(p.startswith(".libmirror") for b in batches for p in b)


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
    settle = 1.5
    batches: list[set[str]] = []
    times: list[float] = []

    def collect(batch: set[str]) -> None:
        batches.append(batch)
        times.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_changes, tmp_path, settle, collect)
        await _ready(tmp_path, batches, settle)
        for i in range(4):  # 0.2 s apart, far shorter than settle: one batch
            (tmp_path / f"f{i}.txt").write_text(str(i))
            last = anyio.current_time()
            await anyio.sleep(0.2)
        with anyio.fail_after(30):
            while not any("f3.txt" in b for b in batches):  # noqa: ASYNC110 - the watcher's own thread
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    at = next(t for t, b in zip(times, batches, strict=True) if "f3.txt" in b)
    assert _real(batches) == [{f"f{i}.txt" for i in range(4)}]
    assert at - last >= settle - 0.05  # not before the folder was quiet for settle seconds
