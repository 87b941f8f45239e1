"""The contract every provider passes, run against each provider's sandbox (see conftest.py).

Tests only use the Provider protocol and the sandbox's request log, so they hold for every provider;
a missing capability skips the cases it rules out.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from aiohttp import web
from yarl import URL

from daemon.local.source import UploadSource
from daemon.providers.base import Provider
from daemon.providers.coreplus import CorePlusProvider
from daemon.providers.http import HttpClient, Response
from daemon.sandbox.faults import FaultPlan
from daemon.vocab import AuthError, PreconditionFailed, RemoteItem, TransientError
from tests.providers.conftest import FAST_RETRY, ProviderEnv, fault_hooks, fetch
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio


def need(provider: Provider, *capabilities: str) -> None:
    for cap in capabilities:
        if not getattr(provider.capabilities, cap):
            pytest.skip(f"{provider.name} lacks {cap}")


def need_listing(provider: Provider) -> None:
    """Push-only providers (no download) list nothing either: their API documents only uploads."""
    if not provider.capabilities.can_download:
        pytest.skip(f"{provider.name} is push-only: nothing to list or download")


async def all_files(provider: Provider) -> dict[str, RemoteItem]:
    """Every file of a full listing by id (a restarted walk may repeat items: upserts)."""
    return {item.remote_id: item async for page in provider.list_files() for item in page}


async def changed(provider: Provider, since: str) -> dict[str, RemoteItem]:
    return {item.remote_id: item async for page in provider.list_changed(since) for item in page}


class Uploader:
    """Writes local files into tmp_path and uploads them, returning what the server reports."""

    def __init__(self, provider: Provider, tmp_path: Path) -> None:
        self.provider = provider
        self.dir = tmp_path / "local"
        self.dir.mkdir(exist_ok=True)
        self.count = 0

    def write(self, data: bytes) -> UploadSource:
        self.count += 1
        return write_source(self.dir / f"f{self.count}", data)

    async def upload(self, parent_id: str, name: str, data: bytes) -> RemoteItem:
        source = self.write(data)
        digest = source.digest
        item = await self.provider.upload(parent_id, name, source)
        assert item.name == name and item.parent_id == parent_id and not item.is_dir
        assert item.size in (None, len(data))
        if self.provider.capabilities.has_digest:
            assert item.digest == digest
        return item

    async def update(self, item: RemoteItem, data: bytes) -> RemoteItem:
        return await self.provider.update(item, self.write(data))


@pytest.fixture
def up(provider_env: ProviderEnv, tmp_path: Path) -> Uploader:
    return Uploader(provider_env.provider, tmp_path)


def requests_of(env: ProviderEnv) -> list[Any]:
    return list(env.sandbox.backend.requests)


async def test_listing_across_pages_with_nested_folders(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need(provider, "can_mkdir")
    need_listing(provider)
    root = provider.root_id
    a = await provider.mkdir(root, "Akten")
    b = await provider.mkdir(a.remote_id, "Größe 2024")
    c = await provider.mkdir(root, "c")
    expected: dict[str, tuple[str, str, bytes]] = {}
    for i, parent in enumerate([root, root, a.remote_id, a.remote_id, a.remote_id, b.remote_id] * 2):
        data = f"file {i} ".encode() * (i + 1)
        item = await up.upload(parent, f"Datei {i}.txt", data)
        expected[item.remote_id] = (parent, f"Datei {i}.txt", data)
    assert len(expected) == 12

    folders = {f.remote_id: f for f in await provider.list_folders()}
    assert set(folders) == {a.remote_id, b.remote_id, c.remote_id}
    assert folders[b.remote_id].parent_id == a.remote_id and folders[b.remote_id].name == "Größe 2024"
    assert all(f.is_dir for f in folders.values())

    provider_env.sandbox.backend.requests.clear()
    files = await all_files(provider)
    assert {k: (v.parent_id, v.name) for k, v in files.items()} == {k: v[:2] for k, v in expected.items()}
    for remote_id, (_, _, data) in expected.items():
        assert files[remote_id].size in (None, len(data))
        if provider.capabilities.has_digest:
            assert files[remote_id].digest == hashlib.md5(data).hexdigest()
        assert files[remote_id].version
    if provider_env.factory.pages:
        assert len(requests_of(provider_env)) >= 12 // provider_env.options.page_size  # it paged
    else:  # one listing request per poll, at most (list_files may reuse list_folders' listing)
        assert len(requests_of(provider_env)) <= 1


async def test_changed_since_reports_only_changes(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need(provider, "changed_since")
    root = await provider_env.upload_parent()
    a = await up.upload(root, "a.txt", b"a")
    old = await up.upload(root, "old.txt", b"old")
    last = await up.upload(root, "last.txt", b"last")
    cursor = max(i.modified or "" for i in (await all_files(provider)).values())
    assert cursor == last.modified

    if provider.capabilities.can_update:
        a2 = await up.update(a, b"a, second version")
    else:
        a2 = await up.upload(root, "a2.txt", b"a, second version")
    seen = await changed(provider, cursor)
    assert a2.remote_id in seen
    assert old.remote_id not in seen
    assert set(seen) <= {a2.remote_id, last.remote_id}  # the cursor's own item may come back

    cursor = max(i.modified or "" for i in seen.values())
    provider_env.sandbox.backend.requests.clear()
    quiet = await changed(provider, cursor)
    assert set(quiet) <= {a2.remote_id}
    assert len(requests_of(provider_env)) == 1


async def test_download_matches_digest(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need_listing(provider)
    data = os.urandom(300_000)
    item = await up.upload(await provider_env.upload_parent(), "blob.bin", data)
    listed = (await all_files(provider))[item.remote_id]
    content = await fetch(provider, listed)
    assert content == data
    if provider.capabilities.has_digest:
        assert hashlib.md5(content).hexdigest() == listed.digest


@pytest.mark.parametrize("size", [10, 200 * 1024], ids=["small", "over-threshold"])
async def test_upload_new_file(provider_env: ProviderEnv, up: Uploader, size: int) -> None:
    provider = provider_env.provider
    data = os.urandom(size)
    item = await up.upload(await provider_env.upload_parent(), "Neue Datei ü.pdf", data)
    if not provider.capabilities.can_download:
        assert item.version and item.remote_id  # push-only: what the engine records is all there is
        return
    assert (await all_files(provider))[item.remote_id].name == "Neue Datei ü.pdf"
    assert await fetch(provider, item) == data


@pytest.mark.parametrize("size", [10, 200 * 1024], ids=["small", "over-threshold"])
async def test_update_content_with_precondition(provider_env: ProviderEnv, up: Uploader, size: int) -> None:
    provider = provider_env.provider
    need(provider, "can_update")
    item = await up.upload(provider.root_id, "doc.txt", b"first")
    data = os.urandom(size)
    fresh = await up.update(item, data)
    assert fresh.remote_id == item.remote_id and fresh.name == "doc.txt"
    assert fresh.version != item.version
    if provider.capabilities.has_digest:
        assert fresh.digest == hashlib.md5(data).hexdigest()
    assert await fetch(provider, fresh) == data
    with pytest.raises(PreconditionFailed):
        await up.update(item, b"stale writer")  # item.version is no longer the server's
    assert await fetch(provider, fresh) == data


async def test_rename_and_move(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need(provider, "can_move", "can_mkdir")
    folder = await provider.mkdir(provider.root_id, "target")
    item = await up.upload(provider.root_id, "before.txt", b"content")
    renamed = await provider.move(item, provider.root_id, "after.txt")
    assert (renamed.remote_id, renamed.name, renamed.parent_id) == (
        item.remote_id,
        "after.txt",
        provider.root_id,
    )
    moved = await provider.move(renamed, folder.remote_id, "after.txt")
    assert moved.parent_id == folder.remote_id
    if provider.capabilities.has_digest:
        assert moved.digest == item.digest
    listed = (await all_files(provider))[item.remote_id]
    assert (listed.name, listed.parent_id) == ("after.txt", folder.remote_id)


async def test_move_folder(provider_env: ProviderEnv) -> None:
    provider = provider_env.provider
    need(provider, "can_move_dir", "can_mkdir")
    a = await provider.mkdir(provider.root_id, "a")
    b = await provider.mkdir(provider.root_id, "b")
    moved = await provider.move(b, a.remote_id, "b2")
    assert (moved.remote_id, moved.parent_id, moved.name) == (b.remote_id, a.remote_id, "b2")
    folders = {f.remote_id: f for f in await provider.list_folders()}
    assert (folders[b.remote_id].parent_id, folders[b.remote_id].name) == (a.remote_id, "b2")


async def test_delete_file_and_empty_folder(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need(provider, "can_delete")
    parent = await provider_env.upload_parent()
    keep = await up.upload(parent, "keep.txt", b"keep")
    gone = await up.upload(parent, "gone.txt", b"gone")
    await provider.delete(gone)
    assert set(await all_files(provider)) == {keep.remote_id}
    if provider.capabilities.can_rmdir and provider.capabilities.can_mkdir:
        folder = await provider.mkdir(provider.root_id, "empty")
        await provider.delete(folder)
        assert folder.remote_id not in {f.remote_id for f in await provider.list_folders()}


async def test_mkdir_and_get_folder(provider_env: ProviderEnv) -> None:
    provider = provider_env.provider
    need(provider, "can_mkdir")
    outer = await provider.mkdir(await provider_env.upload_parent(), "outer")
    inner = await provider.mkdir(outer.remote_id, "inner")
    assert (inner.is_dir, inner.name, inner.parent_id) == (True, "inner", outer.remote_id)
    assert len({provider.root_id, outer.remote_id, inner.remote_id}) == 3
    need_listing(provider)
    got = await provider.get_folder(inner.remote_id)
    assert got is not None and (got.name, got.parent_id) == ("inner", outer.remote_id)
    assert {f.remote_id for f in await provider.list_folders()} == {outer.remote_id, inner.remote_id}


async def test_get_unknown_folder_is_none(provider_env: ProviderEnv) -> None:
    need_listing(provider_env.provider)
    assert await provider_env.provider.get_folder("00000000-0000-0000-0000-000000000000") is None


async def test_refused_credentials_name_the_settings_to_check_and_no_secret(provider_env: ProviderEnv) -> None:
    """A wrong secret is an ``AuthError`` whose message says which settings of the library to check (the
    provider's own client carries that hint) and holds neither the wrong secret nor any right one."""
    remote = dict(provider_env.sandbox.remote)
    remote[provider_env.factory.secret_field] = "not-the-key"
    provider = provider_env.build_standalone(remote)
    try:
        with pytest.raises(AuthError) as info:
            await provider_env.probe(provider)
    finally:
        await provider.aclose()
    message = str(info.value)
    assert "credential" in message or "key" in message
    assert provider_env.factory.settings_hint in message
    assert "not-the-key" not in message
    for key in provider_env.factory.secrets:
        assert str(provider_env.sandbox.remote[key]) not in message


class SpoilingClient(HttpClient):
    """Spoils the signature of the first ``count`` presigned URL fetches, as an expired URL would be."""

    def __init__(self, marker: str, count: int) -> None:
        super().__init__(retry=FAST_RETRY)
        self.marker = marker
        self.remaining = count

    async def request(self, method: str, url: URL | str, *, expect: Collection[int], **kwargs: Any) -> Response:
        target = url if isinstance(url, URL) else URL(url, encoded=True)
        if method == "GET" and self.marker in target.path and self.remaining > 0:
            self.remaining -= 1
            query = {k: ("AAAA" if "signature" in k.lower() else v) for k, v in target.query.items()}
            target = target.with_query(query)
        return await super().request(method, target, expect=expect, **kwargs)


async def test_expired_presigned_url_is_fetched_again(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    need_listing(provider)
    item = await up.upload(await provider_env.upload_parent(), "x.bin", b"presigned content")
    spoiler = SpoilingClient(provider_env.factory.presigned_marker, count=1)
    try:
        other = provider_env.build(dict(provider_env.sandbox.remote), http=spoiler)
        provider_env.sandbox.backend.requests.clear()
        assert await fetch(other, item) == b"presigned content"
    finally:
        await spoiler.aclose()
    presigned = [r for r in requests_of(provider_env) if provider_env.factory.presigned_marker in r.path]
    assert [r.status for r in presigned] == [403, 200]


async def test_presigned_url_refused_twice_is_a_transient_failure(provider_env: ProviderEnv, up: Uploader) -> None:
    """Every presigned URL has expired: the provider asks for a fresh one once, and when that is refused
    too the download fails as transient (retried on a later pass) before any byte reached the sink."""
    provider = provider_env.provider
    need_listing(provider)
    item = await up.upload(await provider_env.upload_parent(), "old.txt", b"old")
    backend = provider_env.sandbox.backend
    backend.presign_ttl = -60.0  # every URL is born expired, those a listing hands out too
    listed = (await all_files(provider))[item.remote_id]

    async def sink(chunk: bytes) -> None:
        raise AssertionError("no bytes expected")

    backend.requests.clear()
    with pytest.raises(TransientError, match="refused twice"):
        await provider.download(listed, sink)
    presigned = [r for r in requests_of(provider_env) if provider_env.factory.presigned_marker in r.path]
    assert [r.status for r in presigned] == [403, 403]
    url_path = provider_env.factory.content_path(item.remote_id)
    asked = sum(1 for r in requests_of(provider_env) if r.method == "GET" and r.path.endswith(url_path))
    assert asked == (1 if provider_env.factory.url_in_listing else 2)  # one fresh URL after the first refusal


async def test_server_error_once_is_retried(provider_env: ProviderEnv, up: Uploader) -> None:
    provider = provider_env.provider
    item = await up.upload(await provider_env.upload_parent(), "r.txt", b"retry me")
    failures = [503, 500]

    async def flaky(request: web.Request) -> web.StreamResponse | None:
        if request.method == "GET" and failures:
            return web.json_response({"error_message": "try again"}, status=failures.pop(0))
        return None

    fault_hooks(provider_env.sandbox).append(flaky)
    provider_env.sandbox.backend.requests.clear()
    if not provider.capabilities.can_download:  # push-only: retry the one GET it has
        await provider_env.probe()
        assert [r.status for r in requests_of(provider_env)][:3] == [503, 500, 200] and not failures
        return
    assert set(await all_files(provider)) == {item.remote_id}
    statuses = [r.status for r in requests_of(provider_env)]
    assert statuses[:2] == [503, 500] and not failures
    assert await fetch(provider, item) == b"retry me"


@dataclass(frozen=True, slots=True)
class PagedWalk:
    """A provider's paged walk: the listing's ``route`` (regex), the query parameter naming a page,
    ``ids`` walks it and returns the ids it listed, ``fill`` makes enough rows for several pages, and
    ``truth`` (where the sandbox tells) is what the listing holds."""

    route: str
    page_param: str
    ids: Callable[[ProviderEnv], Awaitable[set[str]]]
    fill: Callable[[ProviderEnv, Uploader], Awaitable[object]]
    truth: Callable[[Any], set[str]] | None = None


async def _file_ids(env: ProviderEnv) -> set[str]:
    return set(await all_files(env.provider))


async def _client_ids(env: ProviderEnv) -> set[str]:
    return {c.client_id for c in await cast(CorePlusProvider, env.provider).clients(refresh=True)}


async def _seven_files(env: ProviderEnv, up: Uploader) -> None:
    parent = await env.upload_parent()
    for i in range(7):
        await up.upload(parent, f"walk {i}.txt", f"row {i}".encode())


async def _seven_clients(env: ProviderEnv, up: Uploader) -> None:
    for i in range(7):
        env.sandbox.backend.add_client("Walk", f"Number {i}")


PAGED_WALKS = {
    "coredata": PagedWalk("^/api/v2/files/$", "offset", _file_ids, _seven_files),
    "cliniko": PagedWalk(
        "^/v1/patient_attachments$",
        "page",
        _file_ids,
        _seven_files,
        truth=lambda backend: {str(a.id) for a in backend.active_attachments()},
    ),
    "coreplus": PagedWalk(
        "(?i)^/api/core/v2/client/?$",
        "pageNumber",
        _client_ids,
        _seven_clients,
        truth=lambda backend: {c["clientId"] for c in backend.holdings()},
    ),
}


async def test_paged_walk_starts_over_when_the_total_moves(provider_env: ProviderEnv, up: Uploader) -> None:
    """The second page of a walk reports another total (the sandbox's ``total_count_drift`` fault: a row
    added or removed while paging): the walk starts over from its first page, says so once in the log,
    and the listing is still complete (DESIGN rule 4)."""
    walk = PAGED_WALKS.get(provider_env.name)
    if walk is None:
        pytest.skip(f"{provider_env.name} does not page its listings")
    await walk.fill(provider_env, up)
    sandbox = provider_env.sandbox
    pages: list[str] = []
    armed = False

    async def arm_on_second_page(request: web.Request) -> web.StreamResponse | None:
        if re.search(walk.route, request.path):
            pages.append(request.query.get(walk.page_param, ""))
            sandbox.faults.enabled = armed and len(pages) == 1  # decides the next request: page 2
        return None

    fault_hooks(sandbox).append(arm_on_second_page)
    truth = await walk.ids(provider_env)
    if walk.truth is not None:
        assert truth == walk.truth(sandbox.backend)
    undisturbed, pages[:] = list(pages), []
    assert len(undisturbed) >= 3  # several pages, so the second one is not the last

    sandbox.faults.plan = FaultPlan(rates={"total_count_drift": 1.0}, match=walk.route, limit=1, seed=1)
    armed = True
    with structlog.testing.capture_logs() as logs:
        listed = await walk.ids(provider_env)
    assert sandbox.faults.counts == {"total_count_drift": 1}
    assert listed == truth
    assert pages == undisturbed[:2] + undisturbed  # page 2 saw another count: the walk started over
    assert [e["event"] for e in logs].count("listing_restarted") == 1
