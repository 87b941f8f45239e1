"""SIGTERM while a transfer is in flight: a real `libmirror run` stops within `stop_timeout`, exits 0,
leaves no temp file, and a later run finishes the download from a consistent state store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import Mirror
from tests.service.daemon_proc import Daemon, library_block, wait_until, write_daemon_config

STOP_TIMEOUT = 2.0


@pytest.fixture
def sandbox(sandbox_procs: SandboxStarter) -> dict[str, Any]:
    return sandbox_procs("sandbox", 2)


def faults(api: CoreDataAPI, **plan: Any) -> dict[str, Any]:
    if plan:
        reply = api.call("POST", "/_sandbox/faults", body=json.dumps(plan).encode(), content_type="application/json")
    else:
        reply = api.call("GET", "/_sandbox/faults")
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    return result


def test_sigterm_mid_transfer_stops_in_time_and_cleanly(tmp_path: Path, sandbox: dict[str, Any]) -> None:
    remote = dict(sandbox["remote"])
    api = CoreDataAPI(remote)
    root = tmp_path / "mirror"
    config = tmp_path / "config.toml"
    block = library_block("lib", root, remote, poll_interval=1, settle=0.2)
    write_daemon_config(config, tmp_path / "state", [block], stop_timeout=STOP_TIMEOUT)
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e["event"] == "pass", 30)
        # every presigned download now stalls for two minutes: the next one is in flight when we stop
        faults(api, rates={"slow": 1.0}, match="^/laika/", slow_seconds=120)
        api.create(api.root, "stalled.bin", b"x" * 100_000)
        wait_until(lambda: faults(api)["counts"].get("slow", 0) >= 1, 15, step=0.1)
        started = time.monotonic()
        code = daemon.stop(timeout=STOP_TIMEOUT + 15)
        took = time.monotonic() - started
    finally:
        daemon.kill()
    assert code == 0, daemon.lines[-10:]
    assert took < STOP_TIMEOUT + 5, took
    assert any(e["event"] == "daemon_stopped" for e in daemon.events)
    assert list((root / ".libmirror" / "tmp").iterdir()) == []
    assert not (root / "stalled.bin").exists()

    faults(api, enabled=False)
    mirror = Mirror(config, root)
    mirror.sync()  # the state store is consistent: the download simply happens now
    assert (root / "stalled.bin").read_bytes() == b"x" * 100_000
