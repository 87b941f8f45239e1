"""Cliniko ``/v1`` handlers for patients and patient attachments, as the spec and api-notes.md describe.

Authentication, the User-Agent check, the rate limit and the processing clock run in
``cliniko_app.gate`` before any of these.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from daemon.sandbox import cliniko_s3
from daemon.sandbox.cliniko_backend import ClinikoBackend, Unprocessable
from daemon.sandbox.cliniko_model import Attachment, Patient, attachment_json, patient_json
from daemon.sandbox.cliniko_query import (
    FieldType,
    Getter,
    page_links,
    parse_list_query,
    parse_show_query,
    select,
)
from daemon.sandbox.cliniko_s3 import BACKEND, S3_ORIGIN
from daemon.sandbox.middleware import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ATTACHMENT_FIELDS: dict[str, FieldType] = {
    "id": "int",
    "archived_at": "datetime",
    "created_at": "datetime",
    "updated_at": "datetime",
    "content_type": "string",
    "description": "string",
    "filename": "string",
    "patient_id": "int",
    "processed_at": "datetime",
    "size": "int",
    "user_id": "int",
}
PATIENT_ATTACHMENT_FIELDS = {k: v for k, v in ATTACHMENT_FIELDS.items() if k != "patient_id"}
PATIENT_FIELDS: dict[str, FieldType] = {
    "id": "int",
    "archived_at": "datetime",
    "created_at": "datetime",
    "updated_at": "datetime",
    "date_of_birth": "date",
    "email": "string",
    "first_name": "string",
    "last_name": "string",
    "old_reference_id": "string",
    "preferred_first_name": "string",
}
ATTACHMENT_SORT = ("id", "created_at", "updated_at", "archived_at", "processed_at", "filename", "size")
PATIENT_SORT = ("id", "created_at", "updated_at", "archived_at", "first_name", "last_name")


def _getter(name: str) -> Getter:
    def get(record: Any) -> Any:
        return getattr(record, name, None)

    return get


def _getters(fields: Mapping[str, FieldType]) -> dict[str, Getter]:
    return {name: _getter(name) for name in fields}


ATTACHMENT_GETTERS = _getters(ATTACHMENT_FIELDS)
PATIENT_GETTERS = _getters(PATIENT_FIELDS)


def _backend(request: web.Request) -> ClinikoBackend:
    return request.app[BACKEND]


def api_root(request: web.Request) -> str:
    return f"{request.url.origin()}/v1"


def unprocessable(errors: dict[str, str]) -> web.Response:
    return web.json_response({"message": "Validation Failed", "errors": errors}, status=422)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _list(
    request: web.Request,
    key: str,
    records: list[Any],
    fields: Mapping[str, FieldType],
    getters: Mapping[str, Getter],
    sortable: tuple[str, ...],
    render: Callable[[Any, str], dict[str, Any]],
) -> web.Response:
    query = parse_list_query(request.query, fields, sortable)
    rows = select(records, query, fields, getters)
    start = (query.page - 1) * query.per_page
    page = rows[start : start + query.per_page]
    root = api_root(request)
    return web.json_response(
        {
            key: [render(r, root) for r in page],
            "total_entries": len(rows),
            "links": page_links(
                f"{request.url.origin()}{request.path}", request.query, query.page, query.per_page, len(rows)
            ),
        }
    )


def _shown(request: web.Request, record: Any, fields: Mapping[str, FieldType], getters: Mapping[str, Getter]) -> Any:
    """The record if the show query's filters (default: not archived) let it through; else 404."""
    if not select([record], parse_show_query(request.query, fields), fields, getters):
        raise ApiError(404, "Not found")
    return record


# ---- patients --------------------------------------------------------------------------------


