"""CoreData-specific behaviour: paging safety, the changed-since fallback, presigned URL handling.

Misbehaving servers (paging loops, shifting totals, broken objects) are small aiohttp stubs on
127.0.0.1, because the sandbox is deliberately well behaved; the rest runs against the sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from aiohttp import web
from yarl import URL

from daemon.local.source import UploadSource
from daemon.providers.base import ListingHorizon
from daemon.providers.coredata import CoreDataProvider, shift_timestamp
from daemon.providers.http import HttpClient
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.vocab import InvalidResponse, RemoteItem
from tests.providers.conftest import FAST_RETRY
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio

ROOT = "root-space"
FOLDERS = [
    {"id": "f1", "title": "one", "parent": ROOT, "modified": "2024-01-01T00:00:00.000001"},
    {"id": "f2", "title": "two", "parent": "f1", "modified": "2024-01-01T00:00:00.000002"},
    {"id": "trash", "title": "trash", "parent": None, "modified": "2024-01-01T00:00:00.000003"},
    {"id": "elsewhere", "title": "x", "parent": "other-space", "modified": "2024-01-01T00:00:00.000004"},
]


def file_obj(i: int, parent: str) -> dict[str, Any]:
    return {
        "id": f"file{i}",
        "filename": f"n{i}.txt",
        "title": f"n{i}",
        "parent": parent,
        "digest": "" if i % 2 else hashlib.md5(str(i).encode()).hexdigest(),
        "size": i,
        "snapshot_id": f"snap{i}",
        "modified": f"2024-01-02T00:00:00.{i:06d}",
    }


def page(objects: list[Any], offset: int, limit: int, total: int, path: str) -> dict[str, Any]:
    nxt = f"{path}?limit={limit}&offset={offset + limit}" if offset + limit < total else None
    return {
        "meta": {"limit": limit, "offset": offset, "total_count": total, "next": nxt, "previous": None},
        "objects": objects,
    }


class Stub:
    """A scripted CoreData: ``files`` answers the file listing, every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.files: Callable[[web.Request], web.StreamResponse] = self.paged_files([])

    def paged_files(self, objects: list[dict[str, Any]], totals: list[int] | None = None) -> Any:
        def handler(request: web.Request) -> web.StreamResponse:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
            total = totals.pop(0) if totals else len(objects)
            return web.json_response(page(objects[offset : offset + limit], offset, limit, total, "/api/v2/files/"))

        return handler

    def app(self) -> web.Application:
        async def folders(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            return web.json_response(page(FOLDERS, 0, 1000, len(FOLDERS), "/api/v2/folders/"))

        async def files(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            return self.files(request)

        app = web.Application()
        app.router.add_get("/api/v2/folders/", folders)
        app.router.add_get("/api/v2/files/", files)
        return app


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, Callable[..., CoreDataProvider]]]:
    s = Stub()
    runner = web.AppRunner(s.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    http = HttpClient(retry=FAST_RETRY)

    def build(**kwargs: Any) -> CoreDataProvider:
        return CoreDataProvider(base, ROOT, "user", "key", http=http, **kwargs)

    yield s, build
    await http.aclose()
    await runner.cleanup()


async def collect(pages: AsyncIterator[list[RemoteItem]]) -> list[RemoteItem]:
    return [item async for p in pages for item in p]


async def test_list_files_keeps_the_library_subtree(
    stub: tuple[Stub, Callable[..., CoreDataProvider]],
) -> None:
    s, build = stub
    objects = [file_obj(i, p) for i, p in enumerate([ROOT, "f1", "f2", "trash", "elsewhere", "nowhere", ROOT])]
    s.files = s.paged_files(objects)
    provider = build(page_size=2)
    folders = await provider.list_folders()
    assert {f.remote_id for f in folders} == {"f1", "f2"}
    items = await collect(provider.list_files())
    assert [i.remote_id for i in items] == ["file0", "file1", "file2", "file6"]
    assert items[0].digest == hashlib.md5(b"0").hexdigest() and items[1].digest is None
    assert (items[2].version, items[2].size, items[2].name) == ("snap2", 2, "n2.txt")
    assert all(r.headers["Authorization"] == "apikey user:key" for r in s.requests)


async def test_listing_newest_is_tenant_wide(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    """The newest stamp of a complete listing counts the files outside the library too: the engine's
    changed-since cursor starts there, so the first poll after it does not fetch the tenant's older
    changes again (``ListingHorizon``)."""
    s, build = stub
    objects = [file_obj(i, p) for i, p in enumerate([ROOT, "f1", "elsewhere", "nowhere", ROOT, "trash"])]
    objects[3]["modified"] = "2024-03-01T00:00:00.000000"  # outside the library, and the newest
    s.files = s.paged_files(objects)
    provider = build(page_size=2)
    assert isinstance(provider, ListingHorizon) and provider.listing_newest is None
    items = await collect(provider.list_files())
    assert "file3" not in {i.remote_id for i in items}
    assert provider.listing_newest == "2024-03-01T00:00:00.000000"


async def test_total_count_never_settles(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    s, build = stub
    s.files = s.paged_files([file_obj(i, ROOT) for i in range(5)], totals=list(range(5, 50)))
    with pytest.raises(InvalidResponse, match="kept changing"):
        await collect(build(page_size=2).list_files())


async def test_paging_loop_is_refused(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    s, build = stub

    def looping(request: web.Request) -> web.StreamResponse:
        body = page([file_obj(1, ROOT)], 0, 1, 3, "/api/v2/files/")
        body["meta"]["next"] = "/api/v2/files/?limit=1&offset=0"
        return web.json_response(body)

    s.files = looping
    with pytest.raises(InvalidResponse, match="loops"):
        await collect(build().list_files())


@pytest.mark.parametrize(
    ("broken", "field"),
    [({"filename": None}, "filename"), ({"snapshot_id": 7}, "snapshot_id"), ({"size": "12"}, "size")],
)
async def test_broken_objects_name_the_field(
    stub: tuple[Stub, Callable[..., CoreDataProvider]], broken: dict[str, Any], field: str
) -> None:
    s, build = stub
    s.files = s.paged_files([{**file_obj(1, ROOT), **broken}])
    with pytest.raises(InvalidResponse, match=field):
        await collect(build().list_files())


async def test_missing_field_is_named(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    s, build = stub
    obj = file_obj(1, ROOT)
    del obj["modified"]
    s.files = s.paged_files([obj])
    with pytest.raises(InvalidResponse, match="'modified'"):
        await collect(build().list_files())


async def test_changed_since_query_and_overlap(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    s, build = stub
    s.files = s.paged_files([{**file_obj(1, "elsewhere"), "modified": "2024-01-02T10:00:01.000000"}])
    items = await collect(build(overlap_seconds=120).list_changed("2024-01-02T10:00:00.500000"))
    assert [i.remote_id for i in items] == ["file1"]  # outside the root, still reported
    assert len(s.requests) == 1
    assert s.requests[0].query["modified__gt"] == "2024-01-02T09:58:00.500000"
    assert s.requests[0].query["order_by"] == "modified"


async def test_changed_since_rejected_falls_back_to_full_listing(
    stub: tuple[Stub, Callable[..., CoreDataProvider]],
) -> None:
    s, build = stub
    full = s.paged_files([file_obj(1, ROOT), file_obj(2, "elsewhere")])

    def picky(request: web.Request) -> web.StreamResponse:
        if "modified__gt" in request.query:
            return web.json_response({"error_message": "no filtering on modified"}, status=400)
        return full(request)

    s.files = picky
    provider = build()
    with structlog.testing.capture_logs() as logs:
        first = await collect(provider.list_changed("2024-01-01T00:00:00"))
        second = await collect(provider.list_changed("2024-01-01T00:00:00"))
    assert [i.remote_id for i in first] == [i.remote_id for i in second] == ["file1"]
    assert [e["event"] for e in logs].count("changed_since_unsupported") == 1
    assert sum("modified__gt" in r.query for r in s.requests) == 1


async def test_changed_since_ignored_falls_back_to_full_listing(
    stub: tuple[Stub, Callable[..., CoreDataProvider]],
) -> None:
    """A server that ignores the filter (rows older than the bound) or the ordering would make the
    keyset walk skip or loop: it is treated as one that rejects the filter."""
    s, build = stub
    s.files = s.paged_files([file_obj(3, ROOT), file_obj(1, ROOT), file_obj(2, "elsewhere")])
    with structlog.testing.capture_logs() as logs:
        items = await collect(build(page_size=2).list_changed("2024-01-02T00:00:00.000001"))
    assert [i.remote_id for i in items] == ["file3", "file1"]
    assert [e["event"] for e in logs].count("changed_since_unsupported") == 1


def test_shift_timestamp_keeps_the_server_shape() -> None:
    assert shift_timestamp("2023-10-25T19:01:18", 120) == "2023-10-25T18:59:18"
    assert shift_timestamp("2023-10-25T19:01:18.000000", 120) == "2023-10-25T18:59:18.000000"
    assert shift_timestamp("2023-01-01T00:00:30.250000", 60) == "2022-12-31T23:59:30.250000"
    with pytest.raises(ValueError):
        shift_timestamp("yesterday", 1)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


class ResettableSink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.resets = 0

    async def __call__(self, chunk: bytes) -> None:
        self.data += chunk

    async def reset(self) -> None:
        self.resets += 1
        self.data.clear()


async def test_download_presigned_without_auth_and_restarts(tmp_path: Path) -> None:
    payload = b"0123456789" * 20_000
    seen: list[tuple[str, str | None]] = []
    blob_calls = 0

    async def content(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.Response(status=302, headers={"Location": "/laika/b1?Expires=1&Signature=s%2Fg"})

    async def blob(request: web.Request) -> web.StreamResponse:
        nonlocal blob_calls
        blob_calls += 1
        seen.append((request.path, request.headers.get("Authorization")))
        if blob_calls == 1:  # break mid-transfer: promise more than we send, then hang up
            response = web.StreamResponse(headers={"Content-Length": str(len(payload))})
            await response.prepare(request)
            await response.write(payload[:70_000])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=payload)

    app = web.Application()
    app.router.add_get("/api/v2/files/{id}/content/", content)
    app.router.add_get("/laika/{blob}", blob)
    runner, base = await _serve(app)
    http = HttpClient(retry=FAST_RETRY)
    try:
        provider = CoreDataProvider(base, ROOT, "user", "key", http=http)
        sink = ResettableSink()
        await provider.download(RemoteItem("x", ROOT, "x.bin"), sink)
        assert bytes(sink.data) == payload and sink.resets == 1
        assert seen == [
            ("/api/v2/files/x/content/", "apikey user:key"),
            ("/laika/b1", None),
            ("/api/v2/files/x/content/", "apikey user:key"),
            ("/laika/b1", None),
        ]
    finally:
        await http.aclose()
        await runner.cleanup()


@pytest.fixture
async def sandboxed(tmp_path: Path) -> AsyncIterator[tuple[RunningSandbox, CoreDataProvider]]:
    sandbox = await start_sandbox("coredata", tmp_path / "sandbox", port=0, seed=0)
    remote = sandbox.remote
    provider = CoreDataProvider(
        remote["base_url"],
        remote["root"],
        remote["api_user"],
        remote["api_key"],
        http=HttpClient(retry=FAST_RETRY),
        page_size=2,
        multipart_threshold=64 * 1024,
        overlap_seconds=0,
    )
    try:
        yield sandbox, provider
    finally:
        await provider.http.aclose()
        await sandbox.stop()


def _local(tmp_path: Path, data: bytes) -> UploadSource:
    return write_source(tmp_path / hashlib.md5(data).hexdigest(), data)


async def test_large_files_go_through_presigned_blobs(
    sandboxed: tuple[RunningSandbox, CoreDataProvider], tmp_path: Path
) -> None:
    sandbox, provider = sandboxed
    small = await provider.upload(provider.root_id, "small.txt", _local(tmp_path, b"small"))
    big_data = bytes(range(256)) * 1024  # 256 KiB, over the 64 KiB threshold
    sandbox.backend.requests.clear()
    big = await provider.upload(provider.root_id, "big.bin", _local(tmp_path, big_data))
    routes = [(r.method, r.path) for r in sandbox.backend.requests]
    assert ("POST", "/api/v3/blob/presigned-upload-url/") in routes
    assert any(m == "PUT" and p.startswith("/laika/") for m, p in routes)
    assert big.digest == hashlib.md5(big_data).hexdigest()
    sandbox.backend.requests.clear()
    fresh = await provider.update(small, _local(tmp_path, big_data[::-1]))
    assert fresh.digest == hashlib.md5(big_data[::-1]).hexdigest() and fresh.version != small.version
    assert ("POST", "/api/v3/blob/presigned-upload-url/") in [(r.method, r.path) for r in sandbox.backend.requests]


async def test_deleted_file_leaves_through_list_changed(
    sandboxed: tuple[RunningSandbox, CoreDataProvider], tmp_path: Path
) -> None:
    sandbox, provider = sandboxed
    item = await provider.upload(provider.root_id, "doomed.txt", _local(tmp_path, b"doomed"))
    assert item.modified is not None
    await provider.delete(item)
    seen = await collect(provider.list_changed(item.modified))
    assert [(i.remote_id, i.parent_id) for i in seen] == [(item.remote_id, sandbox.backend.trash_id)]
    assert await collect(provider.list_files()) == []


async def test_sandbox_change_mid_walk_restarts(
    sandboxed: tuple[RunningSandbox, CoreDataProvider], tmp_path: Path
) -> None:
    sandbox, provider = sandboxed
    for i in range(6):
        sandbox.backend.add_file(None, f"s{i}.txt", f"{i}".encode())
    seen: set[str] = set()
    with structlog.testing.capture_logs() as logs:
        async for items in provider.list_files():
            if not seen:
                sandbox.backend.add_file(None, "late.txt", b"late")
            seen.update(i.name for i in items)
    assert seen == {f"s{i}.txt" for i in range(6)} | {"late.txt"}
    assert [e["event"] for e in logs].count("listing_restarted") == 1


async def test_changed_walk_misses_nothing_when_a_row_changes_mid_walk(
    sandboxed: tuple[RunningSandbox, CoreDataProvider],
) -> None:
    """A row the walk has already passed is edited between two page requests: ordered by ``modified``,
    it moves to the end. Offset paging then shifted every later row one place back and skipped the
    one at the page boundary until the hourly full listing; each page is now its own query from the
    last ``modified`` seen, so the edit cannot hide another change."""
    sandbox, provider = sandboxed  # page_size=2, overlap 0
    backend = sandbox.backend
    start = backend.clock.now()
    nodes = [backend.add_file(None, f"s{i}.txt", f"{i}".encode()) for i in range(7)]
    backend.requests.clear()
    seen: list[RemoteItem] = []
    edited = False
    async for items in provider.list_changed(start):
        seen.extend(items)
        if not edited:  # after page 1, before page 2 is asked for: a colleague edits s0
            backend.set_content(nodes[0].id, b"edited mid-walk")
            edited = True
    names = [i.name for i in seen]
    assert set(names) == {f"s{i}.txt" for i in range(7)}, names
    latest = {i.remote_id: i for i in seen}  # later pages win (items are upserts)
    assert latest[nodes[0].id].version == backend.get_file(nodes[0].id).snapshot_id  # the edit is seen too
    assert sorted(names) == sorted(f"s{i}.txt" for i in [*range(7), 0])  # nothing twice but the edited row


async def test_changed_walk_handles_rows_sharing_a_timestamp(
    stub: tuple[Stub, Callable[..., CoreDataProvider]],
) -> None:
    """A server whose clock has one-second steps stamps many rows alike: ties at a page boundary,
    and a run of ties longer than a page, are walked without a row lost or repeated."""
    s, build = stub
    stamps = ["2024-01-02T00:00:01"] + ["2024-01-02T00:00:02"] * 5 + ["2024-01-02T00:00:03"] * 2
    objects = [{**file_obj(i, ROOT), "modified": stamp} for i, stamp in enumerate(stamps)]
    s.files = filtered_files(objects)
    items = await collect(build(page_size=2, overlap_seconds=0).list_changed("2024-01-02T00:00:00"))
    assert [i.remote_id for i in items] == [f"file{i}" for i in range(len(stamps))]


async def test_idle_changed_walk_is_one_request(stub: tuple[Stub, Callable[..., CoreDataProvider]]) -> None:
    s, build = stub
    s.files = filtered_files([file_obj(i, ROOT) for i in range(3)])
    assert await collect(build(page_size=2, overlap_seconds=0).list_changed("2024-01-03T00:00:00")) == []
    assert len(s.requests) == 1


async def test_changed_walk_fails_on_a_server_that_ignores_offset_in_a_run_of_ties(
    stub: tuple[Stub, Callable[..., CoreDataProvider]],
) -> None:
    """Inside a run of rows sharing one ``modified`` the walk pages by offset; a server that answers
    every offset with the first page (and always a ``next``) once kept it asking forever. A page there
    that brings no row not yet seen is a paging loop: the walk fails instead (like the full listing's
    loop check), and the next poll tries again."""
    s, build = stub
    objects = [{**file_obj(i, ROOT), "modified": "2024-01-02T00:00:02"} for i in range(5)]

    def first_page_always(request: web.Request) -> web.StreamResponse:
        limit = int(request.query.get("limit", "20"))
        return web.json_response(page(objects[:limit], 0, limit, len(objects), "/api/v2/files/"))

    s.files = first_page_always
    with anyio.fail_after(10), pytest.raises(InvalidResponse, match="loop"):
        await collect(build(page_size=2, overlap_seconds=0).list_changed("2024-01-02T00:00:00"))
    assert len(s.requests) <= 4, len(s.requests)


def filtered_files(objects: list[dict[str, Any]]) -> Any:
    """A stub file listing that honours ``modified__gt``/``__gte`` and ``order_by=modified`` (ties in
    list order) with limit/offset paging."""

    def handler(request: web.Request) -> web.StreamResponse:
        rows = list(objects)
        if "modified__gt" in request.query:
            rows = [o for o in rows if o["modified"] > request.query["modified__gt"]]
        if "modified__gte" in request.query:
            rows = [o for o in rows if o["modified"] >= request.query["modified__gte"]]
        if request.query.get("order_by") == "modified":
            rows.sort(key=lambda o: str(o["modified"]))
        limit = int(request.query.get("limit", "20"))
        offset = int(request.query.get("offset", "0"))
        body = page(rows[offset : offset + limit], offset, limit, len(rows), "/api/v2/files/")
        if body["meta"]["next"]:  # tastypie keeps the filters in the next link
            keep = [(k, v) for k, v in request.query.items() if k not in ("limit", "offset")]
            body["meta"]["next"] = str(
                URL("/api/v2/files/").with_query([*keep, ("limit", str(limit)), ("offset", str(offset + limit))])
            )
        return web.json_response(body)

    return handler
