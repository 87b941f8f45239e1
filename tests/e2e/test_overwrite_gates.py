"""Mass overwrites are held by the safety gates like mass deletes (DESIGN rule 5), on both sides.

A script rewrites every file on the server: the local versions stay. (Every local file rewritten is
held the same way for every provider: ``test_every_provider.py``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Mirror, Sandbox, write_config

STRICT = {"max_delete_count": 1, "max_delete_percent": 1, "max_overwrite_count": 1, "max_overwrite_percent": 1}


def _gate_events(mirror: Mirror, result: Any) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == "safety_gate"]


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
