"""The Cliniko sandbox over real HTTP: auth, paging, filters, uploads, processing, archive, the rate limit,
and every JSON body checked against the vendor's OpenAPI schemas (``cliniko-openapi.json``)."""

from __future__ import annotations

import base64
import copy
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from openapi_schema_validator import OAS30Validator
from yarl import URL

from daemon.sandbox.runner import RunningSandbox, start_sandbox

pytestmark = pytest.mark.anyio

SPEC_PATH = Path("/work/shared/reference/cliniko-openapi.json")
if not SPEC_PATH.exists():  # the repo may travel without the shared folder
    SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cliniko-openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text()) if SPEC_PATH.exists() else {}
UA = "libmirror tests (tests@example.com)"


def _strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists properties, so a
    field the spec does not declare (a typo, an invention) fails too."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def check(body: Any, path: str, method: str, status: int) -> None:
    """Validate ``body`` against the spec's response schema for (path, method, status), $refs resolved,
    formats checked; then again with undeclared fields forbidden."""
    if not SPEC:
        pytest.skip("cliniko-openapi.json not available")
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rpartition("/")[2]]
    schema = response["content"]["application/json"]["schema"]
    components = copy.deepcopy(SPEC["components"])
    # api-notes.md (from the upload guide) lists x-amz-date among the POST fields; the spec omits it
    fields = components["schemas"]["AttachmentPresignedPost"]["properties"]["fields"]["properties"]
    fields.setdefault("x-amz-date", {"type": "string"})
    for document in (
        {**schema, "components": SPEC["components"]},
        {**_strict(schema), "components": _strict(components)},
    ):
        OAS30Validator(document, format_checker=OAS30Validator.FORMAT_CHECKER).validate(body)


def s3_form(fields: dict[str, str], filename: str | None, data: bytes) -> aiohttp.MultipartWriter:
    """The presigned POST body as a browser sends it: fields first, the file last with its name in raw
    UTF-8 (aiohttp's own FormData would percent-encode it, which S3 would keep literally)."""
    writer = aiohttp.MultipartWriter("form-data")
    for key, value in fields.items():
        writer.append(value).set_content_disposition("form-data", name=key)
    if filename is not None:
        disposition = f'form-data; name="file"; filename="{filename}"'
        writer.append(data, {"Content-Type": "application/octet-stream", "Content-Disposition": disposition})
    return writer


class Client:
    def __init__(self, sandbox: RunningSandbox, session: aiohttp.ClientSession) -> None:
        self.sandbox = sandbox
        self.session = session
        self.api = sandbox.remote["base_url"]
        self.key = sandbox.remote["api_key"]

    def headers(self, key: str | None = None, ua: str | None = UA, accept: str = "application/json") -> dict[str, str]:
        token = base64.b64encode(f"{key if key is not None else self.key}:".encode()).decode()
        out = {"Authorization": f"Basic {token}", "Accept": accept}
        if ua is not None:
            out["User-Agent"] = ua
        return out

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = kwargs.pop("headers", None) or self.headers()
        url = path if path.startswith("http") else self.api + path
        async with self.session.request(method, url, headers=headers, allow_redirects=False, **kwargs) as resp:
            raw = await resp.read()
            body = json.loads(raw) if raw and "json" in resp.content_type else raw
            return resp.status, body, resp

    async def get(self, path: str, **kwargs: Any) -> Any:
        status, body, _ = await self.call("GET", path, **kwargs)
        assert status == 200, (status, body)
        return body

    async def upload(self, patient_id: int, filename: str, data: bytes) -> tuple[int, Any]:
        post = await self.get(f"/patients/{patient_id}/attachment_presigned_post")
        check(post, "/patients/{patient_id}/attachment_presigned_post", "get", 200)
        async with self.session.post(post["url"], data=s3_form(post["fields"], filename, data)) as resp:
            assert resp.status == 201, await resp.text()
            key = ET.fromstring(await resp.read()).findtext("Key")
        assert key is not None and key.endswith("/" + filename)
        upload_url = post["url"] + "/" + key
        status, body, _ = await self.call(
            "POST", "/patient_attachments", json={"patient_id": str(patient_id), "upload_url": upload_url}
        )
        return status, body


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("cliniko", tmp_path / "data", seed=6, processing_delay=0.3)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(sandbox, session)


async def test_startup_line_remote_table(sandbox: RunningSandbox) -> None:
    remote = sandbox.remote
    assert set(remote) == {"api_key", "user_agent", "base_url"}
    assert remote["base_url"] == sandbox.base_url + "/v1"
    assert remote["api_key"].endswith("-au1")
    assert "(" in remote["user_agent"] and "@" in remote["user_agent"]


async def test_auth_user_agent_and_accept_are_enforced(client: Client) -> None:
    bare = client.key.rpartition("-")[0]
    assert (await client.call("GET", "/patients", headers=client.headers(key=bare)))[0] == 200
    assert (await client.call("GET", "/patients", headers=client.headers(key="wrong")))[0] == 401
    assert (await client.call("GET", "/patients", headers={"User-Agent": UA}))[0] == 401
    status, body, _ = await client.call("GET", "/patients", headers=client.headers(ua="curl/8.0"))
    assert status == 400 and "User-Agent" in body["message"]
    assert (await client.call("GET", "/patients", headers=client.headers(accept="text/html")))[0] == 406


