"""The provider contract suite's registry: one entry per provider, each backed by its sandbox.

A new provider joins the suite by adding a ``ProviderFactory`` to ``PROVIDER_FACTORIES``; every test
in ``test_contract.py`` then runs against it, skipping what its ``Capabilities`` rule out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daemon.providers.base import Provider
from daemon.providers.coredata import CoreDataProvider
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.middleware import FAULT_HOOKS, FaultHook
from daemon.sandbox.runner import RunningSandbox, start_sandbox

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

    ``build(remote, http, options)`` gets the sandbox's ready ``[library.remote]`` table;
    ``secret_field`` names the key in that table the auth-failure test spoils;
    ``presigned_marker`` is a path prefix of the provider's presigned content URLs.
    """

    build: Callable[[dict[str, Any], HttpClient, ContractOptions], Provider]
    secret_field: str
    presigned_marker: str
    sandbox_options: dict[str, Any] = field(default_factory=dict)


def _coredata(remote: dict[str, Any], http: HttpClient, options: ContractOptions) -> Provider:
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


PROVIDER_FACTORIES: dict[str, ProviderFactory] = {
    "coredata": ProviderFactory(build=_coredata, secret_field="api_key", presigned_marker="/laika/"),
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

    def __iter__(self) -> Iterator[Any]:
        """``provider, sandbox = provider_env`` works too."""
        return iter((self.provider, self.sandbox))


def fault_hooks(sandbox: RunningSandbox) -> list[FaultHook]:
    """The sandbox app's fault-injection hooks (the runner exposes no public handle to its app yet)."""
    runner = sandbox._runner
    assert runner is not None, "sandbox is not running"
    return runner.app[FAULT_HOOKS]


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
