"""The shared HTTP layer under a bandwidth throttle: every streamed byte, up and down, passes its
buckets (real aiohttp servers on 127.0.0.1); what reaches the server is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.bandwidth import Throttle, TokenBucket, use_throttle
from daemon.providers.forms import add_fields, add_file, streamed_from
from daemon.providers.http import HttpClient
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
async def base() -> AsyncIterator[tuple[str, list[tuple[bytes, str | None]]]]:
    received: list[tuple[bytes, str | None]] = []

    async def upload(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("Content-Length")))
        return web.json_response({"ok": True}, status=201)

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD * 3)

    app = web.Application(client_max_size=4 * len(PAYLOAD))
    app.router.add_route("*", "/up/", upload)
    app.router.add_get("/down/", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


def buckets() -> tuple[Throttle, TokenBucket, TokenBucket]:
    up, down = TokenBucket(), TokenBucket()  # unlimited: they count, nobody waits
    return Throttle(up=(up,), down=(down,)), up, down


async def test_a_streamed_file_body_passes_the_upload_buckets_byte_for_byte(
    base: tuple[str, list[tuple[bytes, str | None]]], tmp_path: Path
) -> None:
    url, received = base
    source = write_source(tmp_path / "scan.pdf", PAYLOAD)
    throttle, up, down = buckets()
    client = HttpClient()
    try:
        with use_throttle(throttle):
            answer = await client.request("PUT", f"{url}/up/", body=source.open, expect={201})
    finally:
        await client.aclose()
    assert answer.json() == {"ok": True}
    assert received == [(PAYLOAD, str(len(PAYLOAD)))]  # Content-Length kept: not sent chunked
    assert up.taken == len(PAYLOAD)
    assert down.taken == 0  # the small JSON answer is read whole, not streamed


async def test_a_multipart_form_around_a_file_passes_whole(
    base: tuple[str, list[tuple[bytes, str | None]]], tmp_path: Path
) -> None:
    url, received = base
    source = write_source(tmp_path / "scan.pdf", PAYLOAD)

    def build(handle: object) -> aiohttp.MultipartWriter:
        writer = aiohttp.MultipartWriter("form-data")
        add_fields(writer, {"name": "scan.pdf"})
        add_file(writer, "content", handle, "scan.pdf", "application/pdf")  # type: ignore[arg-type]
        return writer

    throttle, up, _ = buckets()
    client = HttpClient()
    try:
        with use_throttle(throttle):
            await client.request("POST", f"{url}/up/", body=streamed_from(source, build), expect={201})
    finally:
        await client.aclose()
    [(body, length)] = received
    assert PAYLOAD in body and b'name="name"' in body
    assert up.taken == len(body) == int(length or 0)


async def test_a_streamed_download_passes_the_download_buckets(
    base: tuple[str, list[tuple[bytes, str | None]]],
) -> None:
    url, _ = base
    throttle, up, down = buckets()
    got = bytearray()

    async def sink(chunk: bytes) -> None:
        got.extend(chunk)

    client = HttpClient()
    try:
        with use_throttle(throttle):
            async with await client.request("GET", f"{url}/down/", expect={200}, stream=True) as response:
                await response.stream_to(sink)
    finally:
        await client.aclose()
    assert bytes(got) == PAYLOAD * 3
    assert down.taken == len(got) and up.taken == 0


async def test_without_a_throttle_nothing_is_wrapped(
    base: tuple[str, list[tuple[bytes, str | None]]], tmp_path: Path
) -> None:
    url, received = base
    source = write_source(tmp_path / "scan.pdf", PAYLOAD)
    client = HttpClient()
    try:
        await client.request("PUT", f"{url}/up/", body=source.open, expect={201})
    finally:
        await client.aclose()
    assert received == [(PAYLOAD, str(len(PAYLOAD)))]
