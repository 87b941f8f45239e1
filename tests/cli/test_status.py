"""``libmirror status`` reads the state store without writing it, and prints no secret from it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from daemon.state.schema import SCHEMA_VERSION
from daemon.state.store import STATE_FILE, StateStore
from tests.e2e.conftest import LIBMIRROR


def write_config(tmp_path: Path, *, allow_root: bool = True, libraries: tuple[str, ...] = ("board",)) -> Path:
    config = tmp_path / "config.toml"
    text = f'state_dir = "{tmp_path}/state"\nallow_root = {str(allow_root).lower()}\n'
    for name in libraries:
        text += (
            f'\n[[library]]\nname = "{name}"\nprovider = "coredata"\nlocal_path = "{tmp_path}/{name}"\n'
            '[library.remote]\nbase_url = "http://127.0.0.1:9"\nroot = "r"\napi_user = "u"\n'
            'api_key_env = "LIBMIRROR_TEST_KEY"\n'
        )
    config.write_text(text)
    config.chmod(0o600)
    return config


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIBMIRROR, "--config", str(config), "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LIBMIRROR_TEST_KEY": "not-a-real-key-0123"},
    )


def tree(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def test_no_state_yet_is_said_and_nothing_is_created(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    before = tree(tmp_path)
    table = run(config, "status")
    assert table.returncode == 0, table.stderr
    assert "no state yet: run `libmirror sync --once` or start the service" in table.stdout
    as_json = run(config, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["exists"] is False and report["libraries"] == [] and "no state yet" in report["message"]
    assert tree(tmp_path) == before  # no state dir, no state file, no lock file
    assert not (tmp_path / "state").exists()


def test_a_store_of_another_schema_version_is_reported_not_migrated(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def old_store() -> None:
        store = await StateStore.open(tmp_path / "state")
        await store.library_id("board")
        await store.close()

    anyio.run(old_store)
    db = tmp_path / "state" / STATE_FILE
    with sqlite3.connect(db) as conn:  # what version 1 looked like: no pending_replace table
        conn.execute("DROP TABLE pending_replace")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    result = run(config, "status", "--json")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert str(tmp_path / "state") in result.stderr
    assert f"schema version 1, this libmirror reads version {SCHEMA_VERSION}" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'pending_replace'").fetchall()


# secret-shaped texts a server may send back in an error body, as the daemon stores them
TOKEN = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SIGNATURE = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsaWJtaXJyb3IifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
BACKOFF_ERROR = (
    f'HTTP 500 from server: {{"detail": "upstream failed", "access_token": "{TOKEN}"}}\n'
    f"Authorization: Bearer {BEARER}\n"
    f"GET https://blobs.example/x?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SIGNATURE} failed " + "x" * 2000
)
DETAIL = f"POST /api/v2/files/ failed: 401 {{'api_key': '{TOKEN}'}} see https://h/u?signature={SIGNATURE}"


def test_stored_errors_are_redacted_and_cut_in_table_and_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def failing_store() -> None:
        store = await StateStore.open(tmp_path / "state")
        lib = await store.library_id("board")
        async with store.transaction(lib) as tx:
            await tx.record_failure("docs/report.pdf", BACKOFF_ERROR, time.time(), base=60, factor=2, cap=3600)
            await tx.set_status("daemon_state", "retrying")
            await tx.set_status("daemon_detail", DETAIL)
        await store.close()

    anyio.run(failing_store)
    as_json = run(config, "status", "--json")
    table = run(config, "status")
    for result in (as_json, table):
        assert result.returncode == 0, result.stderr
        for secret in (TOKEN, SIGNATURE, BEARER, "AKIAEXAMPLE"):
            assert secret not in result.stdout + result.stderr
        assert "[redacted]" in result.stdout
    [row] = json.loads(as_json.stdout)["libraries"]
    assert row["state"] == "retrying"
    [backoff] = row["backoff"]
    assert backoff["path"] == "docs/report.pdf" and backoff["attempts"] == 1
    error = backoff["last_error"]
    assert error.startswith("HTTP 500 from server:") and "upstream failed" in error  # still says what failed
    assert len(error) <= 300 and error.endswith("…")
    assert "\n" not in error
    assert row["error"].startswith("POST /api/v2/files/ failed: 401") and "[redacted]" in row["error"]
    assert "board: backoff docs/report.pdf" in table.stdout and "board: retrying: POST" in table.stdout


def test_a_library_the_store_has_not_seen_is_shown_not_registered(tmp_path: Path) -> None:
    config = write_config(tmp_path, libraries=("board", "later"))

    async def store_with_board() -> None:
        store = await StateStore.open(tmp_path / "state")
        await store.library_id("board")
        await store.close()

    anyio.run(store_with_board)
    result = run(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["library"]: row for row in json.loads(result.stdout)["libraries"]}
    assert rows["later"]["state"] == "new" and rows["later"]["files"] == 0 and rows["later"]["last_pass"] is None
    with sqlite3.connect(tmp_path / "state" / STATE_FILE) as conn:
        assert conn.execute("SELECT name FROM libraries").fetchall() == [("board",)]


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal only applies when running as root")
def test_sync_refuses_root_unless_allowed(tmp_path: Path) -> None:
    config = write_config(tmp_path, allow_root=False)
    for command in (["sync", "--once"], ["sync", "--once", "--dry-run"]):
        result = run(config, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert "refusing to run as root" in result.stderr and "allow_root = true" in result.stderr
        assert str(config) in result.stderr
        assert result.stdout == ""  # no pass, no log line: nothing was done
    assert not (tmp_path / "state").exists() and not (tmp_path / "board").exists()
    # status only reads: root may look (it says there is no state yet)
    assert run(config, "status").returncode == 0
