"""Assembles the Cliniko sandbox: two apps over one backend, each with the shared pipeline.

``build_app`` is the ``/v1`` API (plus ``/_sandbox/``, the sandbox's own test hook); ``build_s3_app``
is the presigned S3 bucket, served on an origin of its own like the real bucket, so a client that
follows the 303 of ``/content`` with its default redirect handling drops the Cliniko
``Authorization`` header (S3 refuses a request carrying one), and the presigned POST ``url`` points
there too.

The gate enforces what every ``/v1`` request must satisfy before a handler runs, in this order:
Basic auth with the API key as user (401), a ``User-Agent`` naming a contact email in parentheses
(400, decision in api-notes.md), an ``Accept`` that allows JSON (406), then the rate limit (429 with
``X-RateLimit-Reset``). Only then does the processing clock advance and the handler run. The S3
routes are presigned and have no gate.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from aiohttp import web

from daemon.sandbox import cliniko_api, cliniko_s3
from daemon.sandbox.cliniko_backend import ClinikoBackend
from daemon.sandbox.cliniko_s3 import BACKEND, S3_ORIGIN, xml_error
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
    return web.json_response({"message": message}, status=status)


def render_s3_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    return xml_error(status, message)


def build_app(backend: ClinikoBackend, *, s3: str) -> web.Application:
    """The API app; ``s3`` is the origin (``http://HOST:PORT``) where ``build_s3_app`` is served."""
    app = web.Application(middlewares=[pipeline_middleware, gate], client_max_size=1024**2)
    app[BACKEND] = backend
    app[S3_ORIGIN] = s3.rstrip("/")
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_error
    cliniko_api.add_routes(app)
    return app


def build_s3_app(backend: ClinikoBackend) -> web.Application:
    """The bucket: presigned POST uploads and presigned GET downloads, errors as S3 XML."""
    app = web.Application(middlewares=[pipeline_middleware], client_max_size=1024**2)
    app[BACKEND] = backend
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_s3_error
    cliniko_s3.add_routes(app)
    return app
