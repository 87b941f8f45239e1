"""The provider contract suite's registry: one entry per provider, each backed by its sandbox.

A new provider joins the suite by adding a ``ProviderFactory`` to ``PROVIDER_FACTORIES``; every test
in ``test_contract.py`` then runs against it, skipping what its ``Capabilities`` rule out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from daemon.providers.base import Provider
from daemon.providers.cliniko import ClinikoProvider
from daemon.providers.coredata import CoreDataProvider
from daemon.providers.coreplus import CorePlusProvider
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.providers.timetap import TimeTapProvider
from daemon.sandbox.middleware import FAULT_HOOKS, FaultHook
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.vocab import RemoteItem

FAST_RETRY = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@dataclass(frozen=True, slots=True)
class ContractOptions:
    """Knobs the suite turns so small data exercises paging and the large-upload path."""

    page_size: int = 3
    multipart_threshold: int = 64 * 1024
    overlap_seconds: int = 0


@dataclass(frozen=True, slots=True)
class ProviderFactory:
    """How to build one provider against its sandbox.

    ``build(remote, http, options)`` gets the sandbox's ready ``[library.remote]`` table (``http`` None:
    the provider makes its own client, with its own pacing and hints);
    ``secret_field`` names the key in that table the auth-failure test spoils, ``secrets`` every key
    holding a secret, and ``settings_hint`` what the refusal message tells the operator to check;
    ``presigned_marker`` is a path prefix of the provider's presigned content URLs, and
    ``content_path(remote_id)`` the API path that hands out a file's download URL (``url_in_listing``:
    the listing hands out the first one, so only a refresh asks that path).
    ``upload_parent`` returns the folder the suite uploads into (default: the root; providers that
    keep files per patient/client make one); ``probe`` is one authenticated request (default:
    ``list_folders``; push-only providers list nothing).
    """

    build: Callable[[dict[str, Any], HttpClient | None, ContractOptions], Provider]
    secret_field: str
    secrets: tuple[str, ...]
    settings_hint: str
    presigned_marker: str
    content_path: Callable[[str], str] = lambda remote_id: ""
    url_in_listing: bool = False
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    upload_parent: Callable[[Provider, RunningSandbox], Awaitable[str]] | None = None
    probe: Callable[[Provider], Awaitable[object]] | None = None
    pages: bool = True  # listings are paged (page_size applies); False: one request per listing


def _coredata(remote: dict[str, Any], http: HttpClient | None, options: ContractOptions) -> Provider:
    return CoreDataProvider(
        remote["base_url"],
        remote["root"],
        remote["api_user"],
        remote["api_key"],
        http=http,
        page_size=options.page_size,
        multipart_threshold=options.multipart_threshold,
        overlap_seconds=options.overlap_seconds,
    )


def _coreplus(remote: dict[str, Any], http: HttpClient | None, options: ContractOptions) -> Provider:
    # the provider builds its own client: it carries the consumer's shared 10/s pacing limiter
    return CorePlusProvider(
        remote["base_url"],
        remote["consumer_id"],
        remote["consumer_secret"],
        remote["access_token"],
        issuer=remote["issuer"],
        audience=remote["audience"],
        retry=FAST_RETRY,
        page_size=options.page_size,
    )


async def _coreplus_client_folder(provider: Provider, sandbox: RunningSandbox) -> str:
    """Files live in client folders: make a client and resolve its folder as the engine would."""
    client = sandbox.backend.add_client("Contract", "Suite")
    folder = await cast(CorePlusProvider, provider).resolve_local_folder(provider.root_id, "Contract Suite")
    assert folder is not None and folder.remote_id == client.id
    return folder.remote_id


async def _coreplus_probe(provider: Provider) -> object:
    return await cast(CorePlusProvider, provider).clients(refresh=True)


def _timetap(remote: dict[str, Any], http: HttpClient | None, options: ContractOptions) -> Provider:
    return TimeTapProvider(
        remote["base_url"],
        remote["api_key"],
        remote["private_key"],
        business_id=int(remote["business_id"]),
        user_name=remote["user_name"],
        root_folder=remote.get("root_folder"),
        http=http,
    )


def _cliniko(remote: dict[str, Any], http: HttpClient | None, options: ContractOptions) -> Provider:
    return ClinikoProvider(
        remote["base_url"],
        remote["api_key"],
        remote["user_agent"],
        http=http,
        per_page=options.page_size,
        overlap_seconds=options.overlap_seconds,
    )


async def _cliniko_patient_folder(provider: Provider, sandbox: RunningSandbox) -> str:
    """Attachments belong to patients: make one and resolve its folder as the engine would."""
    patient = sandbox.backend.add_patient("Contract", "Suite")
    folder = await cast(ClinikoProvider, provider).resolve_local_folder(
        provider.root_id, f"Suite, Contract ({patient.id})"
    )
    assert folder is not None and folder.remote_id == str(patient.id)
    return folder.remote_id


PROVIDER_FACTORIES: dict[str, ProviderFactory] = {
    "coredata": ProviderFactory(
        build=_coredata,
        secret_field="api_key",
        secrets=("api_key",),
        settings_hint="check api_user and api_key of this CoreData library",
        presigned_marker="/laika/",
        content_path=lambda remote_id: f"/api/v2/files/{remote_id}/content/",
    ),
    "cliniko": ProviderFactory(
        build=_cliniko,
        secret_field="api_key",
        secrets=("api_key",),
        settings_hint="check api_key of this Cliniko library",
        presigned_marker="/s3/cliniko-sandbox-files/",
        content_path=lambda remote_id: f"/v1/patient_attachments/{remote_id}/content",
        sandbox_options={"processing_delay": 0},
        upload_parent=_cliniko_patient_folder,
    ),
    "coreplus": ProviderFactory(
        build=_coreplus,
        secret_field="consumer_secret",
        secrets=("consumer_secret", "access_token"),
        settings_hint="check consumer_id, consumer_secret, access_token",
        presigned_marker="",
        upload_parent=_coreplus_client_folder,
        probe=_coreplus_probe,
    ),
    "timetap": ProviderFactory(
        build=_timetap,
        secret_field="private_key",
        secrets=("api_key", "private_key"),
        settings_hint="check api_key and private_key of this TimeTap library",
        presigned_marker="/s3/tt-client-private/",
        content_path=lambda remote_id: "/files",
        url_in_listing=True,
        pages=False,
    ),
}


@dataclass(slots=True)
class ProviderEnv:
    """A provider wired to a running sandbox, plus what tests need to poke at both."""

    name: str
    provider: Provider
    sandbox: RunningSandbox
    factory: ProviderFactory
    http: HttpClient
    options: ContractOptions

    def build(self, remote: dict[str, Any], http: HttpClient | None = None) -> Provider:
        return self.factory.build(remote, http or self.http, self.options)

    def build_standalone(self, remote: dict[str, Any]) -> Provider:
        """The provider with the HTTP client it makes for itself (as the daemon builds it)."""
        return self.factory.build(remote, None, self.options)

    async def upload_parent(self) -> str:
        """Where the suite uploads files (the root unless the provider keeps files per client)."""
        if self.factory.upload_parent is None:
            return self.provider.root_id
        return await self.factory.upload_parent(self.provider, self.sandbox)

    async def probe(self, provider: Provider | None = None) -> object:
        """One authenticated request that every provider can make."""
        target = provider or self.provider
        if self.factory.probe is None:
            return await target.list_folders()
        return await self.factory.probe(target)

    def __iter__(self) -> Iterator[Any]:
        """``provider, sandbox = provider_env`` works too."""
        return iter((self.provider, self.sandbox))


async def fetch(provider: Provider, item: RemoteItem) -> bytes:
    """The content of ``item``, downloaded into memory."""
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await provider.download(item, sink)
    return b"".join(chunks)


def fault_hooks(sandbox: RunningSandbox) -> list[FaultHook]:
    """The sandbox app's fault-injection hooks (the runner exposes no public handle to its app yet)."""
    runner = sandbox._runner
    assert runner is not None, "sandbox is not running"
    return runner.app[FAULT_HOOKS]


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """A client without pacing and with quick retries, shared by the providers of one test."""
    client = HttpClient(retry=FAST_RETRY)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=sorted(PROVIDER_FACTORIES))
async def provider_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProviderEnv]:
    name: str = request.param
    factory = PROVIDER_FACTORIES[name]
    sandbox = await start_sandbox(name, tmp_path / "sandbox", port=0, seed=0, **factory.sandbox_options)
    http = HttpClient(retry=FAST_RETRY)
    options = ContractOptions()
    provider = factory.build(dict(sandbox.remote), http, options)
    try:
        yield ProviderEnv(name, provider, sandbox, factory, http, options)
    finally:
        await provider.aclose()
        await http.aclose()
        await sandbox.stop()
