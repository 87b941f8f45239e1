"""The shared watcher: roots subscribing together share one watcher thread, each gets its own events
only, and a watcher without subscribers stops."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
import watchfiles

from daemon.local.watch_hub import Restarted, WatchHub

pytestmark = pytest.mark.anyio


def _watch_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("libmirror watch /"))


async def _collect(hub: WatchHub, root: Path, into: list[str]) -> None:
    async for item in hub.changes(str(root)):
        if not isinstance(item, Restarted):
            into.extend(path for _change, path in item)


async def test_roots_share_one_watcher_and_get_their_own_events(tmp_path: Path) -> None:
    roots = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    seen: dict[Path, list[str]] = {root: [] for root in roots}
    for root in roots:
        root.mkdir()
    hub = WatchHub(coalesce_s=0.2)
    before = _watch_threads()
    async with anyio.create_task_group() as tg:
        for root in roots:
            tg.start_soon(_collect, hub, root, seen[root])
        with anyio.fail_after(30):
            n = 0
            while not all(seen[r] for r in roots[:2]):  # written until seen: the watcher starts in a thread
                n += 1
                (roots[0] / f"x{n}.txt").write_text("x")
                (roots[1] / "sub").mkdir(exist_ok=True)
                (roots[1] / "sub" / f"y{n}.txt").write_text("y")
                await anyio.sleep(0.3)
        assert _watch_threads() - before == 1  # one watcher for the three roots
        tg.cancel_scope.cancel()
    assert all(p.startswith(str(roots[0]) + "/") for p in seen[roots[0]])
    assert any(p.startswith(str(roots[1] / "sub") + "/") for p in seen[roots[1]])
    assert not seen[roots[2]]
    with anyio.fail_after(10):
        while _watch_threads() > before:  # noqa: ASYNC110 - the watcher's own thread stops
            await anyio.sleep(0.05)


async def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        async for _ in WatchHub().changes(str(tmp_path / "missing")):
            pass


async def test_a_failing_shared_watcher_is_split_per_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher over several roots that fails starts again one per root: the root that cannot be
    watched reports the failure, the others are told to rescan and keep being watched."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    real_watch = watchfiles.watch

    def watch(*paths: str, **kwargs: object) -> object:
        if str(bad) in paths:
            raise OSError(28, "OS file watch limit reached")
        return real_watch(*paths, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watchfiles, "watch", watch)
    hub = WatchHub(coalesce_s=0.2)
    outcome: dict[str, object] = {}

    async def follow(root: Path) -> None:
        try:
            async for item in hub.changes(str(root)):
                outcome.setdefault(root.name, item)
                if not isinstance(item, Restarted):
                    outcome["event"] = item
        except OSError as exc:
            outcome[root.name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow, good)
        tg.start_soon(follow, bad)
        with anyio.fail_after(30):
            n = 0
            while "event" not in outcome:
                n += 1
                (good / f"f{n}.txt").write_text("x")
                await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert isinstance(outcome["bad"], OSError)
    assert isinstance(outcome["good"], Restarted)
