"""TimeTap provider specifics against the real sandbox: session tokens, one listing per poll,
``deleted`` objects, ``root_folder``, refreshed presigned URLs, public files, permanent deletes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from daemon.providers.http import HttpClient
from daemon.providers.timetap import ROOT_ID, TimeTapProvider, modified_token, signature
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.sandbox.timetap_backend import TimeTapBackend
from daemon.vocab import ProviderError, RemoteItem, Unsupported
from tests.providers.conftest import PROVIDER_FACTORIES, ContractOptions, fetch
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    async with await start_sandbox("timetap", tmp_path / "sandbox", port=0) as running:
        yield running


def build(sandbox: RunningSandbox, http: HttpClient, **overrides: Any) -> TimeTapProvider:
    """The provider as the contract suite builds it, with ``overrides`` of its remote table."""
    provider = PROVIDER_FACTORIES["timetap"].build({**sandbox.remote, **overrides}, http, ContractOptions())
    assert isinstance(provider, TimeTapProvider)
    return provider


def backend(sandbox: RunningSandbox) -> TimeTapBackend:
    assert isinstance(sandbox.backend, TimeTapBackend)
    return sandbox.backend


def count(sandbox: RunningSandbox, method: str, suffix: str) -> int:
    return sum(1 for r in backend(sandbox).requests if r.method == method and r.path.endswith(suffix))


async def poll(provider: TimeTapProvider) -> tuple[list[RemoteItem], list[RemoteItem]]:
    folders = await provider.list_folders()
    files = [item async for page in provider.list_files() for item in page]
    return folders, files


def test_signature_is_md5_of_key_and_private_key() -> None:
    assert signature("123", "abc") == hashlib.md5(b"123abc").hexdigest()
    assert modified_token(1_700_000_000_000) == "001700000000000"
    assert modified_token(9) < modified_token(10)


async def test_one_listing_request_per_poll_and_version_tokens(sandbox: RunningSandbox, http: HttpClient) -> None:
    b = backend(sandbox)
    folder = b.add_folder(None, "Forms")
    doc = b.add_file(folder.id, "waiver.pdf", b"sign here")
    provider = build(sandbox, http)
    await provider.list_folders()  # token fetched
    b.requests.clear()
    folders, files = await poll(provider)
    assert count(sandbox, "GET", "/files") == 1 and len(b.requests) == 1
    assert [(f.remote_id, f.parent_id, f.name, f.is_dir) for f in folders] == [(folder.id, ROOT_ID, "Forms", True)]
    [item] = files
    assert (item.remote_id, item.parent_id, item.name, item.size, item.digest) == (
        doc.id,
        folder.id,
        "waiver.pdf",
        9,
        None,
    )
    assert item.version == f"9:{doc.modifiedDate}" and item.modified == modified_token(doc.modifiedDate)

    b.set_content(doc.id, b"signed, second version")
    (_, [changed]) = await poll(provider)
    assert changed.version != item.version and changed.size == 22
    assert await fetch(provider, changed) == b"signed, second version"


async def test_deleted_objects_and_orphans_are_left_out(sandbox: RunningSandbox, http: HttpClient) -> None:
    b = backend(sandbox)
    gone_folder = b.add_folder(None, "old")
    b.add_file(gone_folder.id, "inside.txt", b"x")
    gone_file = b.add_file(None, "gone.txt", b"y")
    keep = b.add_file(None, "keep.txt", b"z")
    b.soft_delete(gone_folder.id)
    b.soft_delete(gone_file.id)
    folders, files = await poll(build(sandbox, http))
    assert folders == [] and [f.remote_id for f in files] == [keep.id]


async def test_root_folder_limits_the_library_to_its_subtree(sandbox: RunningSandbox, http: HttpClient) -> None:
    b = backend(sandbox)
    outside = b.add_file(None, "outside.txt", b"o")
    root = b.add_folder(None, "Clients")
    sub = b.add_folder(root.id, "Smith")
    inner = b.add_file(sub.id, "intake.pdf", b"i")
    top = b.add_file(root.id, "index.txt", b"t")
    provider = build(sandbox, http, root_folder=root.id)
    assert provider.root_id == root.id
    folders, files = await poll(provider)
    assert [(f.remote_id, f.parent_id) for f in folders] == [(sub.id, root.id)]
    assert {(f.remote_id, f.parent_id) for f in files} == {(inner.id, sub.id), (top.id, root.id)}
    assert outside.id not in {f.remote_id for f in files}
    b.soft_delete(root.id)
    with pytest.raises(ProviderError, match="root_folder"):
        await provider.list_folders()


async def test_expired_token_is_renewed_once_even_for_concurrent_requests(
    sandbox: RunningSandbox, http: HttpClient
) -> None:
    b = backend(sandbox)
    for i in range(4):
        b.add_file(None, f"f{i}.txt", f"content {i}".encode())
    provider = build(sandbox, http)
    await poll(provider)
    assert count(sandbox, "GET", "/sessionToken") == 1
    b.expire_tokens()
    got: dict[str, bytes] = {}

    async def mkdir(name: str) -> None:
        got[name] = (await provider.mkdir(ROOT_ID, name)).name.encode()

    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "c"):
                tg.start_soon(mkdir, name)
    assert sorted(got) == ["a", "b", "c"]
    assert count(sandbox, "GET", "/sessionToken") == 2  # one renewal for three 401s
    assert [r.status for r in b.requests if r.path.endswith("/files")].count(401) == 3
    text = repr(logs)
    for secret in (sandbox.remote["api_key"], sandbox.remote["private_key"], *b.tokens):
        assert secret not in text
    assert any(e["event"] == "session_token_renewed" for e in logs)


async def test_expired_presigned_url_is_refreshed_by_one_listing(sandbox: RunningSandbox, http: HttpClient) -> None:
    """TimeTap hands out download URLs in its listing only: an expired one is refreshed by listing again,
    once (a URL refused after the refresh too fails as transient: see the contract suite)."""
    b = backend(sandbox)
    doc = b.add_file(None, "private.txt", b"private bytes")
    provider = build(sandbox, http)
    b.presign_ttl = -10.0  # every URL handed out now is already expired
    _, [item] = await poll(provider)
    b.presign_ttl = 300.0
    b.requests.clear()
    assert await fetch(provider, item) == b"private bytes"
    blob_statuses = [r.status for r in b.requests if r.path.startswith("/s3/")]
    assert blob_statuses == [403, 200]
    assert count(sandbox, "GET", "/files") == 1
    assert doc.id == item.remote_id


async def test_public_asset_downloads_from_a_plain_url(sandbox: RunningSandbox, http: HttpClient) -> None:
    b = backend(sandbox)
    photo = b.add_file(None, "logo.png", b"\x89PNG public")
    assert photo.fileLibraryType == "ASSET"
    provider = build(sandbox, http)
    _, [item] = await poll(provider)
    assert await fetch(provider, item) == b"\x89PNG public"
    [blob] = [r for r in b.requests if r.path.startswith("/s3/")]
    assert blob.path.startswith("/s3/tt-client-public/") and blob.query == ""


async def test_upload_move_and_permanent_delete(sandbox: RunningSandbox, http: HttpClient, tmp_path: Path) -> None:
    b = backend(sandbox)
    provider = build(sandbox, http)
    outer = await provider.mkdir(ROOT_ID, "Waivers")
    inner = await provider.mkdir(outer.remote_id, "2024")
    source = write_source(tmp_path / "w.pdf", b"%PDF waiver")
    item = await provider.upload(inner.remote_id, "waiver.pdf", source)
    stored = b.get(item.remote_id)
    assert (stored.parentFileLibraryUUID, stored.createdUser, stored.fileLibraryType) == (
        inner.remote_id,
        sandbox.remote["user_name"],
        "DOCUMENT",
    )
    assert b.path_of(stored) == "Waivers/2024/waiver.pdf"

    moved_folder = await provider.move(inner, ROOT_ID, "Waivers 2024")
    assert (moved_folder.parent_id, moved_folder.name) == (ROOT_ID, "Waivers 2024")
    assert b.path_of(b.get(item.remote_id)) == "Waivers 2024/waiver.pdf"
    renamed = await provider.move(item, outer.remote_id, "signed.pdf")
    assert (renamed.remote_id, renamed.parent_id, renamed.name) == (item.remote_id, outer.remote_id, "signed.pdf")

    with pytest.raises(Unsupported):
        await provider.update(renamed, source)
    await provider.delete(renamed)
    assert renamed.remote_id not in b.objects  # gone for good, no trash
    _, files = await poll(provider)
    assert files == []


async def test_tokens_that_expire_within_a_burst_of_concurrent_uploads_are_renewed_as_often_as_needed(
    tmp_path: Path, http: HttpClient
) -> None:
    """A token that runs out while eight uploads share it: a request refused with a token another one
    had already renewed tries the newer one, so every upload lands (a second 401 escaped before)."""
    async with await start_sandbox("timetap", tmp_path / "sandbox", port=0, token_uses=2) as running:
        provider = build(running, http)
        names = [f"scan-{i}.pdf" for i in range(8)]
        landed: list[str] = []

        async def upload(name: str) -> None:
            source = write_source(tmp_path / name, f"%PDF {name}".encode())
            landed.append((await provider.upload(ROOT_ID, name, source)).name)

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(upload, name)
        assert sorted(landed) == names
        assert sorted(o.fileName for o in backend(running).objects.values() if o.fileName in names) == names
