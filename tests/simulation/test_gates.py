"""Safety gates (DESIGN rule 5, issue 7 §4), each gate on each side, against a real CoreData sandbox.

For every gate: the destructive actions are held while the rest of the library keeps syncing; the gate
shows in ``libmirror status --json`` (a real process reading the same state store), in the log
(``safety_gate``) and in the systemd STATUS line (``Service.status_line()``); and it clears when the
condition clears or when the operator confirms (``sync --once --confirm-deletes``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.config import load_config
from daemon.local import marker
from daemon.providers import make_provider
from daemon.providers.base import Provider
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.service import Service, _Handle
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync, PassSummary
from daemon.sync.runner import LibraryRunner, Work
from tests.e2e.conftest import LIBMIRROR

FILES = 10


@dataclass
class Gated:
    sandbox: RunningSandbox
    config_path: Path
    root: Path
    store: StateStore
    engine: LibrarySync
    runner: LibraryRunner
    service: Service
    provider: Provider

    @property
    def backend(self) -> Any:
        return self.sandbox.backend

    async def daemon_pass(self) -> tuple[PassSummary, list[dict[str, Any]]]:
        """One pass as the daemon runs it (through the runner, so its state and STATUS line follow)."""
        seen: list[PassSummary] = []
        self.runner.on_pass = seen.append
        with capture_logs() as logs:
            await self.runner._pass(self.engine, Work(full_remote=True, full_local=True))
        return seen[0], logs

    async def confirm(self) -> PassSummary:
        """What ``sync --once --confirm-deletes`` does for this library."""
        return await self.engine.run_pass(confirm_deletes=True)

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [LIBMIRROR, "--config", str(self.config_path), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        row: dict[str, Any] = json.loads(out.stdout)["libraries"][0]
        return row

    def remote_files(self) -> dict[str, bytes]:
        b = self.backend
        prefix = b.path_of(b.nodes[b.root_id]) + "/"
        return {b.path_of(n)[len(prefix) :]: b.read_content(n.id) for n in b.files() if b.path_of(n).startswith(prefix)}

    def local_files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in self.root.rglob("*")
            if p.is_file() and ".libmirror" not in p.relative_to(self.root).parts
        }

    def assert_halted(self, summary: PassSummary, logs: list[dict[str, Any]], words: str) -> None:
        assert summary.held > 0, summary
        assert any(words in r for r in summary.gate_reasons), summary.gate_reasons
        gate_logs = [e for e in logs if e["event"] == "safety_gate"]
        assert gate_logs and any(words in e["reason"] for e in gate_logs), logs
        assert all(e["log_level"] == "error" for e in gate_logs)
        assert self.runner.state.state == "halted"
        line = self.service.status_line()
        assert line.startswith("gated: halted") and words in line, line
        status = self.status()
        assert status["state"] == "halted" and words in status["halted_because"], status

    async def assert_cleared(self) -> None:
        summary, logs = await self.daemon_pass()
        assert not summary.gate_reasons and summary.held == 0, summary
        assert not [e for e in logs if e["event"] == "safety_gate"]
        assert self.runner.state.state == "idle"
        assert "halted" not in self.service.status_line()
        status = self.status()
        assert status["state"] == "idle" and status["halted_because"] is None, status


def _write_config(path: Path, state: Path, root: Path, remote: dict[str, Any], **extra: Any) -> None:
    lines = [f'state_dir = "{state}"', "", "[[library]]", 'name = "gated"', 'provider = "coredata"']
    lines.append(f'local_path = "{root}"')
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["", "[library.remote]"] + [f'{k} = "{v}"' for k, v in remote.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@pytest.fixture(params=[{"max_delete_percent": 50, "max_delete_count": 500}])
async def gated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gated]:
    sandbox = await start_sandbox("coredata", tmp_path / "sandbox", seed=FILES)
    config_path = tmp_path / "config.toml"
    root = tmp_path / "root"
    _write_config(config_path, tmp_path / "state", root, sandbox.remote, **request.param)
    config = load_config(config_path)
    library = config.libraries[0]
    store = await StateStore.open(config.state_dir)
    provider = make_provider(library.remote)
    lib = await store.library_id(library.name)
    engine = LibrarySync(library, store, lib, provider)
    runner = LibraryRunner(library, store, provider_factory=lambda _lib: provider)
    service = Service(config)
    service.handles["gated"] = _Handle(runner)
    gated = Gated(sandbox, config_path, root, store, engine, runner, service, provider)
    try:
        first, _ = await gated.daemon_pass()
        assert len(gated.local_files()) == FILES and gated.runner.state.state == "idle", first
        yield gated
    finally:
        await provider.aclose()
        await store.close()
        await sandbox.stop()
        structlog.contextvars.clear_contextvars()


def _some(files: dict[str, bytes], n: int) -> list[str]:
    return sorted(files)[:n]


@pytest.mark.anyio
async def test_marker_missing_holds_deletes_on_both_sides_until_it_is_back(gated: Gated) -> None:
    local_victim, remote_victim = _some(gated.local_files(), 2)
    (gated.root / local_victim).unlink()
    gated.backend.delete_file(gated.backend.file_by_path(remote_victim).id)
    shutil.rmtree(gated.root / ".libmirror")  # what an unmounted disk looks like
    (gated.root / "still syncing.txt").write_bytes(b"new local file\n")

    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "marker")
    assert local_victim in gated.remote_files()  # no remote delete
    assert (gated.root / remote_victim).exists()  # no local trash
    assert gated.remote_files()["still syncing.txt"] == b"new local file\n"  # the rest keeps syncing

    marker.ensure_marker(gated.root)  # the disk is back
    await gated.assert_cleared()
    assert local_victim not in gated.remote_files()
    assert not (gated.root / remote_victim).exists()


@pytest.mark.anyio
async def test_marker_missing_clears_with_confirm_deletes(gated: Gated) -> None:
    (victim,) = _some(gated.local_files(), 1)
    (gated.root / victim).unlink()
    shutil.rmtree(gated.root / ".libmirror")
    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "marker")
    confirmed = await gated.confirm()
    assert confirmed.deleted == 1 and not confirmed.gate_reasons
    assert marker.marker_present(gated.root)
    await gated.assert_cleared()


@pytest.mark.anyio
async def test_empty_remote_listing_holds_local_trash(gated: Gated) -> None:
    local_before = gated.local_files()
    parents = {node.id: node.parent for node in gated.backend.files()}
    for node in list(gated.backend.files()):
        gated.backend.delete_file(node.id)
    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "remote listing came back empty")
    assert gated.local_files() == local_before

    # the condition clears: the files come back (restored from the trash)
    for node in list(gated.backend.files()):
        gated.backend.update_file(node.id, node.title, node.filename, parents[node.id])
    await gated.assert_cleared()
    assert gated.local_files() == local_before


@pytest.mark.anyio
async def test_empty_local_folder_holds_remote_deletes_until_confirmed(gated: Gated) -> None:
    for path in gated.local_files():
        (gated.root / path).unlink()
    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "local folder is empty")
    assert len(gated.remote_files()) == FILES
    confirmed = await gated.confirm()
    assert confirmed.deleted == FILES and not confirmed.gate_reasons
    assert gated.remote_files() == {}
    await gated.assert_cleared()


@pytest.mark.anyio
async def test_too_many_local_deletes_by_percent_hold_remote_side_rest_keeps_syncing(gated: Gated) -> None:
    for path in _some(gated.local_files(), 6):  # 60 % > 50 %
        (gated.root / path).unlink()
    gated.backend.add_file(None, "from the cloud.txt", b"remote news\n")
    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "remote side: 6 deletes are 60%")
    assert len(gated.remote_files()) == FILES + 1
    assert (gated.root / "from the cloud.txt").read_bytes() == b"remote news\n"  # pulls go on
    confirmed = await gated.confirm()
    assert confirmed.deleted == 6
    await gated.assert_cleared()


@pytest.mark.anyio
async def test_too_many_remote_deletes_by_percent_hold_local_side_and_clear_when_restored(gated: Gated) -> None:
    victims = _some(gated.remote_files(), 6)
    parents = {node.id: node.parent for node in gated.backend.files()}
    for path in victims:
        gated.backend.delete_file(gated.backend.file_by_path(path).id)
    (gated.root / "local news.txt").write_bytes(b"pushed anyway\n")
    summary, logs = await gated.daemon_pass()
    gated.assert_halted(summary, logs, "local side: 6 deletes are 60%")
    assert all((gated.root / p).exists() for p in victims)
    assert gated.remote_files()["local news.txt"] == b"pushed anyway\n"
    # the condition clears: someone restores the files on the server
    for node in list(gated.backend.files()):
        if node.parent == gated.backend.trash_id:
            gated.backend.update_file(node.id, node.title, node.filename, parents[node.id])
    await gated.assert_cleared()
    assert all((gated.root / p).exists() for p in victims)


@pytest.mark.anyio
@pytest.mark.parametrize("gated", [{"max_delete_percent": 100, "max_delete_count": 3}], indirect=True)
@pytest.mark.parametrize("side", ["local", "remote"])
async def test_too_many_deletes_by_count_each_side(gated: Gated, side: str) -> None:
    victims = _some(gated.local_files(), 4)  # 4 > max_delete_count = 3
    for path in victims:
        if side == "local":
            (gated.root / path).unlink()
        else:
            gated.backend.delete_file(gated.backend.file_by_path(path).id)
    summary, logs = await gated.daemon_pass()
    held_side = "remote" if side == "local" else "local"
    gated.assert_halted(summary, logs, f"{held_side} side: 4 deletes exceed max_delete_count = 3")
    confirmed = await gated.confirm()
    assert confirmed.deleted == 4
    assert not set(victims) & set(gated.local_files()) and not set(victims) & set(gated.remote_files())
    await gated.assert_cleared()