async def test_every_json_response_matches_the_spec(client: Client, sandbox: RunningSandbox) -> None:
    backend = sandbox.backend
    patients = await client.get("/patients?per_page=2")
    check(patients, "/patients", "get", 200)
    pid = int(patients["patients"][0]["id"])
    check(await client.get(f"/patients/{pid}"), "/patients/{id}", "get", 200)
    status, body, _ = await client.call("PATCH", f"/patients/{pid}", json={"first_name": "Jürgen-Otto"})
    assert status == 200 and body["first_name"] == "Jürgen-Otto"
    check(body, "/patients/{id}", "patch", 200)
    status, body, _ = await client.call("PATCH", f"/patients/{pid}", json={"last_name": ""})
    assert status == 422
    check(body, "/patients/{id}", "patch", 422)

    status, created = await client.upload(pid, "Befund ü.pdf", b"%PDF-1.4 sandbox")
    assert status == 201 and created["processing_completed"] is False and created["filename"] is None
    check(created, "/patient_attachments", "post", 201)
    archived = backend.add_attachment(pid, "old.txt", b"old")
    backend.archive(archived.id)
    listing = await client.get("/patient_attachments?per_page=100&q[]=archived_at:*")
    assert {a["processing_completed"] for a in listing["patient_attachments"]} == {True, False}
    assert any(a["archived_at"] for a in listing["patient_attachments"])
    check(listing, "/patient_attachments", "get", 200)
    check(
        await client.get(f"/patients/{pid}/patient_attachments"),
        "/patients/{patient_id}/patient_attachments",
        "get",
        200,
    )
    check(await client.get(f"/patient_attachments/{created['id']}"), "/patient_attachments/{id}", "get", 200)
    status, body, _ = await client.call(
        "POST", "/patient_attachments", json={"patient_id": pid, "upload_url": "http://x/y"}
    )
    assert status == 422 and body["errors"] == {"upload_url": "is invalid"}
    check(body, "/patient_attachments", "post", 422)


async def test_paging_links_and_limits(client: Client) -> None:
    first = await client.get("/patient_attachments?per_page=4")
    assert first["total_entries"] == 6 and len(first["patient_attachments"]) == 4
    assert "previous" not in first["links"] and URL(first["links"]["next"]).query["page"] == "2"
    second = await client.get(first["links"]["next"])
    assert len(second["patient_attachments"]) == 2 and "next" not in second["links"]
    assert "previous" in second["links"]
    ids = [a["id"] for a in first["patient_attachments"] + second["patient_attachments"]]
    assert len(set(ids)) == 6
    assert [a["id"] for a in (await client.get("/patient_attachments"))["patient_attachments"]] == ids  # created_at asc
    assert (await client.call("GET", "/patient_attachments?per_page=101"))[0] == 400
    assert (await client.call("GET", "/patient_attachments?page=0"))[0] == 400
    assert (await client.call("GET", "/patient_attachments?limit=5"))[0] == 400


async def test_filters_and_sorting(client: Client, sandbox: RunningSandbox) -> None:
    backend = sandbox.backend
    every = (await client.get("/patient_attachments"))["patient_attachments"]
    middle = sorted(every, key=lambda a: a["updated_at"])[2]["updated_at"]
    newer = await client.get("/patient_attachments", params=[("q[]", f"updated_at:>{middle}")])
    assert {a["id"] for a in newer["patient_attachments"]} == {a["id"] for a in every if a["updated_at"] > middle}
    by_ids = await client.get("/patient_attachments", params=[("q[]", f"id:={every[0]['id']},{every[1]['id']}")])
    assert [a["id"] for a in by_ids["patient_attachments"]] == [every[0]["id"], every[1]["id"]]
    pid = URL(every[0]["patient"]["links"]["self"]).name
    mine = await client.get("/patient_attachments", params=[("q[]", f"patient_id:={pid}")])
    assert mine["patient_attachments"] and all(
        a["patient"]["links"]["self"].endswith("/" + pid) for a in mine["patient_attachments"]
    )
    desc = await client.get("/patient_attachments", params={"sort": "updated_at:desc"})
    assert [a["id"] for a in desc["patient_attachments"]] == [
        a["id"] for a in sorted(every, key=lambda a: a["updated_at"], reverse=True)
    ]
    names = await client.get("/patients", params=[("q[]", "last_name:~ller")])
    assert [p["last_name"] for p in names["patients"]] == ["Müller"]

    backend.archive(int(every[0]["id"]))
    assert every[0]["id"] not in {a["id"] for a in (await client.get("/patient_attachments"))["patient_attachments"]}
    since = await client.get(
        "/patient_attachments", params=[("q[]", f"updated_at:>{middle}"), ("q[]", "archived_at:*")]
    )
    gone = [a for a in since["patient_attachments"] if a["id"] == every[0]["id"]]
    assert gone and gone[0]["archived_at"] and gone[0]["updated_at"] > every[0]["updated_at"]
    for bad in ("colour:=red", "updated_at:=2024-01-01T00:00:00Z", "updated_at:>2024-01-01T00:00:00", "id:>1,2"):
        status, body, _ = await client.call("GET", "/patient_attachments", params=[("q[]", bad)])
        assert status == 400 and "Invalid filter" in body["message"], bad


