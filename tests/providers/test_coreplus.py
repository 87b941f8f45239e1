"""coreplus provider against its sandbox: client matching, uploads, signed requests, pacing, 429s."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from aiohttp import web

from daemon.local.source import SMALL_FILE, UploadSource
from daemon.providers.base import FolderResolver, Provider
from daemon.providers.coreplus import ROOT_ID, CorePlusProvider, split_parent
from daemon.providers.coreplus_auth import JwtSigner
from daemon.providers.coreplus_clients import Client, match_folder
from daemon.providers.http import RetryPolicy
from daemon.sandbox.coreplus_backend import CorePlusBackend
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.vocab import AuthError, Unsupported
from tests.upload_sources import edited_once_opened, write_source

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=6, base=0.05, cap=0.2)
GUID = "88E372B5-E985-4084-8F69-C888F995FBCC"


def make(sandbox: RunningSandbox, **kwargs: Any) -> CorePlusProvider:
    r = sandbox.remote
    options: dict[str, Any] = {"issuer": r["issuer"], "audience": r["audience"], "retry": FAST, **kwargs}
    return CorePlusProvider(r["base_url"], r["consumer_id"], r["consumer_secret"], r["access_token"], **options)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    async with await start_sandbox("coreplus", tmp_path / "sb", seed=0) as running:
        yield running


@pytest.fixture
async def provider(sandbox: RunningSandbox) -> AsyncIterator[CorePlusProvider]:
    p = make(sandbox, page_size=2)
    try:
        yield p
    finally:
        await p.aclose()


def backend(sandbox: RunningSandbox) -> CorePlusBackend:
    assert isinstance(sandbox.backend, CorePlusBackend)
    return sandbox.backend


def grow(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(b"!")


def local_file(tmp_path: Path, data: bytes, name: str = "f") -> UploadSource:
    return write_source(tmp_path / name, data)


# --- matching (pure) ----------------------------------------------------------------------------


def test_match_by_guid_suffix_then_exact_name() -> None:
    clients = [
        Client(GUID, "Anna", "Smith"),
        Client("11111111-2222-3333-4444-555555555555", "Ben", "Jones"),
        Client("22222222-2222-3333-4444-555555555555", "Ben", "Jones"),
        Client("33333333-2222-3333-4444-555555555555", "Chloe\u0301", "Müller"),
    ]
    assert match_folder(f"anything ({GUID.lower()})", clients).client == clients[0]
    assert match_folder("Anna Smith", clients).client == clients[0]
    assert match_folder("Chloé  Müller", clients).client == clients[3]  # NFC, whitespace folded
    ambiguous = match_folder("Ben Jones", clients)
    assert ambiguous.client is None and "2 coreplus clients" in ambiguous.reason
    assert match_folder("Ben Jones (11111111-2222-3333-4444-555555555555)", clients).client == clients[1]
    assert match_folder("anna smith", clients).client is None  # exact, not fuzzy
    unknown = match_folder("X (99999999-2222-3333-4444-555555555555)", clients)
    assert unknown.client is None and "no coreplus client has the id" in unknown.reason


def test_parent_ids_carry_the_client() -> None:
    assert split_parent(GUID) == (GUID, None)
    assert split_parent(f"{GUID}:F1") == (GUID, "F1")
    with pytest.raises(ValueError):
        split_parent(f"{GUID}:")


# --- against the sandbox --------------------------------------------------------------------------


async def test_protocols_and_push_only_surface(provider: CorePlusProvider, tmp_path: Path) -> None:
    assert isinstance(provider, Provider) and isinstance(provider, FolderResolver)
    caps = provider.capabilities
    assert (caps.can_download, caps.can_update, caps.can_move, caps.can_delete, caps.has_digest) == (False,) * 5
    assert caps.can_mkdir and caps.can_upload and not caps.changed_since
    source = local_file(tmp_path, b"loose")
    with pytest.raises(Unsupported, match="client folder"):
        await provider.upload(ROOT_ID, "loose.txt", source)
    with pytest.raises(Unsupported):
        await provider.mkdir(ROOT_ID, "New Client")
    with pytest.raises(Unsupported):
        await provider.list_folders()
    with pytest.raises(Unsupported):
        [page async for page in provider.list_files()]


async def test_client_folders_resolve_over_pages(sandbox: RunningSandbox, provider: CorePlusProvider) -> None:
    b = backend(sandbox)
    anna = b.add_client("Anna", "Smith")
    for i in range(4):
        b.add_client("Filler", f"Number {i}")
    b.add_client("Ben", "Jones")
    b.add_client("Ben", "Jones")
    b.requests.clear()
    found = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
    assert found is not None and (found.remote_id, found.parent_id, found.is_dir) == (anna.id, ROOT_ID, True)
    pages = [r for r in b.requests if r.path.lower().startswith("/api/core/v2/client")]
    assert len(pages) == 4  # 7 clients, 2 per page: paged to the end
    assert await provider.resolve_local_folder(ROOT_ID, "Ben Jones") is None  # ambiguous
    assert await provider.resolve_local_folder(ROOT_ID, "Nobody") is None
    by_id = await provider.resolve_local_folder(ROOT_ID, f"Whatever ({anna.id.lower()})")
    assert by_id is not None and by_id.remote_id == anna.id
    assert len([r for r in b.requests if r.path.lower().startswith("/api/core/v2/client")]) == 4  # cached


async def test_upload_into_client_and_nested_folders(
    sandbox: RunningSandbox, provider: CorePlusProvider, tmp_path: Path
) -> None:
    client = backend(sandbox).add_client("Anna", "Smith")
    top = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
    assert top is not None
    sub = await provider.resolve_local_folder(top.remote_id, "Letters")
    assert sub is not None and sub.is_dir and sub.parent_id == client.id
    deeper = await provider.mkdir(sub.remote_id, "2024 ü")
    data = bytes(range(256)) * 1000
    source = local_file(tmp_path, data)
    size, digest = source.size, source.digest
    item = await provider.upload(deeper.remote_id, "Bericht März.pdf", source)
    assert (item.parent_id, item.name, item.size, item.digest, item.version) == (
        deeper.remote_id,
        "Bericht März.pdf",
        size,
        None,
        item.remote_id,
    )
    at_top = await provider.upload(top.remote_id, "top.txt", local_file(tmp_path, b"top", "t"))
    (holding,) = [c for c in backend(sandbox).holdings() if c["clientId"] == client.id]
    paths = {i["path"]: i for i in holding["items"]}
    assert set(paths) == {"Letters", "Letters/2024 ü", "Letters/2024 ü/Bericht März.pdf", "top.txt"}
    assert paths["Letters/2024 ü/Bericht März.pdf"]["md5"] == digest
    assert paths["top.txt"]["fileId"] == at_top.remote_id and paths["top.txt"]["parentFolderId"] is None
    stored = backend(sandbox).item(item.remote_id)
    assert stored is not None and backend(sandbox).content(stored) == data


async def test_every_attempt_gets_a_fresh_token(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A 429 is retried with a newly signed token (nbf moves), and the retry is accepted."""
    backend(sandbox).add_client("Anna", "Smith")
    seen: list[str] = []
    throttle = [True]

    async def once_429(request: web.Request) -> web.StreamResponse | None:
        if request.method == "POST":
            seen.append(request.headers["Authorization"])
            if throttle:
                throttle.pop()
                return web.json_response({"statusMessages": [{"code": "TooManyRequests"}]}, status=429)
        return None

    sandbox.fault_hooks.append(once_429)
    ticks = itertools.count(1_700_000_000, 7)
    provider = make(sandbox)
    provider.signer = JwtSigner(
        consumer_id=sandbox.remote["consumer_id"],
        consumer_secret=sandbox.remote["consumer_secret"],
        access_token=sandbox.remote["access_token"],
        issuer=sandbox.remote["issuer"],
        audience=sandbox.remote["audience"],
        clock=lambda: float(next(ticks)),
    )
    backend(sandbox).clock_skew_s = 1_700_000_000 - time.time() + 20  # server "now" just after the ticks
    try:
        top = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
        assert top is not None
        await provider.upload(top.remote_id, "a.txt", local_file(tmp_path, b"a"))
    finally:
        await provider.aclose()
    assert len(seen) == 2 and seen[0] != seen[1]
    nbfs = [jwt.decode(h.split(" ", 1)[1], options={"verify_signature": False})["nbf"] for h in seen]
    assert nbfs[1] > nbfs[0]


