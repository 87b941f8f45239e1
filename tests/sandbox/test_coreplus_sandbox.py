"""The coreplus sandbox is as strict as the doc: JWT rules, the multipart shape, paging, 10/s."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from daemon.sandbox.coreplus_backend import CorePlusBackend
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from tests.coreplus_api import CorePlusAPI, Reply

pytestmark = pytest.mark.anyio

T = TypeVar("T")
CLIENTS = "/API/Core/v2/Client/?pageNumber=1&pageSize=5"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("coreplus", tmp_path / "sb", seed=7, rate_limit=1000)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def api(sandbox: RunningSandbox) -> CorePlusAPI:
    return CorePlusAPI(sandbox.remote)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def invalid_token(reply: Reply) -> str:
    assert reply.status == 401, reply
    (message,) = reply.json()["statusMessages"]
    assert message["code"] == "InvalidToken"
    return str(message["message"])


async def test_start_line_table_and_seeded_clients(sandbox: RunningSandbox, api: CorePlusAPI) -> None:
    assert set(sandbox.remote) == {"base_url", "consumer_id", "consumer_secret", "access_token", "issuer", "audience"}
    first = await blocking(api.clients_page, 1, 5)
    assert first.status == 200
    body = first.json()
    assert body["paging"] == {"totalRows": 7, "pageNumber": 1, "pageSize": 5} and body["statusMessages"] == []
    second = (await blocking(api.clients_page, 2, 5)).json()
    names = [(c["firstName"], c["lastName"]) for c in body["clients"] + second["clients"]]
    assert len(names) == len(set(names)) == 7
    assert all(set(c) >= {"clientId", "firstName", "lastName"} for c in body["clients"])


async def test_paths_are_case_insensitive(api: CorePlusAPI) -> None:
    reply = await blocking(api.call, "GET", "/api/core/v2/client?pageNumber=1&pageSize=1")
    assert reply.status == 200 and len(reply.json()["clients"]) == 1


async def test_token_rules(api: CorePlusAPI) -> None:
    base = api.base
    url = base + CLIENTS
    now = int(time.time())

    async def with_header(header: str) -> Reply:
        return await blocking(api.call, "GET", CLIENTS, authorization=header)

    assert "missing" in invalid_token(await blocking(api.call, "GET", CLIENTS, authorization=""))
    good = api.token("GET", url)
    assert (await with_header("JwToken " + good)).status == 200
    for header in ("Bearer " + good, "jwtoken " + good, "JwToken  " + good, good):
        invalid_token(await with_header(header))
    invalid_token(
        await with_header("JwToken " + api.token("GET", url, secret="not the secret, but long enough for HS256"))
    )
    assert "expired" in invalid_token(await with_header("JwToken " + api.token("GET", url, nbf=now - 90, exp=now - 30)))
    future = api.token("GET", url, nbf=now + 30, exp=now + 90)
    assert "not yet valid" in invalid_token(await with_header("JwToken " + future))
    assert "60" in invalid_token(await with_header("JwToken " + api.token("GET", url, nbf=now, exp=now + 61)))
    for claim in ("iss", "aud", "consumerId", "accessToken"):
        assert claim in invalid_token(await with_header("JwToken " + api.token("GET", url, **{claim: "other"})))
    assert "httpMethod" in invalid_token(await with_header("JwToken " + api.token("POST", url)))
    assert "httpMethod" in invalid_token(await with_header("JwToken " + api.token("get", url)))


async def test_url_claim_must_be_the_exact_request_url(api: CorePlusAPI) -> None:
    wrong = [
        api.base + "/API/Core/v2/Client/",  # query string left out
        api.base + "/API/Core/v2/Client/?pageNumber=2&pageSize=5",  # another page
        api.base + "/API/Core/v2.1/File/",  # another endpoint
        api.base.replace("127.0.0.1", "127.0.0.2") + CLIENTS,  # another host
    ]
    for url in wrong:
        message = invalid_token(await blocking(api.clients_page, 1, 5, url=url))
        assert "url" in message


async def test_upload_and_folders_as_the_doc_shows(sandbox: RunningSandbox, api: CorePlusAPI) -> None:
    client = (await blocking(api.holdings))[0]["clientId"]
    folder = await blocking(api.mkdir, client, "Letters")
    assert folder.status == 201
    created = folder.json()["file"]
    assert created["isFolder"] is True and created["parentFolderId"] is None
    reply = await blocking(api.upload, client, "scan ü.pdf", b"%PDF-1.4 data", parent=created["fileId"])
    assert reply.status == 201
    file = reply.json()["file"]
    assert (file["name"], file["size"], file["parentFolderId"], file["isFolder"]) == (
        "scan ü.pdf",
        "13",
        created["fileId"],
        False,
    )
    assert await blocking(api.content, file["fileId"]) == b"%PDF-1.4 data"
    paths = (await blocking(api.files_by_client))[client]
    assert paths == ["Letters/scan ü.pdf"]


async def test_upload_refusals_store_nothing(sandbox: RunningSandbox, api: CorePlusAPI) -> None:
    clients = await blocking(api.holdings)
    client, other = clients[0]["clientId"], clients[1]["clientId"]
    other_folder = (await blocking(api.mkdir, other, "Theirs")).json()["file"]["fileId"]
    assert (await blocking(api.upload, client, "a.txt", b"abc", size=4)).status == 400
    assert (await blocking(api.upload, "00000000-0000-0000-0000-000000000000", "a.txt", b"abc")).status == 400
    assert (await blocking(api.upload, client, "a.txt", b"abc", parent=other_folder)).status == 400
    meta = {"name": "a.txt", "size": 3, "entity": "Client", "primaryDomainKey": client}  # size not a string
    body, ctype = api.multipart(meta, ("a.txt", b"abc"))
    assert (await blocking(api.call, "POST", "/API/Core/v2.1/File/", body=body, content_type=ctype)).status == 400
    meta = {"name": "a.txt", "size": "3", "entity": "Client", "primaryDomainKey": client}
    body, ctype = api.multipart(meta, None)  # a file without its file part
    assert (await blocking(api.call, "POST", "/API/Core/v2.1/File/", body=body, content_type=ctype)).status == 400
    as_json = json.dumps(meta).encode()
    reply = await blocking(api.call, "POST", "/API/Core/v2.1/File/", body=as_json, content_type="application/json")
    assert reply.status == 400
    assert (await blocking(api.files_by_client))[client] == []


async def test_rate_limit_answers_429(tmp_path: Path) -> None:
    async with await start_sandbox("coreplus", tmp_path / "sb", seed=1) as sandbox:
        api = CorePlusAPI(sandbox.remote)
        statuses = [(await blocking(api.clients_page, 1, 1)).status for _ in range(14)]
        assert statuses[:10] == [200] * 10 and 429 in statuses[10:]
        backend = sandbox.backend
        assert isinstance(backend, CorePlusBackend) and backend.throttled >= 1
        assert invalid_token(await blocking(api.call, "GET", CLIENTS, authorization="x"))  # auth comes first
        await anyio.sleep(1.05)
        assert (await blocking(api.clients_page, 1, 1)).status == 200  # the window moved on


async def test_state_and_credentials_survive_a_restart(tmp_path: Path) -> None:
    async with await start_sandbox("coreplus", tmp_path / "sb", seed=2) as first:
        api = CorePlusAPI(first.remote)
        client = (await blocking(api.holdings))[0]["clientId"]
        assert (await blocking(api.upload, client, "kept.txt", b"kept")).status == 201
        remote = {k: v for k, v in first.remote.items() if k != "base_url"}
    async with await start_sandbox("coreplus", tmp_path / "sb", seed=2) as second:
        assert {k: v for k, v in second.remote.items() if k != "base_url"} == remote
        api = CorePlusAPI(second.remote)
        holdings = await blocking(api.holdings)
        assert len(holdings) == 2  # seeding only fills a new DIR
        assert (await blocking(api.files_by_client))[client] == ["kept.txt"]


# --- the multipart shape: as lenient as the doc, no more ------------------------------------------

FILE_PATH = "/API/Core/v2.1/File/"


def form(*parts: tuple[str, dict[str, str], bytes]) -> tuple[bytes, str]:
    """A multipart body of (Content-Disposition, other headers, bytes) parts, exactly as given."""
    boundary = "b0undary" + "7" * 16
    out: list[bytes] = []
    for disposition, headers, data in parts:
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out += [head.encode() + b"\r\n", data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def file_meta(client: str, name: str, data: bytes, **extra: Any) -> bytes:
    meta = {"parentFolderId": None, "name": name, "size": str(len(data)), "isFolder": False, "entity": "Client",
            "primaryDomainKey": client, **extra}  # fmt: skip
    return json.dumps(meta).encode()


@pytest.mark.parametrize(
    "file_headers",
    [
        {"Content-Type": "application/pdf"},
        {"Content-Type": "application/octet-stream"},
        {"Content-Type": "image/png"},
        {"Content-Type": "Text/Plain; charset=utf-8"},
        {},
    ],
    ids=["pdf", "octet-stream", "png", "Text/Plain", "none"],
)
async def test_the_file_part_may_have_any_content_type(
    sandbox: RunningSandbox, api: CorePlusAPI, file_headers: dict[str, str]
) -> None:
    client = (await blocking(api.holdings))[0]["clientId"]
    data = b"%PDF-1.4 \x00\xff binary"
    body, ctype = form(
        ('form-data; name="json"', {"Content-Type": "text/plain"}, file_meta(client, "doc.pdf", data)),
        ('form-data; name="file"; filename="doc.pdf"', file_headers, data),
    )
    reply = await blocking(api.call, "POST", FILE_PATH, body=body, content_type=ctype)
    assert reply.status == 201, reply
    assert await blocking(api.content, reply.json()["file"]["fileId"]) == data


@pytest.mark.parametrize(
    ("disposition", "json_headers"),
    [
        ('form-data; name="json"', {}),
        ('form-data; name="json"', {"Content-Type": "application/json"}),
        ('form-data; name="json"', {"Content-Type": "application/json; charset=utf-8"}),
        ('form-data; name="json"', {"Content-Type": "text/plain; charset=utf-8"}),
        ('form-data; name="json"; filename=""', {"Content-Type": "text/plain"}),  # name "Empty/None" (doc)
    ],
    ids=["no-type", "json", "json-charset", "text-charset", "empty-filename"],
)
async def test_the_json_part_without_a_type_or_as_json_is_accepted(
    sandbox: RunningSandbox, api: CorePlusAPI, disposition: str, json_headers: dict[str, str]
) -> None:
    client = (await blocking(api.holdings))[0]["clientId"]
    body, ctype = form(
        (disposition, json_headers, file_meta(client, "a.txt", b"abc")),
        ('form-data; name="file"; filename="a.txt"', {"Content-Type": "text/plain"}, b"abc"),
    )
    reply = await blocking(api.call, "POST", FILE_PATH, body=body, content_type=ctype)
    assert reply.status == 201, reply
    assert (await blocking(api.files_by_client))[client] == ["a.txt"]


async def test_the_json_part_is_still_checked(sandbox: RunningSandbox, api: CorePlusAPI) -> None:
    client = (await blocking(api.holdings))[0]["clientId"]
    file_part = ('form-data; name="file"; filename="a.txt"', {"Content-Type": "text/plain"}, b"abc")
    meta = file_meta(client, "a.txt", b"abc")
    for json_part in (
        ('form-data; name="json"', {"Content-Type": "image/png"}, meta),  # not a JSON string at all
        ('form-data; name="json"; filename="meta.json"', {"Content-Type": "text/plain"}, meta),  # a file
        ('form-data; name="meta"', {"Content-Type": "text/plain"}, meta),  # not named json
    ):
        body, ctype = form(json_part, file_part)
        reply = await blocking(api.call, "POST", FILE_PATH, body=body, content_type=ctype)
        assert reply.status == 400, json_part
    assert (await blocking(api.files_by_client))[client] == []


async def test_the_docs_sample_payload_uploads_a_file(sandbox: RunningSandbox, api: CorePlusAPI) -> None:
    """The sample code's payload (commented "Prepare data payload for Folder Creation") is a file
    upload: ``isFolder`` False, ``parentFolderId`` '' (the top level), a file part, both parts
    text/plain, sent as MultipartEncoder sends it (the json part with no filename)."""
    client = (await blocking(api.holdings))[0]["clientId"]
    data = b"contents of test upload.txt\r\n"
    payload = {"parentFolderId": "", "name": "UploadFile.txt", "size": str(len(data)), "isFolder": False,
               "entity": "Client", "primaryDomainKey": client}  # fmt: skip
    body, ctype = form(
        ('form-data; name="json"', {"Content-Type": "text/plain"}, json.dumps(payload).encode()),
        ('form-data; name="file"; filename="test upload.txt"', {"Content-Type": "text/plain"}, data),
    )
    reply = await blocking(api.call, "POST", FILE_PATH, body=body, content_type=ctype)
    assert reply.status == 201, reply
    created = reply.json()["file"]
    assert (created["name"], created["isFolder"], created["parentFolderId"]) == ("UploadFile.txt", False, None)
    assert (await blocking(api.files_by_client))[client] == ["UploadFile.txt"]
    assert (await blocking(api.folders_by_client))[client] == []
    assert await blocking(api.content, created["fileId"]) == data