async def list_patients(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    return _list(
        request,
        "patients",
        list(backend.patients.values()),
        PATIENT_FIELDS,
        PATIENT_GETTERS,
        PATIENT_SORT,
        patient_json,
    )


async def show_patient(request: web.Request) -> web.StreamResponse:
    patient: Patient = _shown(
        request, _backend(request).get_patient(request.match_info["id"]), PATIENT_FIELDS, PATIENT_GETTERS
    )
    return web.json_response(patient_json(patient, api_root(request)))


async def update_patient(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    backend.get_patient(request.match_info["id"])
    body = await _json_object(request)
    try:
        patient = backend.update_patient(request.match_info["id"], body)
    except Unprocessable as exc:
        return unprocessable(exc.errors)
    return web.json_response(patient_json(patient, api_root(request)))


# ---- attachments -----------------------------------------------------------------------------


async def list_attachments(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    records = list(backend.attachments.values())
    return _list(
        request,
        "patient_attachments",
        records,
        ATTACHMENT_FIELDS,
        ATTACHMENT_GETTERS,
        ATTACHMENT_SORT,
        attachment_json,
    )


async def list_patient_attachments(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    patient = backend.get_patient(request.match_info["id"])
    records = [a for a in backend.attachments.values() if a.patient_id == patient.id]
    return _list(
        request,
        "patient_attachments",
        records,
        PATIENT_ATTACHMENT_FIELDS,
        ATTACHMENT_GETTERS,
        ATTACHMENT_SORT,
        attachment_json,
    )


async def show_attachment(request: web.Request) -> web.StreamResponse:
    attachment: Attachment = _shown(
        request,
        _backend(request).get_attachment(request.match_info["id"]),
        {"archived_at": "datetime"},
        ATTACHMENT_GETTERS,
    )
    return web.json_response(attachment_json(attachment, api_root(request)))


async def create_attachment(request: web.Request) -> web.StreamResponse:
    body = await _json_object(request)
    try:
        attachment = _backend(request).create_attachment(
            body.get("patient_id"), body.get("upload_url"), body.get("description")
        )
    except Unprocessable as exc:
        return unprocessable(exc.errors)
    return web.json_response(attachment_json(attachment, api_root(request)), status=201)


async def archive_attachment(request: web.Request) -> web.StreamResponse:
    _backend(request).archive(request.match_info["id"])
    return web.Response(status=204)


async def content(request: web.Request) -> web.StreamResponse:
    """303 to a presigned URL on the S3 origin (another origin: clients drop our Authorization header)."""
    backend = _backend(request)
    attachment = backend.get_attachment(request.match_info["id"])
    if attachment.archived_at is not None or not attachment.processing_completed:
        raise ApiError(404, "Not found")
    assert attachment.filename is not None
    url = cliniko_s3.presigned_get(
        backend,
        request.app[S3_ORIGIN],
        attachment.object_key,
        attachment.filename,
        attachment.content_type or "application/octet-stream",
    )
    return web.Response(status=303, headers={"Location": url})


async def presigned_post(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    patient = backend.get_patient(request.match_info["id"])
    if patient.archived_at is not None:
        raise ApiError(404, "Not found")
    return web.json_response(cliniko_s3.presigned_post(backend, request.app[S3_ORIGIN], patient.id))


async def api_log(request: web.Request) -> web.StreamResponse:
    """Sandbox only (no Cliniko route): every ``/v1`` request with its arrival time, for tests that
    count requests per window from another process."""
    hits = _backend(request).api_log
    return web.json_response(
        {"requests": [{"time": h.time, "method": h.method, "path": h.path, "status": h.status} for h in hits]}
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/patients", list_patients)
    r.add_get("/v1/patients/{id}", show_patient)
    r.add_patch("/v1/patients/{id}", update_patient)
    r.add_get("/v1/patients/{id}/patient_attachments", list_patient_attachments)
    r.add_get("/v1/patients/{id}/attachment_presigned_post", presigned_post)
    r.add_get("/v1/patient_attachments", list_attachments)
    r.add_post("/v1/patient_attachments", create_attachment)
    r.add_get("/v1/patient_attachments/{id}", show_attachment)
    r.add_delete("/v1/patient_attachments/{id}", archive_attachment)  # deprecated: archives
    r.add_post("/v1/patient_attachments/{id}/archive", archive_attachment)
    r.add_get("/v1/patient_attachments/{id}/content", content)
    r.add_get("/_sandbox/api_log", api_log)
