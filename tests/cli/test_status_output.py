"""What every form of ``libmirror status`` prints: no configured secret and no raw server page, and the
``--json`` shape exactly as the README documents it."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from daemon.health import failure_note
from daemon.state.store import StateStore
from tests.cli.test_status import run, write_config

REPO = Path(__file__).resolve().parents[2]
KEY = "not-a-real-key-0123"  # the configured api key (tests.cli.test_status.run sets it)
PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def _store_failures(state: Path) -> None:
    async def write() -> None:
        store = await StateStore.open(state)
        lib = await store.library_id("board")
        async with store.transaction(lib) as tx:
            # a server that echoes the key it refused, and a proxy's page (cut like a stored body may be)
            await tx.record_failure("a.pdf", f"GET /x: key {KEY} unknown", time.time(), base=60, factor=2, cap=3600)
            await tx.record_failure("b.pdf", f"HTTP 502 {PAGE}", time.time(), base=60, factor=2, cap=3600)
            await tx.record_failure("c.pdf", f"HTTP 503 {PAGE[:45]}", time.time(), base=60, factor=2, cap=3600)
            await tx.set_status("daemon_state", "retrying")
            await tx.set_status("daemon_detail", f"TransientError: HTTP 502 {PAGE}")
            note = failure_note(f"AuthError: apikey u:{KEY} refused", auth=True, at=datetime.now().astimezone())
            await tx.set_status("last_failure", note)
        await store.close()

    anyio.run(write)


def test_no_secret_and_no_server_page_in_any_form(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    _store_failures(tmp_path / "state")
    outputs = {args: run(config, "status", *args) for args in ((), ("--json",), ("--check",), ("--metrics",))}
    for args, result in outputs.items():
        assert result.returncode == (2 if args == ("--check",) else 0), (args, result.stderr)
        shown = result.stdout + result.stderr
        assert KEY not in shown, args
        assert "<html" not in shown.lower() and "<title" not in shown and "<center>" not in shown, args
    [row] = json.loads(outputs[("--json",)].stdout)["libraries"]
    errors = {b["path"]: b["last_error"] for b in row["backoff"]}
    assert errors == {
        "a.pdf": "GET /x: key [redacted] unknown",
        "b.pdf": "HTTP 502 [HTML page: 502 Bad Gateway]",
        "c.pdf": "HTTP 503 [HTML page]",  # the page was cut before its title ended
    }
    assert row["error"] == "TransientError: HTTP 502 [HTML page: 502 Bad Gateway]"
    assert row["last_failure"]["error"] == "AuthError: apikey u:[redacted] refused"
    assert "board: backoff b.pdf (1x, next " in outputs[()].stdout
    assert "HTTP 502 [HTML page: 502 Bad Gateway]" in outputs[()].stdout
    assert outputs[("--check",)].stdout.startswith(
        "CRITICAL board: credentials rejected: AuthError: apikey u:[redacted]"
    )


def _documented_shape() -> Any:
    """The README's ``status --json`` example, its ``// comments`` removed."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("### `status --json`", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(re.sub(r"\s//[^\n]*", "", block))


def _keys(value: Any, documented: Any, where: str = "") -> set[str]:
    """Every key path of ``value`` (``libraries[].backoff[].path``; a list by its first item), not
    descending where ``documented`` is null (the README documents some values in a comment:
    ``null, // or {...}``)."""
    found: set[str] = set()
    if documented is None:
        return found
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{where}.{key}".lstrip(".")
            found |= {path} | _keys(inner, documented.get(key) if isinstance(documented, dict) else inner, path)
    elif isinstance(value, list) and value:
        found |= _keys(value[0], documented[0] if isinstance(documented, list) and documented else None, f"{where}[]")
    return found


def test_the_json_shape_is_the_documented_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    _store_failures(tmp_path / "state")

    async def gate_and_pause() -> None:
        store = await StateStore.open(tmp_path / "state")
        lib = await store.library_id("board")
        async with store.transaction(lib) as tx:
            await tx.set_status("gate", "would delete 3 of 6 synced files remotely")
            counts = {"local_deletes": 0, "remote_deletes": 3, "local_overwrites": 0, "remote_overwrites": 0}
            await tx.set_status("gate_counts", json.dumps(counts))
            await tx.set_status("unsyncable", json.dumps({"count": 1, "paths": ["bad\\x81name.txt"]}))
        await store.close()

    anyio.run(gate_and_pause)
    assert run(config, "pause", "board").returncode == 0
    result = run(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    documented = _documented_shape()
    # every documented key is there, and nothing undocumented: keys are only ever added, with the README
    # (where either side is null, as the daemon here, neither is descended into)
    assert _keys(shown, documented) == _keys(documented, shown)
