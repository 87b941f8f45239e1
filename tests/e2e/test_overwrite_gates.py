"""Mass overwrites are held by the safety gates like mass deletes (DESIGN rule 5), on both sides.

Ransomware or a bad script rewrites every local file: without the overwrite gate each one was uploaded
over (TimeTap: in place of) the server's version, and not one original was left anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mirror, Sandbox, start_sandbox_process, write_config
from tests.timetap_api import TimeTapAPI

STRICT = {"max_delete_count": 1, "max_delete_percent": 1, "max_overwrite_count": 1, "max_overwrite_percent": 1}


def _gate_events(mirror: Mirror, result: Any) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == "safety_gate"]


def _encrypt_all(mirror: Mirror) -> dict[str, bytes]:
    originals = mirror.files()
    for path, data in originals.items():
        (mirror.root / path).write_bytes(b"ENCRYPTED" + data[::-1])
    return originals


def test_coredata_local_overwrite_of_every_file_is_held(tmp_path: Path, sandbox: Sandbox) -> None:
    mirror = write_config(tmp_path, sandbox.remote, **STRICT)
    mirror.sync()
    before = {p: sandbox.api.content(o["id"]) for p, o in sandbox.api.tree().items()}
    assert len(before) == 12
    _encrypt_all(mirror)
    held = mirror.sync(check=3)
    gates = _gate_events(mirror, held)
    assert gates and all(e["remote_overwrites"] == 12 for e in gates), gates
    assert not [e for e in mirror.events(held) if e["event"] == "action" and e["action"] == "upload"]
    assert {p: sandbox.api.content(o["id"]) for p, o in sandbox.api.tree().items()} == before
    assert "max_overwrite" in held.stderr and "release-gate board" in held.stderr

    mirror.sync("--confirm-deletes")  # the operator has looked and confirms
    assert all(sandbox.api.content(o["id"]).startswith(b"ENCRYPTED") for o in sandbox.api.tree().values())


def test_coredata_remote_overwrite_of_every_file_is_held(tmp_path: Path, sandbox: Sandbox) -> None:
    mirror = write_config(tmp_path, sandbox.remote, **STRICT)
    mirror.sync()
    local_before = mirror.files()
    for obj in sandbox.api.tree().values():
        assert sandbox.api.update(obj["id"], b"rewritten by a script").status in (200, 201, 204)
    held = mirror.sync(check=3)
    gates = _gate_events(mirror, held)
    assert gates and all(e["local_overwrites"] == 12 for e in gates), gates
    assert mirror.files() == local_before


@pytest.fixture
def timetap(tmp_path: Path) -> Any:
    proc, info = start_sandbox_process(tmp_path / "tt-data", 12, provider="timetap")
    try:
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_timetap_local_overwrite_of_every_file_is_held(tmp_path: Path, timetap: dict[str, Any]) -> None:
    remote = {k: str(v) for k, v in timetap["remote"].items()}
    api = TimeTapAPI(timetap["remote"])
    mirror = write_config(tmp_path, remote, provider="timetap", **STRICT)
    mirror.sync()
    originals = _encrypt_all(mirror)
    assert len(originals) == 12
    held = mirror.sync(check=3)
    assert [e["remote_overwrites"] for e in _gate_events(mirror, held)] == [12]
    live = {p: api.content(o) for p, o in api.tree().items() if not p.endswith("/")}
    assert live == originals, "an original version left the server"
