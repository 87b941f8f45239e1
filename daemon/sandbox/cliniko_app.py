"""Assembles the Cliniko sandbox: the shared pipeline, the gate, the API and S3 routes.

The gate enforces what every ``/v1`` request must satisfy before a handler runs, in this order:
Basic auth with the API key as user (401), a ``User-Agent`` naming a contact email in parentheses
(400, decision in api-notes.md), an ``Accept`` that allows JSON (406), then the rate limit (429 with
``X-RateLimit-Reset``). Only then does the processing clock advance and the handler run. The S3
routes are presigned and skip the gate; ``/_sandbox/`` is the sandbox's own test hook.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from aiohttp import web

from daemon.sandbox import cliniko_api, cliniko_s3
from daemon.sandbox.cliniko_backend import ClinikoBackend
from daemon.sandbox.cliniko_s3 import BACKEND, xml_error
from daemon.sandbox.middleware import (
    ERROR_RENDERER,
    FAULT_HOOKS,
    REQUEST_LOG,
    ApiError,
    Handler,
    pipeline_middleware,
)

_USER_AGENT = re.compile(r"\([^()\s@]+@[^()\s@]+\.[^()\s@]+\)")


def basic_user(header: str) -> str | None:
    """The user part of ``Basic base64(user:password)``; None when malformed."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user


def _accepts_json(header: str | None) -> bool:
    if not header:
        return True
    types = [part.split(";")[0].strip().lower() for part in header.split(",")]
    return any(t in ("application/json", "application/*", "*/*") for t in types)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    backend = request.app[BACKEND]
    arrived = backend.time()
    status = 500
    try:
        user = basic_user(request.headers.get("Authorization", ""))
        if user is None or not backend.key_matches(user):
            raise ApiError(401, "Unauthorized: send the API key as the Basic auth user name")
        if not _USER_AGENT.search(request.headers.get("User-Agent", "")):
            raise ApiError(400, "A User-Agent of the form 'APP_VENDOR_NAME (APP_VENDOR_EMAIL)' is required")
        if not _accepts_json(request.headers.get("Accept")):
            raise ApiError(406, "Only application/json is served")
        reset = backend.admit()
        if reset is not None:
            status = 429
            return web.json_response(
                {"message": "Too many requests"}, status=429, headers={"X-RateLimit-Reset": str(math.ceil(reset))}
            )
        backend.tick()
        response = await handler(request)
        status = response.status
        return response
    except (ApiError, web.HTTPException) as exc:
        status = exc.status
        raise
    finally:
        backend.log_hit(arrived, request.method, request.path, status)


def render_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    if request.path.startswith("/s3/"):
        return xml_error(status, message)
    return web.json_response({"message": message}, status=status)


def build_app(backend: ClinikoBackend) -> web.Application:
    app = web.Application(middlewares=[pipeline_middleware, gate], client_max_size=1024**2)
    app[BACKEND] = backend
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_error
    cliniko_api.add_routes(app)
    cliniko_s3.add_routes(app)
    return app
