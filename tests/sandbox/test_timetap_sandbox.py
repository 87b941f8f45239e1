"""The TimeTap sandbox over real HTTP: tokens, the file object fields, buckets, upload, POST /files, DELETE."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.sandbox.timetap_backend import TimeTapBackend

pytestmark = pytest.mark.anyio

FIELDS = {
    "businessId", "calendarId", "clientId", "contentType", "createdDate", "createdUser", "deleted", "emailId",
    "encrypted", "extension", "fileLibraryType", "fileLibraryUUID", "fileName", "fileSize", "modifiedDate",
    "modifiedUser", "parentFileLibraryUUID", "professionalId", "publicVisible", "referenceId", "s3Bucket", "s3Key",
    "url",
}  # fmt: skip


class Client:
    """Speaks to the sandbox as a TimeTap API user would."""

    def __init__(self, sandbox: RunningSandbox, session: aiohttp.ClientSession) -> None:
        self.remote = sandbox.remote
        self.base = sandbox.remote["base_url"]
        self.session = session
        self.token = ""

    async def login(self, private_key: str | None = None) -> aiohttp.ClientResponse:
        key, private = self.remote["api_key"], private_key or self.remote["private_key"]
        params = {
            "apiKey": key,
            "timestamp": str(int(time.time())),
            "signature": hashlib.md5((key + private).encode()).hexdigest(),
        }
        async with self.session.get(f"{self.base}/sessionToken", params=params) as resp:
            if resp.status == 200:
                self.token = (await resp.json())["sessionToken"]
            await resp.read()
            return resp

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as resp:
            body = await resp.read()
            is_json = resp.content_type == "application/json"
            return resp.status, (await resp.json() if is_json and body else body)

    async def files(self, **params: str) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/files", params=params)
        assert status == 200, body
        assert isinstance(body, list)
        return body

    async def upload(self, data: bytes, name: str, **extra: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        fields = {"businessId": str(self.remote["business_id"]), "uploadedFileName": name, "userName": "front.desk"}
        for key, value in {**fields, **extra}.items():
            form.add_field(key, value)
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
        return await self.call("POST", "/businessWeb/fileUploadS3.do", data=form)

    async def post(self, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.call("POST", "/files", json=body)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[RunningSandbox, Client]]:
    sandbox = await start_sandbox("timetap", tmp_path / "data", port=0, seed=0, token_ttl=60)
    async with aiohttp.ClientSession() as session:
        try:
            yield sandbox, Client(sandbox, session)
        finally:
            await sandbox.stop()


def backend(sandbox: RunningSandbox) -> TimeTapBackend:
    assert isinstance(sandbox.backend, TimeTapBackend)
    return sandbox.backend


async def test_remote_table_and_session_token_flow(env: tuple[RunningSandbox, Client]) -> None:
    sandbox, client = env
    assert set(sandbox.remote) == {"base_url", "api_key", "private_key", "business_id", "user_name"}
    assert sandbox.remote["base_url"] == sandbox.base_url + "/live"
    assert (await client.call("GET", "/files"))[0] == 401  # no token
    assert (await client.login(private_key="wrong")).status == 401
    async with client.session.get(f"{client.base}/sessionToken", params={"apiKey": "1"}) as resp:
        assert resp.status == 401
    assert (await client.login()).status == 200
    assert client.token.startswith("st:api:api:")
    assert await client.files() == []
    backend(sandbox).expire_tokens()
    status, body = await client.call("GET", "/files")
    assert status == 401 and "expired" in body["message"]


async def test_upload_listing_fields_and_buckets(env: tuple[RunningSandbox, Client]) -> None:
    sandbox, client = env
    await client.login()
    status, folder = await client.post(
        {"businessId": sandbox.remote["business_id"], "fileLibraryType": "FOLDER", "fileName": "Forms"}
    )
    assert status == 200 and folder["fileLibraryType"] == "FOLDER" and folder["url"] is None
    status, doc = await client.upload(b"private waiver", "waiver.pdf", parentFileLibraryUUID=folder["fileLibraryUUID"])
    assert status == 200, doc
    status, asset = await client.upload(b"public logo", "logo.png", fileLibraryType="ASSET")
    assert status == 200, asset
    listing = {o["fileLibraryUUID"]: o for o in await client.files()}
    assert len(listing) == 3 and all(set(o) == FIELDS for o in listing.values())
    d = listing[doc["fileLibraryUUID"]]
    assert (d["fileName"], d["fileSize"], d["parentFileLibraryUUID"], d["fileLibraryType"]) == (
        "waiver.pdf",
        14,
        folder["fileLibraryUUID"],
        "DOCUMENT",
    )
    assert d["s3Bucket"] == "tt-client-private" and d["createdUser"] == "front.desk" and not d["deleted"]
    assert isinstance(d["createdDate"], int) and d["createdDate"] > 1_600_000_000_000
    assert str(sandbox.remote["business_id"]) in d["s3Key"]
    a = listing[asset["fileLibraryUUID"]]
    assert a["s3Bucket"] == "tt-client-public" and a["publicVisible"] is True
    assert URL(a["url"]).query_string == "" and "Signature" in URL(d["url"]).query

    async with client.session.get(URL(d["url"], encoded=True)) as resp:  # no Authorization needed
        assert resp.status == 200 and await resp.read() == b"private waiver"
    async with client.session.get(a["url"]) as resp:
        assert resp.status == 200 and await resp.read() == b"public logo"
    tampered = URL(d["url"], encoded=True).update_query(Signature="AAAA")
    async with client.session.get(tampered) as resp:
        assert resp.status == 403 and b"AccessDenied" in await resp.read()
    bare = URL(d["url"], encoded=True).with_query(None)
    async with client.session.get(bare) as resp:
        assert resp.status == 403

    backend(sandbox).presign_ttl = -5
    expired = next(o for o in await client.files() if o["fileLibraryUUID"] == doc["fileLibraryUUID"])
    async with client.session.get(URL(expired["url"], encoded=True)) as resp:
        assert resp.status == 403

    folders = await client.files(fileLibraryType="FOLDER")
    assert [o["fileLibraryUUID"] for o in folders] == [folder["fileLibraryUUID"]]
    inside = await client.files(parentFileLibraryUUID=folder["fileLibraryUUID"])
    assert [o["fileLibraryUUID"] for o in inside] == [doc["fileLibraryUUID"]]


async def test_upload_validation(env: tuple[RunningSandbox, Client]) -> None:
    sandbox, client = env
    await client.login()
    status, body = await client.upload(b"x", "x.txt", userName="")
    assert status == 400 and "userName" in body["message"]
    status, body = await client.upload(b"x", "x.txt", businessId="1")
    assert status == 403
    status, body = await client.upload(b"x", "x.txt", parentFileLibraryUUID="no-such-folder")
    assert status == 400
    status, body = await client.upload(b"x", "x.txt", fileLibraryType="FOLDER")
    assert status == 400
    assert await client.files() == []
    blobs = [p for p in (backend(sandbox).data_dir / "blobs").rglob("*") if p.is_file()]
    assert blobs == []  # refused uploads leave nothing behind


async def test_rename_move_and_permanent_delete(env: tuple[RunningSandbox, Client]) -> None:
    sandbox, client = env
    await client.login()
    bid = sandbox.remote["business_id"]
    _, a = await client.post({"businessId": bid, "fileLibraryType": "FOLDER", "fileName": "a"})
    _, b = await client.post(
        {"businessId": bid, "fileLibraryType": "FOLDER", "fileName": "b", "parentFileLibraryUUID": a["fileLibraryUUID"]}
    )
    _, doc = await client.upload(b"content", "doc.txt", parentFileLibraryUUID=b["fileLibraryUUID"])

    changed = {**doc, "fileName": "renamed.txt", "parentFileLibraryUUID": None, "fileSize": 999}
    status, moved = await client.post(changed)
    assert status == 200 and moved["fileName"] == "renamed.txt" and moved["parentFileLibraryUUID"] is None
    assert moved["fileSize"] == 7 and moved["modifiedDate"] > doc["modifiedDate"]  # read-only fields ignored
    status, body = await client.post({**a, "parentFileLibraryUUID": b["fileLibraryUUID"]})
    assert status == 400 and "itself" in body["message"]
    status, body = await client.post({**moved, "fileLibraryType": "ASSET"})
    assert status == 400
    status, moved_b = await client.post({**b, "fileName": "b2", "parentFileLibraryUUID": None})
    assert status == 200 and moved_b["fileName"] == "b2"

    assert (await client.call("DELETE", f"/files/{b['fileLibraryUUID']}"))[0] == 204  # empty folder
    assert (await client.call("POST", "/files", json={**b, "fileName": "again"}))[0] == 404
    status, _ = await client.call("DELETE", f"/files/{doc['fileLibraryUUID']}")
    assert status == 204
    assert (await client.call("DELETE", f"/files/{doc['fileLibraryUUID']}"))[0] == 404
    assert [o["fileLibraryUUID"] for o in await client.files()] == [a["fileLibraryUUID"]]
    async with client.session.get(URL(moved["url"], encoded=True)) as resp:
        assert resp.status == 404  # the content is gone too

    _, c = await client.upload(b"c", "c.txt", parentFileLibraryUUID=a["fileLibraryUUID"])
    assert (await client.call("DELETE", f"/files/{a['fileLibraryUUID']}"))[0] == 409
    assert c["fileLibraryUUID"] in {o["fileLibraryUUID"] for o in await client.files()}


async def test_seed_persistence_and_soft_deleted_objects(tmp_path: Path) -> None:
    first = await start_sandbox("timetap", tmp_path / "data", port=0, seed=12)
    b = backend(first)
    paths = sorted(b.tree())
    assert len(paths) == 12 and any(p.count("/") >= 2 for p in paths)  # nested folders
    assert any(o.fileLibraryType == "ASSET" for o in b.objects.values())
    victim = b.by_path(paths[0])
    b.soft_delete(victim.id)
    remote = first.remote
    await first.stop()

    again = await start_sandbox("timetap", tmp_path / "data", port=0, seed=12)  # seed ignored: not new
    try:
        assert again.remote["api_key"] == remote["api_key"] and again.remote["private_key"] == remote["private_key"]
        b2 = backend(again)
        assert sorted(b2.tree()) == paths[1:]
        async with aiohttp.ClientSession() as session:
            client = Client(again, session)
            await client.login()
            listing = await client.files()
        gone = [o for o in listing if o["fileLibraryUUID"] == victim.id]
        assert gone and gone[0]["deleted"] is True  # still listed, flagged
        kept = b2.by_path(paths[1])
        assert len(b2.read_content(kept.id)) == kept.fileSize
    finally:
        await again.stop()


async def test_token_uses_option_expires_a_token_after_n_requests(tmp_path: Path) -> None:
    sandbox = await start_sandbox("timetap", tmp_path / "data", port=0, token_uses=2)
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(sandbox, session)
            await client.login()
            assert [(await client.call("GET", "/files"))[0] for _ in range(3)] == [200, 200, 401]
            await client.login()
            assert (await client.call("GET", "/files"))[0] == 200
    finally:
        await sandbox.stop()
