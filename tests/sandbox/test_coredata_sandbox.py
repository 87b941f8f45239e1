"""The CoreData sandbox over real HTTP on 127.0.0.1, as a client would meet it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web

from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.sandbox.seed import sample_files

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sandbox(tmp_path: Path, anyio_backend: str) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("coredata", tmp_path / "sbx", page_limit_max=50)
    try:
        yield running
    finally:
        await running.stop()


def auth(sb: RunningSandbox) -> dict[str, str]:
    return {"Authorization": f"apikey {sb.remote['api_user']}:{sb.remote['api_key']}"}


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.base_url, headers=auth(sandbox)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


def file_id_from(resp: aiohttp.ClientResponse) -> str:
    location = resp.headers["Location"]
    assert location.startswith("/api/v2/files/") and location.endswith("/")
    return location.rstrip("/").rsplit("/", 1)[1]


async def download(http: aiohttp.ClientSession, file_id: str) -> bytes:
    async with http.get(f"/api/v2/files/{file_id}/content/", allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(location) as blob:
        assert blob.status == 200
        return await blob.read()


# ---- auth and URL rules ----------------------------------------------------------------------


async def test_auth_is_required_and_checked(sandbox: RunningSandbox) -> None:
    user, key = sandbox.remote["api_user"], sandbox.remote["api_key"]
    async with aiohttp.ClientSession(base_url=sandbox.base_url) as s:
        for headers in ({}, {"Authorization": f"apikey {user}:wrong"}, {"Authorization": f"Bearer {key}"}):
            async with s.get("/api/v2/files/", headers=headers) as resp:
                assert resp.status == 401
                assert "error_message" in await resp.json()
        async with s.get("/api/v2/files/", headers={"Authorization": f"apikey {key}"}) as resp:
            assert resp.status == 401  # key-only is a v3 form
        async with s.get("/api/v2/files/", headers={"Authorization": f"ApiKey {user}:{key}"}) as resp:
            assert resp.status == 200
        url = "/api/v3/blob/presigned-upload-url/?content_type=text/plain&content_length=1"
        async with s.post(url, headers={"Authorization": f"apikey {key}"}) as resp:
            assert resp.status in (200, 201)
        async with s.post(url) as resp:
            assert resp.status == 401


async def test_missing_trailing_slash_redirects_with_query(sandbox: RunningSandbox) -> None:
    async with (
        aiohttp.ClientSession(base_url=sandbox.base_url) as s,
        s.get("/api/v2/files?limit=1&order_by=modified", allow_redirects=False) as resp,
    ):
        assert resp.status == 301
        assert resp.headers["Location"] == "/api/v2/files/?limit=1&order_by=modified"


async def test_unknown_ids_and_routes_are_404_json(http: aiohttp.ClientSession) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for url in (
        f"/api/v2/files/{missing}/",
        f"/api/v2/folders/{missing}/",
        f"/api/v2/files/{missing}/content/",
        f"/api/v2/projects/{missing}/files/",
        "/api/v2/nothing/",
    ):
        body = await get_json(http, url, status=404)
        assert body["error_message"]


# ---- listings --------------------------------------------------------------------------------


async def test_paging_follows_next_and_sees_total_count_move(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    for i in range(25):
        sandbox.backend.add_file(None, f"f{i:02}.txt", f"content {i}".encode())
    first = await get_json(http, "/api/v2/files/?limit=10&order_by=created")
    assert first["meta"]["total_count"] == 25 and first["meta"]["previous"] is None
    assert [o["filename"] for o in first["objects"]] == [f"f{i:02}.txt" for i in range(10)]
    nxt = first["meta"]["next"]
    assert nxt.startswith("/api/v2/files/?")
    assert dict(parse_qsl(urlsplit(nxt).query)) == {"order_by": "created", "limit": "10", "offset": "10"}
    sandbox.backend.add_file(None, "late.txt", b"late")
    second = await get_json(http, nxt)
    assert second["meta"]["total_count"] == 26
    assert second["meta"]["previous"] is not None
    third = await get_json(http, second["meta"]["next"])
    assert third["meta"]["next"] is None
    assert [o["filename"] for o in third["objects"]][-1] == "late.txt"

    default = await get_json(http, "/api/v2/files/")
    assert default["meta"]["limit"] == 20 and len(default["objects"]) == 20
    for limit in (0, 5000):
        capped = await get_json(http, f"/api/v2/files/?limit={limit}")
        assert capped["meta"]["limit"] == 50 and len(capped["objects"]) == 26
    await get_json(http, "/api/v2/files/?limit=-1", status=400)
    await get_json(http, "/api/v2/files/?offset=x", status=400)


async def test_filters_and_ordering(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    backend = sandbox.backend
    folder = backend.add_folder(None, "Sub")
    a = backend.add_file(None, "a.txt", b"a")
    b = backend.add_file(folder.id, "b.txt", b"b")
    c = backend.add_file(folder.id, "c.txt", b"c")

    in_folder = await get_json(http, f"/api/v2/files/?parent={folder.id}")
    assert [o["id"] for o in in_folder["objects"]] == [b.id, c.id]
    in_root = await get_json(http, f"/api/v2/folders/?parent={backend.root_id}")
    assert [o["id"] for o in in_root["objects"]] == [folder.id]

    cursor = c.modified
    assert (await get_json(http, f"/api/v2/files/?modified__gt={cursor}"))["objects"] == []
    backend.set_content(a.id, b"a2")
    changed = await get_json(http, f"/api/v2/files/?modified__gt={cursor}")
    assert [o["id"] for o in changed["objects"]] == [a.id]
    assert changed["objects"][0]["modified"] > cursor
    gte = await get_json(http, f"/api/v2/files/?modified__gte={cursor}&order_by=modified")
    assert [o["id"] for o in gte["objects"]] == [c.id, a.id]
    window = await get_json(http, f"/api/v2/files/?modified__gt={b.created}&modified__lte={cursor}")
    assert [o["id"] for o in window["objects"]] == [c.id]
    short = cursor.split(".")[0]  # the doc's form without microseconds is accepted
    assert len((await get_json(http, f"/api/v2/files/?modified__lt={short}"))["objects"]) <= 2

    newest = await get_json(http, "/api/v2/files/?order_by=-modified")
    assert [o["id"] for o in newest["objects"]] == [a.id, c.id, b.id]
    oldest = await get_json(http, "/api/v2/files/?order_by=modified")
    assert [o["id"] for o in oldest["objects"]] == [b.id, c.id, a.id]

    for bad in (
        "modified__gt=yesterday",
        "modified__gt=2023-10-25T19:01:18%2B00:00",
        "order_by=size",
        "filename=a.txt",
        "modified__ne=2023-10-25T19:01:18",
    ):
        body = await get_json(http, f"/api/v2/files/?{bad}", status=400)
        assert body["error_message"]
        await get_json(http, f"/api/v2/folders/?{bad}", status=400)


# ---- download --------------------------------------------------------------------------------


async def test_download_redirects_to_presigned_url(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    data = bytes(range(256)) * 300
    node = sandbox.backend.add_file(None, "Größe.bin", data)
    async with http.get(f"/api/v2/files/{node.id}/content/", allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    query = dict(parse_qsl(urlsplit(location).query))
    assert urlsplit(location).path == f"/laika/{node.blob_name}"
    assert {"AWSAccessKeyId", "Expires", "Signature", "response-content-type"} <= query.keys()
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(location) as blob:
            assert blob.status == 200
            assert await blob.read() == data
            assert blob.headers["Content-Length"] == str(len(data))
            assert blob.headers["Content-Type"] == "application/octet-stream"
            assert blob.headers["Accept-Ranges"] == "bytes"
            assert "Last-Modified" in blob.headers
            assert blob.headers["Content-Disposition"] == "attachment; filename*=utf-8''Gr%C3%B6%C3%9Fe.bin"
        async with anonymous.get(location, headers={"Range": "bytes=10-19"}) as part:
            assert part.status == 206
            assert await part.read() == data[10:20]
            assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        tampered = location.replace("Signature=", "Signature=x")
        async with anonymous.get(tampered) as refused:
            assert refused.status == 403
        async with anonymous.put(location, data=b"x") as wrong_method:
            assert wrong_method.status in (403, 404)
        sandbox.backend.presign_ttl = -5
        async with http.get(f"/api/v2/files/{node.id}/content/", allow_redirects=False) as resp:
            expired = resp.headers["Location"]
        async with anonymous.get(expired) as refused:
            assert refused.status == 403
            assert "expired" in (await refused.text()).lower()


# ---- create ----------------------------------------------------------------------------------


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        if isinstance(value, bytes):
            data.add_field(name, value, filename="upload.bin", content_type="application/octet-stream")
        else:
            data.add_field(name, value)
    return data


async def test_create_file_multipart(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    root = sandbox.remote["root"]
    content = "Grüße\n".encode() * 1000
    async with http.post(
        "/api/v2/files/", data=form(content=content, filename="Grüße.txt", title="Grüße", parent=root)
    ) as resp:
        assert resp.status == 201
        file_id = file_id_from(resp)
    detail = await get_json(http, f"/api/v2/files/{file_id}/")
    assert detail["digest"] == hashlib.md5(content).hexdigest()
    assert detail["size"] == len(content)
    assert detail["path"] == "/domain/spaces/Sandbox/Grüße.txt"
    assert detail["type"] == "File" and detail["space"]["id"] == root
    assert await download(http, file_id) == content

    # a second file with the same name in the same folder is allowed
    async with http.post(
        "/api/v2/files/", data=form(content=b"other", filename="Grüße.txt", title="Grüße", parent=root)
    ) as resp:
        assert resp.status == 201

    bad_forms = [
        form(filename="x.txt", title="x", parent=root),
        form(content=b"x", title="x", parent=root),
        form(content=b"x", filename="x.txt", parent=root),
        form(content=b"x", filename="x.txt", title="x"),
        form(content=b"x", filename="x.txt", title="x", parent=sandbox.backend.trash_id),
        form(content=b"x", filename="x.txt", title="x", parent="00000000-0000-0000-0000-000000000000"),
    ]
    for bad in bad_forms:
        async with http.post("/api/v2/files/", data=bad) as resp:
            assert resp.status in (400, 404)
            assert "error_message" in await resp.json()
    async with http.post("/api/v2/files/", json={"filename": "x"}) as resp:
        assert resp.status == 400
    files = await get_json(http, "/api/v2/files/")
    assert files["meta"]["total_count"] == 2


async def test_presigned_blob_create_and_update(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    key_only = {"Authorization": f"apikey {sandbox.remote['api_key']}"}
    content = b"blob content " * 5000

    async def new_blob(body: bytes) -> str:
        url = f"/api/v3/blob/presigned-upload-url/?content_type=text/plain&content_length={len(body)}"
        async with http.post(url, headers=key_only) as resp:
            assert resp.status in (200, 201)
            info = await resp.json()
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.put(info["presignedUrl"], data=body + b"!") as wrong:
                assert wrong.status == 400
            async with anonymous.put(info["presignedUrl"], data=body) as put:
                assert put.status == 201
        return str(info["blobName"])

    for bad in ("content_type=text/plain", "content_length=5", "content_type=a&content_length=-1"):
        async with http.post(f"/api/v3/blob/presigned-upload-url/?{bad}", headers=key_only) as resp:
            assert resp.status == 400

    name = await new_blob(content)
    async with http.post(
        "/api/v2/files/",
        data=form(blob_name=name, filename="big.txt", title="big", parent=sandbox.remote["root"]),
    ) as resp:
        assert resp.status == 201
        file_id = file_id_from(resp)
    detail = await get_json(http, f"/api/v2/files/{file_id}/")
    assert detail["digest"] == hashlib.md5(content).hexdigest() and detail["size"] == len(content)
    assert await download(http, file_id) == content

    async with http.post(
        "/api/v2/files/",
        data=form(blob_name="0" * 32, filename="x.txt", title="x", parent=sandbox.remote["root"]),
    ) as resp:
        assert resp.status == 400

    newer = b"newer content"
    name2 = await new_blob(newer)
    url = f"/api/v2/files/{file_id}/content/?blob_name={name2}&digest={'0' * 32}"
    async with http.put(url) as resp:
        assert resp.status == 400
    url = f"/api/v2/files/{file_id}/content/?blob_name={name2}&digest={hashlib.md5(newer).hexdigest()}"
    async with http.put(url) as resp:
        assert resp.status == 201
        assert resp.headers["X-Coredata-fields-filedigest"] == hashlib.md5(newer).hexdigest()
        assert resp.headers["X-Coredata-fields-snapshot-id"] != detail["snapshot_id"]
    assert await download(http, file_id) == newer


# ---- update, move, delete ---------------------------------------------------------------------


async def test_content_update_with_snapshot_precondition(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    node = sandbox.backend.add_file(None, "doc.txt", b"v1")
    before = await get_json(http, f"/api/v2/files/{node.id}/")
    url = f"/api/v2/files/{node.id}/content/?filename=doc.md&snapshot_id={before['snapshot_id']}"
    headers = {"Content-Type": "application/octet-stream"}
    async with http.put(url, data=b"version two", headers=headers) as resp:
        assert resp.status == 201
        assert resp.headers["X-Coredata-fields-filedigest"] == hashlib.md5(b"version two").hexdigest()
        new_snapshot = resp.headers["X-Coredata-fields-snapshot-id"]
    after = await get_json(http, f"/api/v2/files/{node.id}/")
    assert after["snapshot_id"] == new_snapshot != before["snapshot_id"]
    assert after["filename"] == "doc.md" and after["modified"] > before["modified"]
    assert after["size"] == len(b"version two")
    async with http.put(url, data=b"stale writer", headers=headers) as resp:
        assert resp.status == 409
        assert "error_message" in await resp.json()
    assert await download(http, node.id) == b"version two"
    async with http.put(f"/api/v2/files/{node.id}/content/", data=b"", headers=headers) as resp:
        assert resp.status == 201  # without snapshot_id: unconditional; empty content is fine
    assert (await get_json(http, f"/api/v2/files/{node.id}/"))["size"] == 0


async def test_metadata_rename_and_move(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    folder = sandbox.backend.add_folder(None, "Archiv")
    node = sandbox.backend.add_file(None, "old.txt", b"keep")
    before = await get_json(http, f"/api/v2/files/{node.id}/")
    body = {"title": "new", "filename": "new.txt", "parent": folder.id}
    async with http.put(f"/api/v2/files/{node.id}/", json=body) as resp:
        assert resp.status == 204
    after = await get_json(http, f"/api/v2/files/{node.id}/")
    assert after["path"] == "/domain/spaces/Sandbox/Archiv/new.txt"
    assert after["parent"] == folder.id and after["title"] == "new"
    assert after["snapshot_id"] == before["snapshot_id"] and after["digest"] == before["digest"]
    assert after["modified"] > before["modified"]
    for partial in ({"title": "x", "filename": "x"}, {"filename": "x", "parent": folder.id}, {}):
        async with http.put(f"/api/v2/files/{node.id}/", json=partial) as resp:
            assert resp.status == 400
    async with http.put(f"/api/v2/files/{node.id}/", data=b"not json") as resp:
        assert resp.status == 400


async def test_delete_moves_to_trash(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    root = sandbox.remote["root"]
    node = sandbox.backend.add_file(None, "gone.txt", b"bye")
    before = await get_json(http, f"/api/v2/files/{node.id}/")
    async with http.delete(f"/api/v2/files/{node.id}/") as resp:
        assert resp.status == 204
    after = await get_json(http, f"/api/v2/files/{node.id}/")
    assert after["parent"] == sandbox.backend.trash_id
    assert after["path"] == "/domain/trash/gone.txt"
    assert after["modified"] > before["modified"]
    assert (await get_json(http, f"/api/v2/files/?parent={root}"))["objects"] == []
    tenant = await get_json(http, "/api/v2/files/")
    assert [o["id"] for o in tenant["objects"]] == [node.id]  # the tenant listing keeps trashed files
    folders = await get_json(http, "/api/v2/folders/")
    assert any(f["path"] == "/domain/trash" for f in folders["objects"])


async def test_folders_create_rename_delete(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    root = sandbox.remote["root"]
    async with http.post("/api/v2/folders/", json={"title": "Akten", "parent": root}) as resp:
        assert resp.status == 201
        folder_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    async with http.post("/api/v2/folders/", json={"title": "2024", "parent": folder_id}) as resp:
        assert resp.status == 201
        sub_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    detail = await get_json(http, f"/api/v2/folders/{sub_id}/")
    assert detail["path"] == "/domain/spaces/Sandbox/Akten/2024" and detail["type"] == "Folder"
    assert detail["resource_uri"] == f"/api/v2/folders/{sub_id}/"
    node = sandbox.backend.add_file(sub_id, "a.txt", b"a")
    async with http.put(f"/api/v2/folders/{folder_id}/", json={"title": "Akten alt", "parent": root}) as resp:
        assert resp.status == 204
    moved = await get_json(http, f"/api/v2/files/{node.id}/")
    assert moved["path"] == "/domain/spaces/Sandbox/Akten alt/2024/a.txt"
    async with http.put(f"/api/v2/folders/{folder_id}/", json={"title": "x", "parent": sub_id}) as resp:
        assert resp.status == 400  # into its own subtree
    async with http.post("/api/v2/folders/", json={"title": "x"}) as resp:
        assert resp.status == 400
    async with http.delete(f"/api/v2/folders/{sub_id}/") as resp:
        assert resp.status == 409
    sandbox.backend.delete_file(node.id)
    async with http.delete(f"/api/v2/folders/{sub_id}/") as resp:
        assert resp.status == 204
    await get_json(http, f"/api/v2/folders/{sub_id}/", status=404)


# ---- persistence, seeding, request log, start-up contract -------------------------------------


async def test_state_persists_across_restart(tmp_path: Path, anyio_backend: str) -> None:
    data_dir = tmp_path / "sbx"
    first = await start_sandbox("coredata", data_dir, seed=5)
    files = sorted(first.backend.files(), key=lambda n: n.id)
    assert len(files) == 5
    edited = first.backend.set_content(files[0].id, b"edited")
    remote = first.remote
    await first.stop()

    second = await start_sandbox("coredata", data_dir, seed=5)  # seed ignored: DIR is not new
    try:
        assert second.remote["root"] == remote["root"]
        assert second.remote["api_key"] == remote["api_key"]
        again = sorted(second.backend.files(), key=lambda n: n.id)
        assert [(n.id, n.digest, n.snapshot_id, n.modified) for n in again] == [
            (n.id, n.digest, n.snapshot_id, n.modified) for n in files
        ]
        async with aiohttp.ClientSession(base_url=second.base_url, headers=auth(second)) as http:
            assert await download(http, edited.id) == b"edited"
        later = second.backend.add_file(None, "after.txt", b"x")
        assert later.modified > max(n.modified for n in again)
    finally:
        await second.stop()


def test_seed_content_is_deterministic() -> None:
    assert sample_files(12, 3) == sample_files(12, 3)
    assert sample_files(12, 3) != sample_files(12, 4)
    names = [name for _, name, _ in sample_files(12, 3)]
    assert "Protokoll Größe.txt" in names and len(set(names)) == 12
    assert any(data == b"" for _, _, data in sample_files(12, 3))


async def test_request_log_counts_requests(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    sandbox.backend.requests.clear()
    await get_json(http, "/api/v2/files/")
    await get_json(http, "/api/v2/folders/?limit=5")
    await get_json(http, "/api/v2/files/?order_by=nope", status=400)
    log = sandbox.backend.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("GET", "/api/v2/files/", 200),
        ("GET", "/api/v2/folders/", 200),
        ("GET", "/api/v2/files/", 400),
    ]
    assert log[1].query == "limit=5"
    assert log.matching("GET", "/api/v2/files/") == 2


async def test_fault_hook_answers_before_the_handler(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    async def busy(request: web.Request) -> web.StreamResponse | None:
        if request.path.startswith("/api/v2/folders/"):
            return web.json_response({"error_message": "busy"}, status=503)
        return None

    sandbox.fault_hooks.append(busy)
    await get_json(http, "/api/v2/folders/", status=503)
    await get_json(http, "/api/v2/files/")
    assert [r.status for r in sandbox.backend.requests][-2:] == [503, 200]


async def test_module_entry_prints_one_json_line(tmp_path: Path, anyio_backend: str) -> None:
    cmd = ["-m", "daemon.sandbox", "coredata", "--port", "0", "--data", str(tmp_path / "d"), "--seed", "5"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *cmd, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        info = json.loads(line)
        assert info["provider"] == "coredata"
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert set(info["remote"]) == {"base_url", "root", "api_user", "api_key"}
        assert info["remote"]["base_url"] == info["base_url"]
        headers = {"Authorization": f"apikey {info['remote']['api_user']}:{info['remote']['api_key']}"}
        async with (
            aiohttp.ClientSession(base_url=info["base_url"], headers=headers) as http,
            http.get(f"/api/v2/files/?parent={info['remote']['root']}") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["meta"]["total_count"] >= 1
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0
        assert rest == b""  # exactly one line on stdout
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
