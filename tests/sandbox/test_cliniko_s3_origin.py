"""The Cliniko sandbox serves its presigned S3 bucket on an origin of its own, as the real service
does: a generic HTTP client that follows the 303 of ``/content`` with its default redirect handling
drops the Basic auth header on the way (another origin) and gets the bytes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from daemon.sandbox.faults import FaultPlan
from daemon.sandbox.runner import RunningSandbox, start_sandbox

pytestmark = pytest.mark.anyio
UA = "libmirror tests (tests@example.com)"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("cliniko", tmp_path / "data", seed=4, processing_delay=0)
    try:
        yield running
    finally:
        await running.stop()


def api_headers(sandbox: RunningSandbox) -> dict[str, str]:
    token = base64.b64encode(f"{sandbox.remote['api_key']}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": "application/json", "User-Agent": UA}


def first_attachment(sandbox: RunningSandbox) -> int:
    return min(a.id for a in sandbox.backend.active_attachments())


async def test_a_generic_client_follows_the_303_with_basic_auth(sandbox: RunningSandbox) -> None:
    attachment = first_attachment(sandbox)
    url = f"{sandbox.remote['base_url']}/patient_attachments/{attachment}/content"
    # aiohttp's default redirect handling, the Authorization header set on the session as a client would
    async with (
        aiohttp.ClientSession(headers=api_headers(sandbox)) as session,
        session.get(url) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert [r.status for r in resp.history] == [303]
        assert await resp.read() == sandbox.backend.read_content(attachment)
        assert resp.url.origin() != URL(sandbox.base_url).origin()


async def test_location_and_presigned_post_point_to_the_s3_origin(sandbox: RunningSandbox) -> None:
    api_origin = URL(sandbox.base_url).origin()
    s3_origin = URL(sandbox.side_origins["s3"]).origin()
    assert s3_origin != api_origin and s3_origin.host == "127.0.0.1"
    attachment = first_attachment(sandbox)
    patient = sandbox.backend.attachments[attachment].patient_id
    base = sandbox.remote["base_url"]
    async with aiohttp.ClientSession(headers=api_headers(sandbox)) as session:
        async with session.get(f"{base}/patient_attachments/{attachment}/content", allow_redirects=False) as resp:
            assert resp.status == 303
            location = URL(resp.headers["Location"], encoded=True)
        async with session.get(f"{base}/patients/{patient}/attachment_presigned_post") as resp:
            post = await resp.json()
        # each origin serves its own part only
        async with session.get(f"{sandbox.side_origins['s3']}/v1/patients") as resp:
            assert resp.status == 404 and resp.content_type == "application/xml"
        async with session.get(sandbox.base_url + location.raw_path_qs) as resp:
            assert resp.status == 404
    assert location.origin() == s3_origin
    assert URL(post["url"]).origin() == s3_origin
    # the S3 side still refuses a request that carries an Authorization header
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(location, headers={"Authorization": "Basic eHl6Og=="}) as resp,
    ):
        assert resp.status == 400 and b"<Error>" in await resp.read()


async def test_faults_and_hooks_reach_the_s3_origin(sandbox: RunningSandbox) -> None:
    attachment = first_attachment(sandbox)
    base = sandbox.remote["base_url"]
    async with aiohttp.ClientSession(headers=api_headers(sandbox)) as session:
        async with session.get(f"{base}/patient_attachments/{attachment}/content", allow_redirects=False) as resp:
            location = URL(resp.headers["Location"], encoded=True)
        sandbox.faults.plan = FaultPlan(rates={"503": 1.0}, match="^/s3/", limit=1)
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(location) as resp:
                assert resp.status == 503 and b"<Error>" in await resp.read()
            assert sandbox.faults.counts == {"503": 1}

            seen: list[str] = []

            async def hook(request: web.Request) -> web.StreamResponse | None:
                seen.append(request.path)
                return None

            sandbox.fault_hooks.append(hook)
            async with anonymous.get(location) as resp:
                assert resp.status == 200
            assert seen and seen[-1].startswith("/s3/")
    logged = [r for r in sandbox.backend.requests if r.path.startswith("/s3/")]
    assert [r.status for r in logged] == [503, 200]  # one request log over both origins


async def test_stop_closes_both_origins(tmp_path: Path) -> None:
    sandbox = await start_sandbox("cliniko", tmp_path / "d", seed=1)
    origins = [sandbox.base_url, sandbox.side_origins["s3"]]
    await sandbox.stop()
    await sandbox.stop()  # idempotent
    async with aiohttp.ClientSession() as session:
        for origin in origins:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(origin + "/v1/patients"):
                    pass