async def test_pacing_stays_under_ten_per_second(sandbox: RunningSandbox, tmp_path: Path) -> None:
    backend(sandbox).add_client("Anna", "Smith")
    provider = make(sandbox)
    try:
        top = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
        assert top is not None
        source = local_file(tmp_path, b"x" * 100)
        async with anyio.create_task_group() as tg:
            for i in range(24):
                tg.start_soon(provider.upload, top.remote_id, f"f{i}.txt", source)
    finally:
        await provider.aclose()
    b = backend(sandbox)
    assert b.throttled == 0
    times = b.accepted_at
    assert len(times) == 25
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 9


async def test_429_backs_off_and_retries(tmp_path: Path) -> None:
    async with await start_sandbox("coreplus", tmp_path / "sb", rate_limit=2) as sandbox:
        backend(sandbox).add_client("Anna", "Smith")
        provider = make(sandbox, retry=RetryPolicy(attempts=8, base=0.2, cap=1.0))
        try:
            top = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
            assert top is not None
            source = local_file(tmp_path, b"y")
            for i in range(4):
                await provider.upload(top.remote_id, f"g{i}.txt", source)
        finally:
            await provider.aclose()
        b = backend(sandbox)
        assert b.throttled > 0  # the limit was hit, and every upload still went through exactly once
        (holding,) = b.holdings()
        assert sorted(i["name"] for i in holding["items"]) == [f"g{i}.txt" for i in range(4)]


async def test_clock_skew_moves_nbf_back(tmp_path: Path) -> None:
    async with await start_sandbox("coreplus", tmp_path / "sb", clock_skew_s=-30) as sandbox:
        backend(sandbox).add_client("Anna", "Smith")
        behind = make(sandbox)
        try:
            with pytest.raises(AuthError, match="not yet valid"):
                await behind.clients()
        finally:
            await behind.aclose()
        skewed = make(sandbox, clock_skew=45)
        try:
            assert [c.last_name for c in await skewed.clients()] == ["Smith"]
        finally:
            await skewed.aclose()


async def test_size_mismatch_is_refused_and_nothing_stored(
    sandbox: RunningSandbox, provider: CorePlusProvider, tmp_path: Path
) -> None:
    backend(sandbox).add_client("Anna", "Smith")
    top = await provider.resolve_local_folder(ROOT_ID, "Anna Smith")
    assert top is not None
    # larger than what is read whole at open (SMALL_FILE), so it streams and the growth lands mid-send
    source = local_file(tmp_path, b"1" * (SMALL_FILE + 5))
    with pytest.raises(Exception, match="400"):  # the file grew after it was opened: 1 byte more sent than declared
        await provider.upload(top.remote_id, "a.txt", edited_once_opened(source, lambda: grow(source.path)))
    assert backend(sandbox).holdings()[0]["items"] == []
