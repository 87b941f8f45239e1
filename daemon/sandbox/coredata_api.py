"""CoreData ``/api/v2`` and ``/api/v3`` handlers, as ``coredata-files-v2.txt`` describes them.

Authentication and the trailing-slash redirect happen in ``coredata_app.gate`` before these run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from daemon.sandbox.blobs import CHUNK, RECEIVE_CHUNK, BlobWritten, new_blob_name
from daemon.sandbox.coredata_backend import CoreDataBackend
from daemon.sandbox.coredata_listing import page_meta, parse_list_query
from daemon.sandbox.coredata_model import file_json, folder_json, space_json
from daemon.sandbox.laika import BACKEND
from daemon.sandbox.middleware import ApiError

_CREATE_FIELDS = {"content", "blob_name", "filename", "title", "parent", "dynatype", "contacts", "tags"}
_CONTENT_PARAMS = {"filename", "snapshot_id", "blob_name", "digest"}


def _backend(request: web.Request) -> CoreDataBackend:
    return request.app[BACKEND]


def _signed_url(request: web.Request, method: str, blob: str, extra: dict[str, str]) -> str:
    backend = _backend(request)
    query = backend.signer.query(method, blob, backend.presign_ttl, extra)
    return f"{request.url.origin()}/laika/{blob}?{query}"


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _created(resource: str, node_id: str) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/api/v2/{resource}/{node_id}/"})


# ---- listings and details --------------------------------------------------------------------


def _list(kind: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        backend = _backend(request)
        query = parse_list_query(request.query, page_limit_max=backend.page_limit_max)
        total, rows = backend.list_page(kind, query)
        render = file_json if kind == "files" else folder_json
        return web.json_response(
            {
                "meta": page_meta(request.path, request.query, query, total),
                "objects": [render(n, backend.nodes) for n in rows],
            }
        )

    return handler


async def file_detail(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    return web.json_response(file_json(backend.get_file(request.match_info["id"]), backend.nodes))


async def folder_detail(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    return web.json_response(folder_json(backend.get_folder(request.match_info["id"]), backend.nodes))


async def space_detail(request: web.Request) -> web.StreamResponse:
    return web.json_response(space_json(_backend(request).get_space(request.match_info["id"])))


async def project_files(request: web.Request) -> web.StreamResponse:
    raise ApiError(404, f"Project {request.match_info['id']} not found.")


# ---- files -----------------------------------------------------------------------------------


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def create_file(request: web.Request) -> web.StreamResponse:
    """Multipart create with a ``content`` part (streamed to disk) or a pre-uploaded ``blob_name``."""
    backend = _backend(request)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "Files are created with a multipart/form-data body.")
    fields: dict[str, str] = {}
    written: BlobWritten | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name not in _CREATE_FIELDS:
                raise ApiError(400, f"Unexpected form part '{getattr(part, 'name', None)}'.")
            if part.name in fields or (part.name == "content" and written is not None):
                raise ApiError(400, f"The form part '{part.name}' appears twice.")
            if part.name == "content":
                written = await backend.blobs.write_stream(new_blob_name(), _part_chunks(part))
            else:
                fields[part.name] = await part.text()
        if written is not None and "blob_name" in fields:
            raise ApiError(400, "Give either 'content' or 'blob_name', not both.")
        if written is None and "blob_name" not in fields:
            raise ApiError(400, "The 'content' field is mandatory (or 'blob_name' of an uploaded blob).")
        blob = written or backend.uploaded_blob(fields["blob_name"])
        node = backend.create_file(fields.get("parent"), fields.get("filename"), fields.get("title"), blob)
    except BaseException:
        if written is not None:
            backend.blobs.remove(written.name)
        raise
    return _created("files", node.id)


async def update_file(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    file_id = request.match_info["id"]
    backend.get_file(file_id)
    body = await _json_object(request)
    backend.update_file(file_id, body.get("title"), body.get("filename"), body.get("parent"))
    return web.Response(status=204)


async def delete_file(request: web.Request) -> web.StreamResponse:
    _backend(request).delete_file(request.match_info["id"])
    return web.Response(status=204)


async def download_file(request: web.Request) -> web.StreamResponse:
    node = _backend(request).get_file(request.match_info["id"])
    extra = {
        "response-content-disposition": f" attachment; filename*=utf-8''{quote(node.filename, safe='')}",
        "response-content-type": node.mime_type,
    }
    return web.Response(status=302, headers={"Location": _signed_url(request, "GET", node.blob_name, extra)})


async def update_content(request: web.Request) -> web.StreamResponse:
    """New content from the body, or from a pre-uploaded blob (``blob_name`` + matching ``digest``)."""
    backend = _backend(request)
    node = backend.get_file(request.match_info["id"])
    query = request.query
    for key in query:
        if key not in _CONTENT_PARAMS:
            raise ApiError(400, f"Unknown parameter '{key}'.")
    snapshot_id = query.get("snapshot_id")
    if snapshot_id is not None and snapshot_id != node.snapshot_id:
        raise ApiError(409, f"snapshot_id {snapshot_id} is not the current snapshot; reload and retry.")
    filename = query.get("filename") or None
    if "blob_name" in query:
        blob = backend.uploaded_blob(query["blob_name"])
        if query.get("digest") != blob.digest:
            raise ApiError(400, "The 'digest' does not match the uploaded blob's content.")
        node = backend.replace_content(node.id, blob, filename=filename, snapshot_id=snapshot_id)
    else:
        if "digest" in query:
            raise ApiError(400, "'digest' is only used together with 'blob_name'.")
        blob = await backend.blobs.write_stream(new_blob_name(), request.content.iter_chunked(RECEIVE_CHUNK))
        try:
            node = backend.replace_content(node.id, blob, filename=filename, snapshot_id=snapshot_id)
        except BaseException:
            backend.blobs.remove(blob.name)
            raise
    headers = {"X-Coredata-fields-filedigest": node.digest, "X-Coredata-fields-snapshot-id": node.snapshot_id}
    return web.Response(status=201, headers=headers)


async def presigned_upload_url(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    content_type = request.query.get("content_type", "")
    raw_length = request.query.get("content_length", "")
    if not content_type:
        raise ApiError(400, "The 'content_type' parameter is mandatory.")
    if not raw_length.isdigit():
        raise ApiError(400, "The 'content_length' parameter must be a non-negative integer.")
    blob = backend.reserve_upload(content_type, int(raw_length))
    return web.json_response(
        {"blobName": blob.name, "presignedUrl": _signed_url(request, "PUT", blob.name, {})}, status=200
    )


# ---- folders ---------------------------------------------------------------------------------


async def create_folder(request: web.Request) -> web.StreamResponse:
    body = await _json_object(request)
    node = _backend(request).create_folder(body.get("title"), body.get("parent"))
    return _created("folders", node.id)


async def update_folder(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    folder_id = request.match_info["id"]
    backend.get_folder(folder_id)
    body = await _json_object(request)
    backend.update_folder(folder_id, body.get("title"), body.get("parent"))
    return web.Response(status=204)


async def delete_folder(request: web.Request) -> web.StreamResponse:
    _backend(request).delete_folder(request.match_info["id"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v2/files/", _list("files"))
    r.add_post("/api/v2/files/", create_file)
    r.add_get("/api/v2/files/{id}/", file_detail)
    r.add_put("/api/v2/files/{id}/", update_file)
    r.add_delete("/api/v2/files/{id}/", delete_file)
    r.add_get("/api/v2/files/{id}/content/", download_file)
    r.add_put("/api/v2/files/{id}/content/", update_content)
    r.add_get("/api/v2/folders/", _list("folders"))
    r.add_post("/api/v2/folders/", create_folder)
    r.add_get("/api/v2/folders/{id}/", folder_detail)
    r.add_put("/api/v2/folders/{id}/", update_folder)
    r.add_delete("/api/v2/folders/{id}/", delete_folder)
    r.add_get("/api/v2/spaces/{id}/", space_detail)
    r.add_get("/api/v2/projects/{id}/files/", project_files)
    r.add_post("/api/v3/blob/presigned-upload-url/", presigned_upload_url)
