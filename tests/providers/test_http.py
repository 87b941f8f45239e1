"""The shared HTTP layer against small real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from daemon.providers.http import (
    HttpClient,
    RateLimiter,
    RetryPolicy,
    budget_key,
    parse_json,
    parse_retry_after,
    redact_url,
    shared_rate_limiter,
)
from daemon.vocab import AuthError, InvalidResponse, NotFound, PreconditionFailed, ProviderError, TransientError
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, base=0.001, cap=0.01)

Routes = Callable[[web.Application], None]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Routes], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(add_routes: Routes) -> str:
        app = web.Application()
        add_routes(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient(retry=FAST)
    yield c
    await c.aclose()


def _flaky(statuses: list[int], hits: list[web.Request], final: web.Response | None = None) -> Routes:
    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request)
        await request.read()
        if statuses:
            status = statuses.pop(0)
            return web.json_response({"error_message": f"boom {status}"}, status=status)
        return final or web.json_response({"ok": True})

    def add(app: web.Application) -> None:
        app.router.add_route("*", "/x/", handler)

    return add


async def test_retries_5xx_then_succeeds(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([503, 500], hits))
    resp = await client.request("GET", f"{base}/x/", expect={200})
    assert resp.json() == {"ok": True}
    assert len(hits) == 3
    assert hits[0].headers["User-Agent"].startswith("libmirror/")
    assert "Authorization" not in hits[0].headers


async def test_429_honours_retry_after(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    hits: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request)
        if len(hits) == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.json_response([])

    base = await serve(lambda app: app.router.add_get("/x/", handler))
    assert (await client.request("GET", f"{base}/x/", expect={200})).json() == []
    assert len(hits) == 2


async def test_retry_after_hook_for_provider_headers(serve: Callable[[Routes], Awaitable[str]]) -> None:
    seen: list[str] = []
    hits: list[web.Request] = []

    def hook(headers: object, now: float) -> float | None:
        reset = getattr(headers, "get")("X-RateLimit-Reset")  # noqa: B009
        seen.append(reset)
        return max(0.0, float(reset) - now)

    async def handler(request: web.Request) -> web.Response:
        hits.append(request)
        if len(hits) == 1:
            return web.Response(status=429, headers={"X-RateLimit-Reset": "0"})
        return web.json_response({})

    base = await serve(lambda app: app.router.add_get("/x/", handler))
    c = HttpClient(retry=RetryPolicy(attempts=2, base=50, cap=50), retry_after_hook=hook)
    try:
        await c.request("GET", f"{base}/x/", expect={200})  # the hook says 0 s, not the 50 s backoff
    finally:
        await c.aclose()
    assert seen == ["0"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (409, PreconditionFailed),
        (412, PreconditionFailed),
    ],
)
async def test_4xx_mapping_without_retry(
    serve: Callable[[Routes], Awaitable[str]], client: HttpClient, status: int, error: type[ProviderError]
) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([status] * 5, hits))
    with pytest.raises(error) as info:
        await client.request("GET", f"{base}/x/?api_key=SECRET", expect={200})
    assert len(hits) == 1
    assert info.value.status == status
    assert "SECRET" not in str(info.value)
    assert f"boom {status}" in str(info.value)
    if error is AuthError:
        assert "check the API credentials" in str(info.value)


async def test_other_4xx_is_plain_provider_error(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([400], hits))
    with pytest.raises(ProviderError) as info:
        await client.request("POST", f"{base}/x/", json={"a": 1}, expect={201})
    assert type(info.value) is ProviderError
    assert info.value.status == 400


async def test_exhausted_retries_raise_transient(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([502] * 10, hits))
    with pytest.raises(TransientError, match="3 attempt"):
        await client.request("GET", f"{base}/x/", expect={200})
    assert len(hits) == 3


async def test_retry_false_sends_once(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([503] * 3, hits))
    with pytest.raises(TransientError):
        await client.request("GET", f"{base}/x/", expect={200}, retry=False)
    assert len(hits) == 1


async def test_connection_refused_is_transient(client: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError, match="ClientConnector"):
        await client.request("GET", f"http://127.0.0.1:{port}/x/", expect={200})


async def test_html_where_json_expected(serve: Callable[[Routes], Awaitable[str]], client: HttpClient) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="{nope", content_type="application/json")

    def add(app: web.Application) -> None:
        app.router.add_get("/html/", html)
        app.router.add_get("/garbage/", garbage)

    base = await serve(add)
    with pytest.raises(InvalidResponse, match="expected JSON"):
        (await client.request("GET", f"{base}/html/", expect={200})).json()
    with pytest.raises(InvalidResponse, match="unparseable"):
        (await client.request("GET", f"{base}/garbage/", expect={200})).json()


async def test_streamed_upload_is_reopened_for_each_attempt(
    serve: Callable[[Routes], Awaitable[str]], client: HttpClient, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    source = write_source(tmp_path / "big.bin", payload)
    received: list[bytes] = []
    lengths: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.read())
        lengths.append(request.headers.get("Content-Length"))
        return web.Response(status=500 if len(received) == 1 else 201)

    base = await serve(lambda app: app.router.add_put("/up/", handler))
    resp = await client.request("PUT", f"{base}/up/", body=source.open, expect={201})
    assert resp.status == 201
    assert received == [payload, payload]
    assert lengths == [str(len(payload))] * 2


async def test_stream_download_in_chunks_and_no_redirect_following(
    serve: Callable[[Routes], Awaitable[str]], client: HttpClient
) -> None:
    payload = b"x" * (3 * 1024 * 1024 + 7)
    auth_seen: list[str | None] = []

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/blob/?Signature=abc%2Fdef"})

    async def blob(request: web.Request) -> web.StreamResponse:
        auth_seen.append(request.headers.get("Authorization"))
        assert request.raw_path.endswith("?Signature=abc%2Fdef")
        return web.Response(body=payload)

    def add(app: web.Application) -> None:
        app.router.add_get("/content/", redirect)
        app.router.add_get("/blob/", blob)

    base = await serve(add)
    first = await client.request(
        "GET", f"{base}/content/", headers={"Authorization": "apikey u:k"}, expect={302}, stream=True
    )
    first.release()
    assert first.headers["Location"].startswith("/blob/")
    chunks: list[int] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(len(chunk))

    async with await client.request("GET", f"{base}/blob/?Signature=abc%2Fdef", expect={200}, stream=True) as r:
        total = await r.stream_to(sink, chunk_size=64 * 1024)
    assert total == len(payload) == sum(chunks)
    assert max(chunks) <= 64 * 1024
    assert auth_seen == [None]


async def test_request_log_has_no_query_or_headers(
    serve: Callable[[Routes], Awaitable[str]], client: HttpClient
) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([], hits))
    with structlog.testing.capture_logs() as logs:
        await client.request(
            "GET",
            f"{base}/x/?Signature=TOPSECRET",
            headers={"Authorization": "apikey u:SECRETKEY"},
            expect={200},
        )
    lines = [entry for entry in logs if entry["event"] == "http_request"]
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["method"] == "GET" and "duration_ms" in lines[0]
    assert "TOPSECRET" not in repr(logs) and "SECRETKEY" not in repr(logs)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_redact_url() -> None:
    assert redact_url("https://h.example/laika/b?AWSAccessKeyId=x&Signature=y") == "https://h.example/laika/b"


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 1.0, clock=lambda: now[0])
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)
    assert limiter.reserve() == pytest.approx(1.0)
    now[0] = 10.0  # refilled, but never above the burst size
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


async def test_rate_limiter_paces_requests() -> None:
    limiter = RateLimiter(50, 1.0)
    for _ in range(50):
        limiter.reserve()
    import time

    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.015


def test_shared_rate_limiter_registry() -> None:
    key = budget_key("cliniko", "the-key")
    assert "the-key" not in key
    assert key == f"cliniko:{hashlib.sha256(b'the-key').hexdigest()[:16]}"
    a = shared_rate_limiter(key, 200, 60)
    assert shared_rate_limiter(key, 200, 60) is a
    assert shared_rate_limiter(budget_key("cliniko", "other"), 200, 60) is not a


async def test_creates_are_not_repeated_after_ambiguous_failures(
    serve: Callable[[Routes], Awaitable[str]], client: HttpClient
) -> None:
    hits: list[web.Request] = []
    base = await serve(_flaky([500, 500], hits))
    with pytest.raises(TransientError, match="HTTP 500"):
        await client.request("POST", f"{base}/x/", data=b"create", expect={201})
    assert len(hits) == 1
    hits.clear()
    base = await serve(_flaky([503, 429], hits, final=web.Response(status=201)))
    assert (await client.request("POST", f"{base}/x/", data=b"create", expect={201})).status == 201
    assert len(hits) == 3
    hits.clear()
    base = await serve(_flaky([500], hits))
    await client.request("POST", f"{base}/x/", data=b"lookup", expect={200}, idempotent=True)
    assert len(hits) == 2


def test_parse_json_reads_lone_surrogates_as_replacement_characters() -> None:
    body = b'{"name": "old\\udc81\\udcfe.txt", "items": [{"x\\ud800": "ok \\ud83d\\ude00"}], "n": 1}'
    data = parse_json(body)
    assert data == {"name": "old\ufffd\ufffd.txt", "items": [{"x\ufffd": "ok \U0001f600"}], "n": 1}
    assert parse_json(b'["\\ud83d\\ude00", "a\\\\udc81"]') == ["\U0001f600", "a\\udc81"]  # a pair, an escaped backslash
