"""Cliniko sandbox records (patients, patient attachments, uploaded S3 objects) and their JSON shapes.

The JSON renderers follow ``cliniko-openapi.json`` (``Patient``, ``UploadedPatientAttachment``): ids
are strings, related records are ``{"links": {"self": URL}}``, timestamps are UTC RFC 3339 with a
``Z``. Fields the spec marks nullable stay ``null`` until they are known (an attachment's
``filename``, ``size`` and ``content_type`` before processing completes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TICK = timedelta(microseconds=1)


def parse_utc(text: str) -> datetime:
    """An RFC 3339 UTC timestamp (``Z`` or ``+00:00``); ``ValueError`` for naive or non-UTC ones."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("DateTime has to be in UTC, e.g. 2014-08-30T18:00:00Z")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


class UtcClock:
    """The sandbox server's clock: UTC stamps with microseconds, strictly increasing.

    Strictly increasing stamps make ``updated_at`` cursors well defined: two changes never share a
    stamp. ``skew_s`` shifts the server clock away from ours (clients must not compare them).
    """

    def __init__(self, skew_s: float = 0.0) -> None:
        self._skew = timedelta(seconds=skew_s)
        self._last = datetime(1970, 1, 1, tzinfo=UTC)

    def observe(self, stamp: str | None) -> None:
        if stamp:
            value = parse_utc(stamp)
            if value > self._last:
                self._last = value

    def now(self) -> str:
        value = datetime.now(UTC) + self._skew
        if value <= self._last:
            value = self._last + _TICK
        self._last = value
        return format_utc(value)


@dataclass(slots=True)
class Patient:
    id: int
    first_name: str
    last_name: str
    created_at: str
    updated_at: str
    archived_at: str | None = None
    title: str | None = None
    preferred_first_name: str | None = None
    date_of_birth: str | None = None


@dataclass(slots=True)
class Attachment:
    """A patient attachment. ``ready_at`` (epoch seconds) is when its asynchronous processing ends."""

    id: int
    patient_id: int
    object_key: str
    created_at: str
    updated_at: str
    ready_at: float = 0.0
    user_id: int = 1
    description: str | None = None
    filename: str | None = None
    size: int | None = None
    content_type: str | None = None
    processed_at: str | None = None
    archived_at: str | None = None

    @property
    def processing_completed(self) -> bool:
        return self.processed_at is not None


@dataclass(slots=True)
class StoredObject:
    """An object in the sandbox's S3 bucket, uploaded through a presigned POST (or seeded)."""

    key: str
    blob: str
    size: int
    etag: str
    patient_id: int
    used_by: int | None = None  # the attachment created from it


def _link(url: str) -> dict[str, Any]:
    return {"links": {"self": url}}


def patient_json(p: Patient, api_root: str) -> dict[str, Any]:
    label = " ".join(part for part in (p.title, p.first_name, p.last_name) if part)
    return {
        "id": str(p.id),
        "first_name": p.first_name,
        "last_name": p.last_name,
        "preferred_first_name": p.preferred_first_name,
        "title": p.title,
        "label": label,
        "date_of_birth": p.date_of_birth,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "archived_at": p.archived_at,
        "links": {"self": f"{api_root}/patients/{p.id}"},
        "patient_attachments": _link(f"{api_root}/patients/{p.id}/patient_attachments"),
        "appointments": _link(f"{api_root}/patients/{p.id}/appointments"),
    }


def attachment_json(a: Attachment, api_root: str) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "archived_at": a.archived_at,
        "content": _link(f"{api_root}/patient_attachments/{a.id}/content") if a.processing_completed else None,
        "content_type": a.content_type,
        "created_at": a.created_at,
        "description": a.description,
        "filename": a.filename,
        "links": {"self": f"{api_root}/patient_attachments/{a.id}"},
        "patient": _link(f"{api_root}/patients/{a.patient_id}"),
        "pinned_at": None,
        "processed_at": a.processed_at,
        "processing_completed": a.processing_completed,
        "size": a.size,
        "updated_at": a.updated_at,
        "user": _link(f"{api_root}/users/{a.user_id}"),
    }
