"""`libmirror sync --once` against a real `libmirror sandbox coreplus` process (push-only library)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from daemon.state.store import STATE_FILE
from tests.coreplus_api import CorePlusAPI
from tests.e2e.conftest import LIBMIRROR, Mirror, Sandbox, running_sandbox, write_config

CorePlusSandbox = Sandbox[CorePlusAPI]


def start(tmp_path: Path, *extra: str, seed: int = 3) -> AbstractContextManager[CorePlusSandbox]:
    return running_sandbox(tmp_path / "sandbox-data", seed, CorePlusAPI, *extra, provider="coreplus")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[CorePlusSandbox]:
    with start(tmp_path) as running:
        yield running


def push_mirror(tmp_path: Path, sandbox: CorePlusSandbox, **library: Any) -> Mirror:
    mirror = write_config(tmp_path, sandbox.remote, provider="coreplus", direction="push", **library)
    mirror.root.mkdir()
    return mirror


def put(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def by_event(mirror: Mirror, result: subprocess.CompletedProcess[str], event: str) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == event]


def test_client_folders_upload_once_and_changes_are_explained(tmp_path: Path, sandbox: CorePlusSandbox) -> None:
    anna, ben, _ = sandbox.api.holdings()
    by_name = f"{anna['firstName']} {anna['lastName']}"
    by_id = f"Whoever ({ben['clientId'].lower()})"
    mirror = push_mirror(tmp_path, sandbox)
    root = mirror.root
    put(root, f"{by_name}/letter.txt", b"Dear Anna\n")
    put(root, f"{by_name}/Befunde/2024/scan März.pdf", b"%PDF" + bytes(range(256)) * 40)
    put(root, f"{by_id}/report.docx", b"report\n")
    put(root, f"{by_id}/a/b/c/deep.txt", b"deep\n")
    put(root, "Nobody Known/ignored.txt", b"not uploaded\n")
    put(root, "loose.txt", b"not in a client folder\n")

    first = mirror.sync()
    files = sandbox.api.files_by_client()
    assert files[anna["clientId"]] == ["Befunde/2024/scan März.pdf", "letter.txt"]
    assert files[ben["clientId"]] == ["a/b/c/deep.txt", "report.docx"]
    assert sandbox.api.folders_by_client()[ben["clientId"]] == ["a", "a/b", "a/b/c"]
    assert sum(len(v) for v in files.values()) == 4  # nothing for the unknown folder or the root
    (holding,) = [c for c in sandbox.api.holdings() if c["clientId"] == anna["clientId"]]
    scan = next(i for i in holding["items"] if i["name"] == "scan März.pdf")
    assert sandbox.api.content(scan["fileId"]) == (root / by_name / "Befunde/2024/scan März.pdf").read_bytes()
    unmatched = by_event(mirror, first, "client_folder_unmatched")
    assert [e["folder"] for e in unmatched] == ["Nobody Known"]
    unsupported = {e["path"]: e["reason"] for e in by_event(mirror, first, "action_unsupported")}
    assert "client folder" in unsupported["loose.txt"]

    accepted = sandbox.api.stats()["accepted"]
    second = mirror.sync()
    assert [e for e in by_event(mirror, second, "action")] == []
    assert sandbox.api.files_by_client() == files
    assert sandbox.api.stats()["accepted"] - accepted <= 1  # at most the client list, for the unknown folder

    (root / by_name / "letter.txt").write_bytes(b"Dear Anna, corrected\n")
    (root / by_id / "report.docx").unlink()
    third = mirror.sync()
    (upload,) = by_event(mirror, third, "action")
    assert upload["path"] == f"{by_name}/letter.txt" and "old copy stays" in upload["detail"]
    (skip,) = [e for e in by_event(mirror, third, "skipped") if e["path"] == f"{by_id}/report.docx"]
    assert "cannot delete" in skip["detail"]
    after = sandbox.api.files_by_client()
    assert after[anna["clientId"]] == ["Befunde/2024/scan März.pdf", "letter.txt", "letter.txt"]
    assert after[ben["clientId"]] == files[ben["clientId"]]  # the deleted file stays in coreplus
    fourth = mirror.sync()
    assert by_event(mirror, fourth, "action") == []
    assert sandbox.api.files_by_client() == after


def test_sandbox_rejects_a_token_for_another_url(sandbox: CorePlusSandbox) -> None:
    client = sandbox.api.holdings()[0]["clientId"]
    body, ctype = sandbox.api.multipart(
        {"name": "x.txt", "size": "1", "isFolder": False, "entity": "Client", "primaryDomainKey": client},
        ("x.txt", b"x"),
    )
    other_url = sandbox.api.base + "/API/Core/v2/Client/"
    reply = sandbox.api.call("POST", "/API/Core/v2.1/File/", body=body, content_type=ctype, claims={"url": other_url})
    assert reply.status == 401
    assert reply.json()["statusMessages"][0]["code"] == "InvalidToken"
    assert sandbox.api.files_by_client()[client] == []
    ok = sandbox.api.call("POST", "/API/Core/v2.1/File/", body=body, content_type=ctype)
    assert ok.status == 201  # the same request with an honest token is accepted


def test_direction_other_than_push_is_a_config_error(tmp_path: Path, sandbox: CorePlusSandbox) -> None:
    mirror = write_config(tmp_path, sandbox.remote, provider="coreplus", direction="two-way")
    result = mirror.sync(check=2)
    assert 'direction = "push"' in result.stderr + result.stdout


def test_direction_left_out_means_push(tmp_path: Path, sandbox: CorePlusSandbox) -> None:
    mirror = write_config(tmp_path, sandbox.remote, provider="coreplus")
    mirror.sync(check=0)


def synced_paths(state_dir: Path) -> set[str]:
    with sqlite3.connect(state_dir / STATE_FILE) as db:
        return {row[0] for row in db.execute("SELECT path FROM synced WHERE is_dir = 0")}


def test_crash_mid_run_does_not_duplicate_finished_uploads(tmp_path: Path) -> None:
    with start(tmp_path, "-o", "upload_delay=0.25", seed=1) as sandbox:
        (client,) = sandbox.api.holdings()
        folder = f"{client['firstName']} {client['lastName']}"
        mirror = push_mirror(tmp_path, sandbox, concurrency=3)
        names = [f"doc {i:02d}.txt" for i in range(30)]
        for i, name in enumerate(names):
            put(mirror.root, f"{folder}/{name}", f"document {i}\n".encode())
        cmd = [LIBMIRROR, "--config", str(mirror.config), "--log-format", "json", "sync", "--once"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(sandbox.api.files_by_client()[client["clientId"]]) < 8:
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        finished = {p.rpartition("/")[2] for p in synced_paths(tmp_path / "state")}
        before = Counter(sandbox.api.files_by_client()[client["clientId"]])
        assert finished and len(finished) < len(names)
        assert all(before[name] == 1 for name in finished)

        mirror.sync()
        after = Counter(sandbox.api.files_by_client()[client["clientId"]])
        assert set(after) == set(names)  # everything arrived
        assert all(after[name] == 1 for name in finished)  # nothing recorded as done went twice
        # only uploads in flight at the kill (the server finished them, the client never heard) may repeat
        assert sum(after.values()) - len(names) <= 3
        assert by_event(mirror, mirror.sync(), "action") == []
