"""A request body that waits on the bandwidth throttle before each chunk goes to the socket.

aiohttp writes every body (a file handle, a multipart form around one) through ``Payload.write``; the
wrapper hands the payload a writer whose ``write`` first waits for the bytes in the throttle's upload
buckets. Size and headers are the wrapped payload's, so ``Content-Length`` and the multipart boundary
are sent as before.
"""

from __future__ import annotations

from typing import Any

from aiohttp import payload as aiohttp_payload
from aiohttp.abc import AbstractStreamWriter

from daemon.bandwidth import Throttle


class _ThrottledWriter:
    """Passes every call to ``writer``; ``write`` waits for the bytes first."""

    def __init__(self, writer: AbstractStreamWriter, throttle: Throttle) -> None:
        self._writer = writer
        self._throttle = throttle

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        await self._throttle.sending(len(chunk))
        await self._writer.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class ThrottledPayload(aiohttp_payload.Payload):
    """``inner`` sent at the pace ``throttle`` allows."""

    def __init__(self, inner: aiohttp_payload.Payload, throttle: Throttle) -> None:
        super().__init__(inner)
        self._inner = inner
        self._throttle = throttle
        self._headers = inner.headers
        self._size = inner.size

    @property
    def consumed(self) -> bool:
        return self._inner.consumed

    @property
    def autoclose(self) -> bool:
        return self._inner.autoclose

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._inner.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._inner.write(_ThrottledWriter(writer, self._throttle))  # type: ignore[arg-type]

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self._inner.write_with_length(_ThrottledWriter(writer, self._throttle), content_length)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._inner.close()


def throttled(body: Any, throttle: Throttle) -> ThrottledPayload:
    """``body`` (anything aiohttp sends as a request body) wrapped so it goes at ``throttle``'s pace."""
    return ThrottledPayload(aiohttp_payload.PAYLOAD_REGISTRY.get(body, disposition=None), throttle)
