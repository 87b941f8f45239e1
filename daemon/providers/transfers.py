"""Content transfers every HTTP provider shares: presigned downloads, taking back a wrong upload.

A presigned URL must be fetched without our credentials, so its request goes out by itself (possibly
through another client than the API's). It may have expired by the time we use it (403): the provider
is asked where the content is once more. A transfer that breaks after bytes reached the sink restarts
once through the sink's ``reset()`` when it has one. Checking size and digest of what arrived is the
caller's job; an upload the server stored wrong is taken back here (``take_back``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import structlog
from yarl import URL

from daemon.providers.base import Sink
from daemon.providers.http import HttpClient, Response
from daemon.vocab import DigestMismatch, InvalidResponse, ProviderError, RemoteItem, TransientError

log = structlog.get_logger(__name__)

Located = Response | URL | str
"""Where content is: a response already serving it (no presigned hop), or the URL to fetch it from."""


def redirected(first: Response, base: URL, what: str) -> Located:
    """An API's answer to a content request: the content itself (200), else the ``Location`` it
    redirects to (relative to ``base``); a redirect without one is ``InvalidResponse`` naming ``what``."""
    if first.status == 200:
        return first
    first.release()
    location = first.headers.get("Location")
    if not location:
        raise InvalidResponse(f"{what}: {first.status} without Location")
    return base.join(URL(location, encoded=True))


async def download_presigned(
    blobs: HttpClient,
    sink: Sink,
    *,
    remote_id: str,
    locate: Callable[[bool], Awaitable[Located]],
    refused: str,
) -> None:
    """Stream content into ``sink``.

    ``locate(refetch)`` says where the content is before every attempt; ``refetch`` is True right after
    the presigned URL was refused (HTTP 403: expired), so a provider that caches URLs fetches a fresh
    one. A second refusal raises ``TransientError(refused)`` before any byte reached the sink. A
    transfer that breaks after bytes were written restarts once when ``sink`` has a ``reset()``
    coroutine method (awaited first); otherwise ``TransientError`` tells the caller to discard what it
    received and try later. Content the API serves directly (``locate`` returns the response) is
    streamed as it comes.
    """
    written = 0

    async def counting(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)
        await sink(chunk)

    reset = getattr(sink, "reset", None)
    refetch = refetched = restarted = False
    while True:
        where = await locate(refetch)
        refetch = False
        if isinstance(where, Response):  # served directly: nothing presigned involved
            async with where:
                await where.stream_to(counting)
            return
        blob = await blobs.request("GET", where, expect={200, 403}, stream=True)
        if blob.status == 403:
            blob.release()
            if refetched:
                raise TransientError(refused)
            refetched = refetch = True
            log.info("presigned_url_refetch", remote_id=remote_id)
            continue
        try:
            async with blob:
                await blob.stream_to(counting)
            return
        except TransientError:
            if restarted or (written and reset is None):
                raise
            if written:
                assert reset is not None
                await reset()
                written = 0
            restarted = True
            log.info("download_restarted", remote_id=remote_id)


async def accept_upload(
    item: RemoteItem, size: int, problem: str | None, delete: Callable[[RemoteItem], Awaitable[None]]
) -> RemoteItem:
    """``item``, the file an upload of ``size`` bytes created, once the server holds what we sent; where
    it does not (``problem`` says how), the copy is deleted and ``DigestMismatch(problem)`` raised."""
    if problem is not None:
        await refuse_upload(lambda: delete(item), item.remote_id, event="bad_upload_not_removed", mismatch=problem)
    log.debug("file_uploaded", remote_id=item.remote_id, bytes=size)
    return item


async def refuse_upload(
    remove: Callable[[], Awaitable[None]], remote_id: str, *, event: str, mismatch: str
) -> NoReturn:
    """Take back an upload the server stored wrong (the local file is still there, nothing is lost),
    then raise ``DigestMismatch(mismatch)``. A failure to remove it is logged as ``event``."""
    try:
        await remove()
    except ProviderError as exc:
        log.warning(event, remote_id=remote_id, error=str(exc))
    raise DigestMismatch(mismatch)