async def test_upload_processing_and_download(client: Client, sandbox: RunningSandbox) -> None:
    pid = sandbox.backend.patients[min(sandbox.backend.patients)].id
    data = bytes(range(256)) * 40
    status, created = await client.upload(pid, "scan 日本.bin", data)
    assert status == 201
    assert (await client.call("GET", f"/patient_attachments/{created['id']}/content"))[0] == 404  # not processed yet
    await anyio.sleep(0.35)
    shown = await client.get(f"/patient_attachments/{created['id']}")
    assert shown["processing_completed"] is True and shown["filename"] == "scan 日本.bin" and shown["size"] == len(data)
    assert shown["updated_at"] > created["updated_at"]  # completing the processing bumps it
    status, _, resp = await client.call("GET", f"/patient_attachments/{created['id']}/content")
    assert status == 303
    location = resp.headers["Location"]
    async with client.session.get(location, headers={"Authorization": "Basic xyz"}) as got:
        assert got.status == 400  # presigned: our credentials must not come along
    async with client.session.get(location) as got:
        assert got.status == 200 and await got.read() == data
    spoiled = URL(location, encoded=True).update_query({"X-Amz-Signature": "0" * 64})
    async with client.session.get(spoiled) as got:
        assert got.status == 403


async def test_presigned_post_policy_is_checked(client: Client, sandbox: RunningSandbox) -> None:
    pid = sandbox.backend.patients[min(sandbox.backend.patients)].id
    post = await client.get(f"/patients/{pid}/attachment_presigned_post")

    async def send(fields: dict[str, str], with_file: bool = True) -> int:
        async with client.session.post(post["url"], data=s3_form(fields, "f.txt" if with_file else None, b"x")) as resp:
            return resp.status

    fields = dict(post["fields"])
    assert await send({**fields, "x-amz-signature": "0" * 64}) == 403
    assert await send({**fields, "acl": "public-read"}) == 403
    assert await send({**fields, "key": "1/patients/999/x/${filename}"}) == 403
    assert await send({**fields, "surprise": "1"}) == 403
    assert await send(fields, with_file=False) == 400
    assert await send(fields) == 201
    # another patient's upload URL cannot be attached to this patient
    other = max(sandbox.backend.patients)
    key = fields["key"].replace("${filename}", "f.txt")
    status, body, _ = await client.call(
        "POST", "/patient_attachments", json={"patient_id": other, "upload_url": post["url"] + "/" + key}
    )
    assert status == 422 and "upload_url" in body["errors"]


async def test_archive_and_deprecated_delete(client: Client, sandbox: RunningSandbox) -> None:
    every = (await client.get("/patient_attachments"))["patient_attachments"]
    a, b = every[0]["id"], every[1]["id"]
    assert (await client.call("POST", f"/patient_attachments/{a}/archive"))[0] == 204
    assert (await client.call("DELETE", f"/patient_attachments/{b}"))[0] == 204
    assert (await client.call("POST", f"/patient_attachments/{a}/archive"))[0] == 404
    assert (await client.call("GET", f"/patient_attachments/{a}"))[0] == 404
    shown = await client.get(f"/patient_attachments/{a}", params=[("q[]", "archived_at:*")])
    assert shown["archived_at"] is not None
    left = {x["id"] for x in (await client.get("/patient_attachments"))["patient_attachments"]}
    assert a not in left and b not in left and len(left) == 4


async def test_rate_limit_answers_429_with_reset(tmp_path: Path) -> None:
    sandbox = await start_sandbox("cliniko", tmp_path / "rl", seed=1, rate_limit=3, rate_window=60)
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(sandbox, session)
            statuses = [(await client.call("GET", "/patients"))[0] for _ in range(3)]
            status, body, resp = await client.call("GET", "/patients")
            assert statuses == [200, 200, 200] and status == 429 and body["message"]
            reset = int(resp.headers["X-RateLimit-Reset"])
            assert time.time() <= reset <= time.time() + 61
            hits = await client.get(sandbox.base_url + "/_sandbox/api_log")
            assert [h["status"] for h in hits["requests"]] == [200, 200, 200, 429]
    finally:
        await sandbox.stop()


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = await start_sandbox("cliniko", tmp_path / "d", seed=3)
    key, ids = first.remote["api_key"], sorted(first.backend.attachments)
    pid = first.backend.add_patient("New", "Person").id
    await first.stop()
    second = await start_sandbox("cliniko", tmp_path / "d", seed=3)
    try:
        assert second.remote["api_key"] == key
        assert sorted(second.backend.attachments) == ids
        assert second.backend.add_patient("Another", "One").id > pid
        assert second.backend.read_content(ids[0]) == first.backend.read_content(ids[0])
    finally:
        await second.stop()
