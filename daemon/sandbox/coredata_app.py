"""Assembles the CoreData sandbox application: the shared pipeline, the gate, the routes.

The gate enforces what every ``/api/`` request must satisfy before any handler runs, in the order a
Django/tastypie service applies it: first the trailing-slash redirect (301, query kept), then the
``Authorization: apikey USER:KEY`` check (v3 also takes ``apikey KEY``). ``/laika/`` URLs are
presigned and skip both.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from daemon.sandbox import coredata_api, laika
from daemon.sandbox.coredata_backend import CoreDataBackend
from daemon.sandbox.laika import BACKEND, xml_error
from daemon.sandbox.middleware import (
    ERROR_RENDERER,
    FAULT_HOOKS,
    REQUEST_LOG,
    ApiError,
    Handler,
    json_error,
    pipeline_middleware,
)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authorised(header: str, backend: CoreDataBackend, *, allow_key_only: bool) -> bool:
    """Whether ``header`` is ``apikey USER:KEY`` (or ``apikey KEY`` where allowed) for this tenant."""
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "apikey":
        return False
    credential = credential.strip()
    user, sep, key = credential.rpartition(":")
    if sep:
        return _same(user, backend.api_user) & _same(key, backend.api_key)
    return allow_key_only and _same(credential, backend.api_key)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/api/"):
        if not path.endswith("/"):
            url = request.rel_url
            location = url.raw_path + "/" + (f"?{url.raw_query_string}" if url.raw_query_string else "")
            return web.Response(status=301, headers={"Location": location})
        backend = request.app[BACKEND]
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiError(401, "Authentication credentials were not provided.")
        if not authorised(header, backend, allow_key_only=path.startswith("/api/v3/")):
            raise ApiError(401, "Invalid API key or user.")
    return await handler(request)


def render_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    if request.path.startswith("/laika/"):
        return xml_error(status, message)
    return json_error(request, status, message)


def build_app(backend: CoreDataBackend) -> web.Application:
    app = web.Application(middlewares=[pipeline_middleware, gate], client_max_size=1024**2)
    app[BACKEND] = backend
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_error
    coredata_api.add_routes(app)
    laika.add_routes(app)
    return app
