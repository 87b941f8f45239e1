"""The coreplus client walk under a ``paging.totalRows`` that moves (the sandbox's ``total_count_drift``
fault): the walk starts over and never takes a partial client list for the whole one."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daemon.providers.coreplus import CLIENT_PATH, MAX_CLIENT_WALK_RESTARTS, CorePlusProvider
from daemon.providers.http import RetryPolicy
from daemon.sandbox.faults import FaultPlan, _drift_count
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.vocab import InvalidResponse
from tests.coreplus_api import CorePlusAPI
from tests.providers.test_coreplus import make as make_provider

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)
CLIENT_ROUTE = "(?i)^/api/core/v2/client/?$"


def make(sandbox: RunningSandbox, **kwargs: Any) -> CorePlusProvider:
    return make_provider(sandbox, retry=FAST, **kwargs)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    async with await start_sandbox("coreplus", tmp_path / "sb", seed=7, rate_limit=1000) as running:
        yield running


def drift_once(sandbox: RunningSandbox, on_request: int) -> list[str]:
    """Drift ``totalRows`` of the ``on_request``-th client list request only; returns the pageNumber
    of every client list request, in order."""
    sandbox.faults.plan = FaultPlan(rates={"total_count_drift": 1.0}, match=CLIENT_ROUTE, limit=1)
    sandbox.faults.enabled = on_request == 1
    pages: list[str] = []

    async def arm(request: web.Request) -> web.StreamResponse | None:
        if re.search(CLIENT_ROUTE, request.path):
            pages.append(request.query.get("pageNumber", ""))
            sandbox.faults.enabled = len(pages) + 1 == on_request  # the draw for the next request
        return None

    sandbox.fault_hooks.append(arm)
    return pages


def test_count_drift_knows_coreplus_paging() -> None:
    page: dict[str, Any] = {"clients": [], "paging": {"totalRows": 7, "pageNumber": 1, "pageSize": 5}}
    assert _drift_count(page) and page["paging"] == {"totalRows": 8, "pageNumber": 1, "pageSize": 5}
    assert not _drift_count({"clients": [], "paging": {"totalRows": True}})
    assert not _drift_count({"clients": [], "paging": None})


async def test_the_sandbox_drifts_total_rows(sandbox: RunningSandbox) -> None:
    api = CorePlusAPI(sandbox.remote)
    sandbox.faults.plan = FaultPlan(rates={"total_count_drift": 1.0}, limit=1)
    url = sandbox.base_url + CLIENT_PATH + "?pageNumber=1&pageSize=5"
    headers = {"Authorization": "JwToken " + api.token("GET", url)}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        body = await resp.json()
    assert resp.status == 200 and body["paging"]["totalRows"] == 8 and len(body["clients"]) == 5
    assert sandbox.faults.counts == {"total_count_drift": 1}


async def test_client_walk_restarts_when_the_last_page_drifts(sandbox: RunningSandbox) -> None:
    provider = make(sandbox, page_size=3)
    pages = drift_once(sandbox, on_request=3)
    try:
        clients = await provider.clients()
    finally:
        await provider.aclose()
    assert sandbox.faults.counts == {"total_count_drift": 1}
    assert pages == ["1", "2", "3", "1", "2", "3"]
    assert len(clients) == 7


async def test_client_walk_restarts_when_its_only_page_drifts(sandbox: RunningSandbox) -> None:
    """One page that promises 8 clients but holds 7: not taken as the list, and not a failure
    either while the next walk agrees with itself."""
    provider = make(sandbox, page_size=100)
    pages = drift_once(sandbox, on_request=1)
    try:
        clients = await provider.clients()
    finally:
        await provider.aclose()
    assert sandbox.faults.counts == {"total_count_drift": 1}
    assert pages == ["1", "1"]
    assert len(clients) == 7


async def test_client_walk_gives_up_when_the_count_never_holds(sandbox: RunningSandbox) -> None:
    provider = make(sandbox, page_size=100)
    sandbox.faults.plan = FaultPlan(rates={"total_count_drift": 1.0}, match=CLIENT_ROUTE)
    try:
        with pytest.raises(InvalidResponse, match="promised 8 clients but paged out 7"):
            await provider.clients()
    finally:
        await provider.aclose()
    assert sandbox.faults.counts == {"total_count_drift": MAX_CLIENT_WALK_RESTARTS + 1}
