"""The daemon's library runner against a real CoreData sandbox on loopback (in-process, so the test can
count the requests the sandbox answered and wrap the provider to make one file fail).

- An idle incremental poll costs exactly one HTTP request.
- A file that keeps failing backs off (persisted in the state store, 25 s first) and never blocks the
  rest of the library: other changes keep syncing while it waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from daemon.config import LibraryConfig, load_config
from daemon.providers import make_provider
from daemon.providers.base import Provider
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.state.store import StateStore
from daemon.sync.runner import LibraryRunner
from daemon.vocab import TransientError
from tests.e2e.conftest import write_config

pytestmark = pytest.mark.anyio


@pytest.fixture
async def coredata(tmp_path: Path, anyio_backend: str) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("coredata", tmp_path / "sandbox-data", seed=6)
    try:
        yield running
    finally:
        await running.stop()


def library(tmp_path: Path, sandbox: RunningSandbox, **options: Any) -> LibraryConfig:
    mirror = write_config(tmp_path, sandbox.remote, **options)
    return load_config(mirror.config).libraries[0]


async def wait_for(pred: Any, limit_s: float) -> None:
    with anyio.fail_after(limit_s):
        while not pred():  # noqa: ASYNC110 - polling another component's state, no event to wait on
            await anyio.sleep(0.05)


@asynccontextmanager
async def running(lib: LibraryConfig) -> AsyncIterator[tuple[LibraryRunner, list[dict[str, Any]]]]:
    """A ``LibraryRunner`` of ``lib`` running on a real state store, and the log lines it writes meanwhile.
    Leaving the block asks it to stop (gracefully: a poll in flight finishes and logs first) and waits."""
    store = await StateStore.open(lib.local_path.parent / "state")
    runner = LibraryRunner(lib, store)
    try:
        with structlog.testing.capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                tg.start_soon(runner.run)
                try:
                    yield runner, logs
                finally:
                    runner.request_stop()
    finally:
        await store.close()


async def test_an_idle_poll_costs_one_request(tmp_path: Path, coredata: RunningSandbox) -> None:
    lib = library(tmp_path, coredata, poll_interval=1, settle=0.1)
    async with running(lib) as (runner, logs):
        await wait_for(lambda: runner.passes >= 1 and runner.state.state == "idle", 20)

        def polls_seen() -> int:
            return sum(e["event"] == "poll" and e.get("kind") == "incremental" for e in logs)

        seen = polls_seen()
        await wait_for(lambda: polls_seen() > seen, 30)  # right after a poll: its request is done
        coredata.backend.requests.clear()
        polls_before = polls_seen()
        await wait_for(lambda: polls_seen() >= polls_before + 3, 60)  # three idle polls
    polls = polls_seen() - polls_before
    requests = list(coredata.backend.requests)
    assert polls >= 2
    assert len(requests) == polls, [(r.method, r.path, r.query) for r in requests]
    assert {(r.method, r.path) for r in requests} == {("GET", "/api/v2/files/")}
    assert all("modified__gt" in r.query for r in requests)


class OneFileFails:
    """The real provider, except that downloads of one remote id always fail (a broken blob)."""

    def __init__(self, real: Provider, bad_id: str) -> None:
        self.real = real
        self.bad_id = bad_id
        self.bad_attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def download(self, item: Any, sink: Any) -> None:
        if item.remote_id == self.bad_id:
            self.bad_attempts += 1
            raise TransientError("503 Service Unavailable (this blob is broken)")
        await self.real.download(item, sink)


async def test_one_failing_file_backs_off_and_never_blocks_the_rest(tmp_path: Path, coredata: RunningSandbox) -> None:
    lib = library(tmp_path, coredata, poll_interval=1, settle=0.1)
    backend = coredata.backend
    bad_id = backend.add_file(None, "broken.bin", b"never arrives").id
    wrappers: list[OneFileFails] = []

    def factory(config: LibraryConfig) -> Provider:
        wrapper = OneFileFails(make_provider(config.remote), str(bad_id))
        wrappers.append(wrapper)
        return wrapper

    store = await StateStore.open(lib.local_path.parent / "state")
    runner = LibraryRunner(lib, store, provider_factory=factory)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            await wait_for(lambda: runner.passes >= 1, 20)
            started = time.time()
            # the rest of the library arrived; the broken file did not and waits in backoff
            assert not (lib.local_path / "broken.bin").exists()
            lib_id = await store.library_id(lib.name)
            [(path, attempts, next_at, error)] = await store.failures(lib_id)
            assert (path, attempts) == ("broken.bin", 1) and "503" in error
            assert 10 <= next_at - started <= 25.5  # 25 s after the failure, which came before `started`
            # while it waits, other changes keep flowing both ways
            backend.add_file(None, "later.txt", b"added on the server")
            (lib.local_path / "local.txt").write_bytes(b"added on disk")
            await wait_for(lambda: (lib.local_path / "later.txt").exists(), 30)
            await wait_for(lambda: any(n.filename == "local.txt" for n in backend.nodes.values()), 30)
            runner.request_stop()
    finally:
        await store.close()
    assert sum(w.bad_attempts for w in wrappers) == 1  # not retried on every poll while backing off


async def test_the_catch_up_rescans_say_when_they_are_done(
    tmp_path: Path, coredata: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``watcher_catch_up_done`` comes after the pass that ran the last catch-up rescan (what `bench.idle`
    waits for before it measures idle polls)."""
    from daemon.sync import runner as runner_mod

    monkeypatch.setattr(runner_mod, "WATCH_CATCH_UP_S", (0.2, 0.4, 0.6))
    lib = library(tmp_path, coredata, poll_interval=600, settle=0.1)
    async with running(lib) as (_, logs):
        await wait_for(lambda: any(e["event"] == "watcher_catch_up_done" for e in logs), 60)
    events = [e["event"] for e in logs]
    done = events.index("watcher_catch_up_done")
    last_trigger = max(i for i, e in enumerate(events) if e == "watcher_catch_up_rescan")
    assert "pass" in events[last_trigger:done]
    assert logs[done]["rescans"] == 3
