"""The ``/laika/BLOB`` presigned blob store: downloads (GET/HEAD, with ``Range``) and uploads (PUT).

No Authorization header is needed or looked at: the query-string signature is the only credential,
as with S3. Errors are S3-style XML bodies.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from xml.sax.saxutils import escape

from aiohttp import web

from daemon.sandbox.blobs import RECEIVE_CHUNK, is_blob_name
from daemon.sandbox.coredata_backend import CoreDataBackend
from daemon.sandbox.middleware import ApiError
from daemon.sandbox.signing import SignatureError

BACKEND = web.AppKey("coredata_backend", CoreDataBackend)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

_S3_CODES = {400: "BadRequest", 403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict", 416: "InvalidRange"}


def xml_error(status: int, message: str) -> web.Response:
    code = _S3_CODES.get(status, "InternalError")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _verify(request: web.Request, method: str) -> tuple[CoreDataBackend, str]:
    backend = request.app[BACKEND]
    blob = request.match_info["blob"]
    try:
        backend.signer.verify(method, blob, request.query)
    except SignatureError as exc:
        raise ApiError(403, str(exc)) from None
    if not is_blob_name(blob):
        raise ApiError(404, "The specified key does not exist.")
    return backend, blob


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single ``bytes=`` range; None for the whole blob; 416 when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # malformed or multi-range: serve the whole blob, as S3 does
    first, last = match.group(1), match.group(2)
    if first == "":
        length = min(int(last), size)
        start = size - length
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        length = end - start + 1
    if start >= size or length <= 0:
        raise ApiError(416, "The requested range is not satisfiable")
    return start, length


async def download(request: web.Request) -> web.StreamResponse:
    backend, blob = _verify(request, "GET")
    if not backend.blobs.exists(blob):
        raise ApiError(404, "The specified key does not exist.")
    path = backend.blobs.path(blob)
    stat = path.stat()
    size = stat.st_size
    headers = {
        "Content-Type": request.query.get("response-content-type") or "application/octet-stream",
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Accept-Ranges": "bytes",
    }
    disposition = request.query.get("response-content-disposition", "").strip()
    if disposition:
        headers["Content-Disposition"] = disposition
    try:
        wanted = _byte_range(request.headers.get("Range"), size)
    except ApiError as exc:
        refused = xml_error(exc.status, exc.message)
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    start, length = wanted if wanted is not None else (0, size)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    response.content_length = length
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in backend.blobs.read_range(blob, start, length):
            await response.write(chunk)
    await response.write_eof()
    return response


async def upload(request: web.Request) -> web.StreamResponse:
    backend, blob = _verify(request, "PUT")
    reserved = backend.upload_blobs.get(blob)
    if reserved is None:
        raise ApiError(404, "No upload was reserved for this key.")
    if reserved.digest is not None and any(f.blob_name == blob for f in backend.files()):
        raise ApiError(409, "This blob is already in use by a file and cannot be overwritten.")
    declared = request.content_length
    if declared is not None and declared != reserved.content_length:
        raise ApiError(400, f"Content-Length {declared} differs from the reserved {reserved.content_length}.")
    try:
        written = await backend.blobs.write_stream(
            blob, request.content.iter_chunked(RECEIVE_CHUNK), expect_size=reserved.content_length
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    backend.finish_upload(written)
    return web.Response(status=201, headers={"ETag": f'"{written.digest}"'})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/laika/{blob}", download)
    app.router.add_put("/laika/{blob}", upload)
