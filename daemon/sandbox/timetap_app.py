"""The TimeTap sandbox application: session tokens, ``/files``, the multipart upload, the S3 buckets.

API routes live under ``/live`` like the real service (``https://api.timetap.com/live``). Every one of
them except ``GET /live/sessionToken`` needs ``Authorization: Bearer TOKEN``. File content is served
from ``/s3/BUCKET/BLOB``: private (``tt-client-private``) URLs carry an expiring query-string
signature (403 when expired or tampered with), public (``tt-client-public``) ones are plain.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from daemon.sandbox.blobs import CHUNK, is_blob_name, new_blob_name
from daemon.sandbox.laika import xml_error
from daemon.sandbox.middleware import (
    ERROR_RENDERER,
    FAULT_HOOKS,
    REQUEST_LOG,
    ApiError,
    Handler,
    pipeline_middleware,
)
from daemon.sandbox.signing import SignatureError
from daemon.sandbox.timetap_backend import (
    API_PREFIX,
    ASSET,
    BLOB_PREFIX,
    DOCUMENT,
    FOLDER,
    PUBLIC_BUCKET,
    TYPES,
    TimeTapBackend,
)

BACKEND = web.AppKey("timetap_backend", TimeTapBackend)
TOKEN_PATH = f"{API_PREFIX}/sessionToken"


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def render_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    if request.path.startswith(BLOB_PREFIX + "/"):
        return xml_error(status, message)
    return web.json_response({"message": message, "status": status}, status=status)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer session token on every API route but ``/sessionToken``; the buckets check their own URLs."""
    if request.path.startswith(API_PREFIX + "/") and request.path != TOKEN_PATH:
        request.app[BACKEND].check_token(request.headers.get("Authorization", ""))
    return await handler(request)


async def session_token(request: web.Request) -> web.StreamResponse:
    q = request.query
    token = request.app[BACKEND].issue_token(q.get("apiKey", ""), q.get("timestamp", ""), q.get("signature", ""))
    return web.json_response({"sessionToken": token})


async def list_files(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    type_filter = request.query.get("fileLibraryType") or None
    if type_filter is not None and type_filter not in TYPES:
        raise ApiError(400, f"fileLibraryType must be one of {', '.join(TYPES)}")
    rows = backend.listing(type_filter=type_filter, parent=request.query.get("parentFileLibraryUUID") or None)
    origin = _origin(request)
    return web.json_response([backend.to_json(o, origin) for o in rows])


async def post_file(request: web.Request) -> web.StreamResponse:
    """Update an existing object, or create a folder (``fileLibraryType: "FOLDER"``, no UUID)."""
    backend = request.app[BACKEND]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body must be a JSON file object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON file object")
    if body.get("fileLibraryUUID"):
        obj = backend.update(body)
    elif body.get("fileLibraryType") == FOLDER:
        obj = backend.create_folder(body.get("fileName"), body.get("parentFileLibraryUUID"), body.get("businessId"))
    else:
        raise ApiError(400, "files are created through /businessWeb/fileUploadS3.do; POST /files creates folders")
    return web.json_response(backend.to_json(obj, _origin(request)))


async def delete_file(request: web.Request) -> web.StreamResponse:
    request.app[BACKEND].delete(request.match_info["uuid"])
    return web.Response(status=204)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def upload(request: web.Request) -> web.StreamResponse:
    """``POST /businessWeb/fileUploadS3.do``: multipart ``file``, ``businessId``, ``uploadedFileName``,
    ``userName`` (required), ``fileLibraryType`` (``ASSET`` = public), ``parentFileLibraryUUID``."""
    backend = request.app[BACKEND]
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "the upload must be multipart/form-data")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    blob = None
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart bodies are not supported")
            if part.name == "file":
                if blob is not None:
                    raise ApiError(400, "only one file per upload")
                blob = await backend.blobs.write_stream(new_blob_name(), _part_chunks(part))
            elif part.name:
                fields[part.name] = await part.text()
        missing = [k for k in ("businessId", "uploadedFileName", "userName") if not fields.get(k)]
        if blob is None:
            missing.insert(0, "file")
        if missing:
            raise ApiError(400, f"missing required field(s): {', '.join(missing)}")
        assert blob is not None
        backend.check_business(fields["businessId"])
        kind = fields.get("fileLibraryType") or DOCUMENT
        obj = backend.create_file(
            fields["uploadedFileName"], fields.get("parentFileLibraryUUID"), blob, kind=kind, user=fields["userName"]
        )
    except BaseException:
        if blob is not None:
            backend.blobs.remove(blob.name)
        raise
    return web.json_response(backend.to_json(obj, _origin(request)))


async def bucket_get(request: web.Request) -> web.StreamResponse:
    """The object store: private blobs need a valid presigned query, public ones (ASSET) do not."""
    backend = request.app[BACKEND]
    bucket, blob = request.match_info["bucket"], request.match_info["blob"]
    owner = next((o for o in backend.objects.values() if o.blob == blob), None) if is_blob_name(blob) else None
    if bucket == PUBLIC_BUCKET:
        if owner is None or owner.fileLibraryType != ASSET:
            raise ApiError(403, "Access Denied")
    else:
        try:
            backend.signer.verify("GET", blob, request.query)
        except SignatureError as exc:
            raise ApiError(403, str(exc)) from None
        if owner is None or owner.bucket != bucket:
            raise ApiError(404, "The specified key does not exist.")
    path = backend.blobs.path(blob)
    response = web.StreamResponse(status=200, headers={"Content-Type": owner.contentType or "application/octet-stream"})
    response.content_length = path.stat().st_size
    await response.prepare(request)
    async for chunk in backend.blobs.read_range(blob, 0, response.content_length):
        await response.write(chunk)
    await response.write_eof()
    return response


def build_app(backend: TimeTapBackend) -> web.Application:
    app = web.Application(middlewares=[pipeline_middleware, gate], client_max_size=1024**2)
    app[BACKEND] = backend
    app[REQUEST_LOG] = backend.requests
    app[FAULT_HOOKS] = []
    app[ERROR_RENDERER] = render_error
    app.router.add_get(TOKEN_PATH, session_token)
    app.router.add_get(f"{API_PREFIX}/files", list_files)
    app.router.add_post(f"{API_PREFIX}/files", post_file)
    app.router.add_delete(API_PREFIX + "/files/{uuid}", delete_file)
    app.router.add_post(f"{API_PREFIX}/businessWeb/fileUploadS3.do", upload)
    app.router.add_get(BLOB_PREFIX + "/{bucket}/{blob}", bucket_get)
    return app
