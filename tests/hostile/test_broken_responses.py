"""Broken server answers: each poll that meets one fails with a clear error (or a safety gate), and no
local change is made on the strength of it; once the server is sane again, nothing is left to do."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daemon.sandbox.runner import RunningSandbox
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once

pytestmark = pytest.mark.anyio

Listing = dict[str, Any]


def _objects(edit: Callable[[dict[str, Any]], None]) -> Callable[[Listing], Listing]:
    def change(listing: Listing) -> Listing:
        for obj in listing["objects"]:
            edit(obj)
        return listing

    return change


def _loop(listing: Listing) -> Listing:
    listing["meta"].update(total_count=len(listing["objects"]) * 3, next="/api/v2/files/?limit=1000&offset=0")
    return listing


def _empty(listing: Listing) -> Listing:
    listing["meta"].update(total_count=0, next=None)
    listing["objects"] = []
    return listing


JSON_BREAKS: dict[str, Callable[[Listing], Listing]] = {
    "missing field": _objects(lambda o: o.pop("filename")),
    "mistyped field": _objects(lambda o: o.update(size=str(o["size"]))),
    "object is a list": lambda listing: {**listing, "objects": [[1, 2]] + listing["objects"]},
    "no meta": lambda listing: {"objects": listing["objects"]},
    "negative size": _objects(lambda o: o.update(size=-5)),
    "enormous size": _objects(lambda o: o.update(size=10**19)),
    "next loops back": _loop,
}
RAW_BREAKS: dict[str, tuple[str, bytes]] = {
    "html page with 200": ("text/html", b"<html><body><h1>Maintenance</h1>We'll be back.</body></html>"),
    "invalid json": ("application/json", b'{"meta": {"total_count": 3, "objects": [{"id": '),
    "a json string": ("application/json", b'"objects"'),
}


async def _listing(sb: RunningSandbox) -> Listing:
    headers = {"Authorization": f"apikey {sb.remote['api_user']}:{sb.remote['api_key']}"}
    async with aiohttp.ClientSession(headers=headers) as s, s.get(sb.base_url + "/api/v2/files/?limit=1000") as r:
        data: Listing = await r.json()
    return data


def _serve_files_listing(sb: RunningSandbox, content_type: str, body: bytes) -> None:
    async def hook(request: web.Request) -> web.StreamResponse | None:
        if request.method == "GET" and request.path == "/api/v2/files/":
            return web.Response(status=200, body=body, content_type=content_type)
        return None

    sb.fault_hooks[:] = [hook]


async def test_broken_listings_change_nothing(tmp_path: Path, coredata: RunningSandbox, mirror: Mirror) -> None:
    for i in range(4):
        coredata.backend.add_file(None, f"file-{i}.txt", f"content {i}".encode())
    assert (await sync_once(mirror)).code == 0
    synced = mirror.files()
    (mirror.root / "file-0.txt").write_bytes(b"a local edit, waiting to be pushed")
    expected_local = mirror.files()
    truth = await _listing(coredata)

    cases: list[tuple[str, str, bytes]] = [(name, ct, body) for name, (ct, body) in RAW_BREAKS.items()]
    cases += [
        (name, "application/json", json.dumps(b(copy.deepcopy(truth))).encode()) for name, b in JSON_BREAKS.items()
    ]
    outcomes: dict[str, str] = {}
    for name, content_type, body in cases:
        _serve_files_listing(coredata, content_type, body)
        run = await sync_once(mirror)
        failed = run.named("pass_failed")
        assert run.code == 1 and len(failed) == 1, (name, run.code, run.events[-5:], run.stderr[-3000:])
        outcomes[name] = failed[0]["error"]
        assert mirror.files() == expected_local, name  # nothing pulled, trashed or overwritten
        trash = mirror.root / ".libmirror" / "trash"
        assert not any(p.is_file() for p in trash.rglob("*")), name
        assert coredata.backend.read_content(coredata.backend.file_by_path("file-0.txt").id) == b"content 0", name
    # each error names what was wrong, so an operator can take it to the vendor
    assert "got text/html" in outcomes["html page with 200"]
    assert "unparseable JSON" in outcomes["invalid json"]
    assert "lacks field 'filename'" in outcomes["missing field"]
    assert "field 'size' has type str" in outcomes["mistyped field"]
    assert "impossible size -5" in outcomes["negative size"]
    assert "impossible size 10000000000000000000" in outcomes["enormous size"]
    assert "loops back" in outcomes["next loops back"]
    assert "has no 'meta'" in outcomes["no meta"]

    coredata.fault_hooks.clear()
    healed = await sync_once(mirror)
    assert healed.code == 0
    assert coredata.backend.read_content(coredata.backend.file_by_path("file-0.txt").id) == expected_local["file-0.txt"]
    assert set(mirror.files()) == set(synced)


async def test_a_listing_that_suddenly_returns_nothing_deletes_nothing(
    coredata: RunningSandbox, mirror: Mirror
) -> None:
    for i in range(3):
        coredata.backend.add_file(None, f"keep-{i}.txt", b"keep me")
    assert (await sync_once(mirror)).code == 0
    before = mirror.files()
    _serve_files_listing(coredata, "application/json", json.dumps(_empty(await _listing(coredata))).encode())
    run = await sync_once(mirror)
    assert run.code == 3, run.events[-5:]  # the empty-listing safety gate held the deletes back
    assert any("empty" in e.get("reason", e.get("error", "")) for e in run.events if e.get("level") == "error"), [
        e for e in run.events if e.get("level") in ("error", "warning")
    ]
    assert mirror.files() == before
    coredata.fault_hooks.clear()
    assert (await sync_once(mirror)).code == 0
    assert mirror.files() == before


async def test_an_error_page_for_one_download_fails_only_that_file(coredata: RunningSandbox, mirror: Mirror) -> None:
    good = coredata.backend.add_file(None, "good.txt", b"good")
    bad = coredata.backend.add_file(None, "bad.txt", b"bad")

    async def hook(request: web.Request) -> web.StreamResponse | None:
        if request.path == f"/api/v2/files/{bad.id}/content/":
            return web.Response(status=200, text="<html>oops</html>", content_type="text/html")
        return None

    coredata.fault_hooks.append(hook)
    run = await sync_once(mirror)
    assert run.code == 1
    assert mirror.files() == {"good.txt": b"good"}
    assert not any((mirror.root / ".libmirror" / "tmp").glob("*"))  # nothing half-written left behind
    coredata.fault_hooks.clear()
    assert (await sync_once(mirror)).code == 0
    assert mirror.files() == {"good.txt": b"good", "bad.txt": b"bad"}
    assert good.id != bad.id
