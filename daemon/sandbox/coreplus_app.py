"""The coreplus sandbox application: the gate (JWT, 10 requests/s), the two API routes, inspection.

API paths are matched case-insensitively, with or without the trailing slash, like the vendor's
examples mix ``/api/core/`` and ``/API/Core/``. ``/_sandbox/`` is ours (the real API has nothing
like it): tests read what each client holds there, and may add clients.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

import anyio
from aiohttp import BodyPartReader, web

from daemon.sandbox.coreplus_auth import TokenRejected, check_token
from daemon.sandbox.coreplus_backend import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CorePlusBackend
from daemon.sandbox.middleware import (
    ERROR_RENDERER,
    FAULT_HOOKS,
    REQUEST_LOG,
    ApiError,
    Handler,
    pipeline_middleware,
)

BACKEND = web.AppKey("coreplus_backend", CorePlusBackend)
WINDOW = web.AppKey("coreplus_window", deque[float])
FILE_ROUTE = "/api/core/v2.1/file"
CLIENT_ROUTE = "/api/core/v2/client"
CHUNK = 64 * 1024


def render_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    """coreplus answers errors as ``statusMessages`` (doc); the code names the kind of failure."""
    code = {401: "InvalidToken", 429: "TooManyRequests", 404: "NotFound"}.get(status, "BadRequest")
    if status >= 500:
        code = "ServerError"
    return web.json_response({"statusMessages": [{"code": code, "message": message}]}, status=status)


def _route(request: web.Request) -> str:
    return request.path.lower().rstrip("/")


def server_now(backend: CorePlusBackend) -> float:
    return time.time() + backend.clock_skew_s


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/api/`` request: a valid token, then the consumer's 10 requests/s budget."""
    if not _route(request).startswith("/api/"):
        return await handler(request)
    backend = request.app[BACKEND]
    now = server_now(backend)
    try:
        check_token(request, backend, now)
    except TokenRejected as exc:
        raise ApiError(401, str(exc)) from None
    window = request.app[WINDOW]
    while window and window[0] <= now - 1.0:
        window.popleft()
    if len(window) >= backend.rate_limit:
        backend.throttled += 1
        raise ApiError(429, f"rate limit of {backend.rate_limit} requests per second exceeded")
    window.append(now)
    backend.accepted_at.append(now)
    return await handler(request)


async def dispatch(request: web.Request) -> web.StreamResponse:
    route, method = _route(request), request.method
    if route == FILE_ROUTE and method == "POST":
        return await upload(request)
    if route == CLIENT_ROUTE and method == "GET":
        return client_list(request)
    if route in (FILE_ROUTE, CLIENT_ROUTE):
        raise ApiError(405, f"{method} is not allowed here")
    raise ApiError(404, f"no such endpoint: {request.path}")


def _positive(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"{name} must be a positive integer")
    value = int(raw)
    return min(value, maximum) if maximum is not None else value


def client_list(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    page_number = _positive(request, "pageNumber", 1)
    page_size = _positive(request, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    clients, total = backend.clients_page(page_number, page_size)
    return web.json_response(
        {
            "clients": [c.to_api() for c in clients],
            "paging": {"totalRows": total, "pageNumber": page_number, "pageSize": page_size},
            "statusMessages": [],
        }
    )


JSON_PART_TYPES = ("", "text/plain", "application/json")


def _media_type(part: BodyPartReader) -> str:
    return part.headers.get("Content-Type", "").split(";")[0].strip().lower()


async def upload(request: web.Request) -> web.StreamResponse:
    """``json`` part first (no filename), then ``file`` (filename, bytes) (doc).

    The doc's example sends both parts as text/plain and says "text/plain will work for all file
    types": that is a promise, not a rule, so the ``file`` part may carry any content type (or none),
    and the ``json`` part text/plain, application/json or none. The ``json`` part's name (filename)
    is "Empty/None" (doc): absent or empty.
    """
    backend = request.app[BACKEND]
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "expected multipart/form-data")
    reader = await request.multipart()
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "json":
        raise ApiError(400, "the first part must be 'json'")
    if part.filename:
        raise ApiError(400, "the 'json' part must not have a filename")
    if _media_type(part) not in JSON_PART_TYPES:
        raise ApiError(400, "the 'json' part must be text/plain or application/json (or have no Content-Type)")
    try:
        meta_raw: Any = json.loads(await part.text())
    except ValueError:
        raise ApiError(400, "the 'json' part is not JSON") from None
    if not isinstance(meta_raw, dict):
        raise ApiError(400, "the 'json' part must be a JSON object")
    meta = backend.check_upload(meta_raw)
    if backend.upload_delay > 0:
        await anyio.sleep(backend.upload_delay)
    file_part = await reader.next()
    if meta.is_folder:
        if file_part is not None:
            raise ApiError(400, "a folder (isFolder: true) takes no 'file' part")
        item = backend.add_folder(meta)
    else:
        if not isinstance(file_part, BodyPartReader) or (file_part.name or "").lower() != "file":
            raise ApiError(400, "the second part must be 'file'")
        if not file_part.filename:
            raise ApiError(400, "the 'file' part needs a filename")

        async def chunks() -> Any:
            while chunk := await file_part.read_chunk(CHUNK):
                yield chunk

        item = await backend.add_file(meta, chunks())
        if await reader.next() is not None:
            raise ApiError(400, "unexpected part after 'file'")
    return web.json_response({"file": item.to_api(), "statusMessages": []}, status=201)


# --- /_sandbox/ -----------------------------------------------------------------------------------


async def holdings(request: web.Request) -> web.StreamResponse:
    return web.json_response({"clients": request.app[BACKEND].holdings()})


async def add_client(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("firstName", "lastName")):
        raise ApiError(400, "expected {firstName, lastName[, clientId]}")
    row = request.app[BACKEND].add_client(body["firstName"], body["lastName"], body.get("clientId"))
    return web.json_response(row.to_api(), status=201)


async def content(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    item = backend.item(request.match_info["file_id"])
    if item is None or item.is_folder:
        raise ApiError(404, "no such file")
    return web.Response(body=backend.content(item), content_type="application/octet-stream")


async def stats(request: web.Request) -> web.StreamResponse:
    """Request pacing as the server saw it: the busiest rolling second and the 429s answered."""
    backend = request.app[BACKEND]
    times = backend.accepted_at
    busiest, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return web.json_response({"accepted": len(times), "throttled": backend.throttled, "max_per_second": busiest})


def build_app(backend: CorePlusBackend) -> web.Application:
    app = web.Application(middlewares=[pipeline_middleware, gate], client_max_size=1024**3)
    app[BACKEND] = backend
    app[WINDOW] = deque()
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_error
    app.router.add_get("/_sandbox/clients", holdings)
    app.router.add_post("/_sandbox/clients", add_client)
    app.router.add_get("/_sandbox/files/{file_id}/content", content)
    app.router.add_get("/_sandbox/stats", stats)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
