"""LibraryRunner without a server: a failing library retries with growing delays and stops on request."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import anyio
import pytest
import structlog

from daemon.config import CoreDataRemote, LibraryConfig
from daemon.providers.base import Provider
from daemon.secrets import Secret
from daemon.state.store import StateStore
from daemon.sync import runner as runner_mod
from daemon.sync.runner import LibraryRunner, Work
from daemon.vocab import AuthError


def _library(tmp_path: Path) -> LibraryConfig:
    remote = CoreDataRemote(base_url="http://127.0.0.1:9", root="root", api_user="u", api_key=Secret("k" * 12))
    return LibraryConfig(name="bad", provider="coredata", local_path=tmp_path / "root", remote=remote)


def test_work_merges() -> None:
    w = Work(paths={"a"})
    assert not w.empty and Work().empty
    w.merge(Work(paths={"b"}, incremental=True))
    assert w.paths == {"a", "b"} and w.incremental and not w.full_remote


@pytest.mark.anyio
async def test_failing_library_backs_off_and_stops_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "RETRY_BASE_S", 0.05)
    attempts: list[float] = []

    def factory(_lib: LibraryConfig) -> Provider:
        attempts.append(time.monotonic())
        raise AuthError("401 from the server: the API key is wrong")

    store = await StateStore.open(tmp_path / "state")
    runner = LibraryRunner(_library(tmp_path), store, provider_factory=factory)
    try:
        with structlog.testing.capture_logs() as logs, anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runner.run)
                while len(attempts) < 4:  # noqa: ASYNC110 - counting the runner's own attempts
                    await anyio.sleep(0.01)
                assert runner.state.state == "retrying"
                assert "API key" in runner.state.detail
                runner.request_stop()  # run() returns promptly, or fail_after trips
        assert runner.state.state == "stopped"
    finally:
        await store.close()
    # 0.05, 0.1, 0.2, 0.4 s...: growing gaps, not one attempt per tick
    assert len(attempts) >= 4
    gaps = [b - a for a, b in pairwise(attempts)]
    # each wait at least its nominal length (a busy machine only ever makes a gap longer)
    assert all(gap >= 0.05 * 2**i * 0.9 for i, gap in enumerate(gaps)), gaps
    failed = [e for e in logs if e["event"] == "library_failed"]
    assert len(failed) == len(attempts)
    assert all("retry_in_s" in e and "next_step" in e for e in failed)
