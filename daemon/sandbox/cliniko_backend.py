"""The Cliniko account a sandbox serves: patients, patient attachments, the S3 bucket, the rate limit.

Handlers and tests both drive it: handlers through the HTTP API, tests directly (``add_patient``,
``add_attachment``, ``archive``, ``rename_patient``) to play "someone changed Cliniko".
Validation failures raise ``ApiError`` with the status the HTTP API answers.

Sandbox decisions (the vendor documents none of these; change them here, in one place):
- Processing of an uploaded attachment completes ``processing_delay`` seconds after its creation
  (checked at the start of every API request). Until then ``filename``, ``size``, ``content_type``,
  ``processed_at`` and ``content`` are null and ``/content`` answers 404. Completing bumps
  ``updated_at``.
- Archiving sets ``archived_at`` and bumps ``updated_at``; archived records drop out of lists and
  shows unless a filter names ``archived_at``. Archiving twice answers 404 (it is not found any more).
- The rate limit is a fixed window per API key (``rate_limit`` requests per ``rate_window`` seconds,
  windows aligned to the epoch); a refused request does not count and gets 429 with
  ``X-RateLimit-Reset`` = the window's end in UNIX seconds (rounded up).
- The API key is accepted with or without ``-SHARD`` (the shard this sandbox plays, ``au1`` unless
  told otherwise).
"""

from __future__ import annotations

import hmac
import math
import mimetypes
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from daemon.sandbox.access_log import RequestLog
from daemon.sandbox.blobs import BlobStore, BlobWritten, new_blob_name
from daemon.sandbox.cliniko_db import ClinikoDb
from daemon.sandbox.cliniko_model import Attachment, Patient, StoredObject, UtcClock
from daemon.sandbox.credentials import Credentials, load_or_create
from daemon.sandbox.middleware import ApiError

BUCKET = "cliniko-sandbox-files"
ACCOUNT = "1"
USER_AGENT = "libmirror sandbox (sandbox@example.com)"
API_LOG_CAP = 100_000


class Unprocessable(Exception):
    """A 422: the record could not be saved. ``errors`` maps fields to messages, as Cliniko answers."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Validation Failed")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ApiHit:
    """One ``/v1`` request as the rate limiter saw it (``time`` = epoch seconds of its arrival)."""

    time: float
    method: str
    path: str
    status: int


class FixedWindowLimit:
    """At most ``limit`` admitted requests per window of ``window`` seconds, windows aligned to the epoch."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate_limit must be at least 1 and rate_window positive")
        self.limit = limit
        self.window = window
        self._start = -math.inf
        self._count = 0

    def admit(self, now: float) -> float | None:
        """None when admitted; otherwise the epoch time the current window ends."""
        start = math.floor(now / self.window) * self.window
        if start != self._start:
            self._start, self._count = start, 0
        if self._count >= self.limit:
            return start + self.window
        self._count += 1
        return None


class ClinikoBackend:
    """One Cliniko account (one user, one API key)."""

    provider = "cliniko"

    def __init__(
        self,
        data_dir: Path,
        *,
        processing_delay: float = 1.0,
        rate_limit: int = 200,
        rate_window: float = 60.0,
        presign_ttl: float = 300.0,
        shard: str = "au1",
        clock_skew_s: float = 0.0,
        max_upload_size: int = 100 * 1024 * 1024,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.processing_delay = float(processing_delay)
        self.presign_ttl = float(presign_ttl)
        self.shard = str(shard)
        self.max_upload_size = int(max_upload_size)
        self.time = time_source
        self.credentials: Credentials = load_or_create(data_dir, api_user="cliniko-sandbox")
        self.limit = FixedWindowLimit(int(rate_limit), float(rate_window))
        self.blobs = BlobStore(data_dir / "blobs")
        self.clock = UtcClock(skew_s=clock_skew_s)
        self.requests = RequestLog()
        self.api_log: list[ApiHit] = []
        self.patients: dict[int, Patient] = {}
        self.attachments: dict[int, Attachment] = {}
        self.objects: dict[str, StoredObject] = {}
        self.db = ClinikoDb(data_dir / "cliniko.sqlite3")
        self.is_new = self.db.is_new
        patients, attachments, objects, meta = self.db.load()
        for p in patients:
            self.patients[p.id] = p
            self.clock.observe(p.updated_at)
        for a in attachments:
            self.attachments[a.id] = a
            self.clock.observe(a.updated_at)
        for o in objects:
            self.objects[o.key] = o
        self._next_id = int(meta.get("next_id", "1000"))

    def close(self) -> None:
        self.db.close()

    # ---- credentials -------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The key as Cliniko shows it to the user: with the shard suffix."""
        return f"{self.credentials.api_key}-{self.shard}"

    @property
    def signing_secret(self) -> str:
        return self.credentials.signing_secret

    def key_matches(self, given: str) -> bool:
        bare = self.credentials.api_key
        return hmac.compare_digest(given.encode(), bare.encode()) | hmac.compare_digest(
            given.encode(), self.api_key.encode()
        )

    def remote_table(self, base_url: str) -> dict[str, Any]:
        """A ready ``[library.remote]`` table for a library mirroring this account."""
        return {"base_url": f"{base_url}/v1", "api_key": self.api_key, "user_agent": USER_AGENT}

    # ---- per request -------------------------------------------------------------------------

    def admit(self) -> float | None:
        """Count one API request; the reset time (epoch seconds) when over the limit."""
        return self.limit.admit(self.time())

    def log_hit(self, when: float, method: str, path: str, status: int) -> None:
        self.api_log.append(ApiHit(when, method, path, status))
        if len(self.api_log) > API_LOG_CAP + API_LOG_CAP // 10:
            del self.api_log[: len(self.api_log) - API_LOG_CAP]

    def tick(self) -> None:
        """Finish the processing of every attachment whose delay has passed."""
        now = self.time()
        due = [a for a in self.attachments.values() if not a.processing_completed and a.ready_at <= now]
        if not due:
            return
        with self.db.batch():
            for a in sorted(due, key=lambda x: (x.ready_at, x.id)):
                self._complete(a)

    def _complete(self, a: Attachment) -> None:
        obj = self.objects[a.object_key]
        a.filename = a.object_key.rpartition("/")[2]
        a.size = obj.size
        a.content_type = mimetypes.guess_type(a.filename)[0] or "application/octet-stream"
        a.processed_at = a.updated_at = self.clock.now()
        self.db.save_attachment(a)

    def _new_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        self.db.set_meta("next_id", str(self._next_id))
        return value

    # ---- patients ----------------------------------------------------------------------------

    def add_patient(self, first_name: str, last_name: str, **extra: Any) -> Patient:
        stamp = self.clock.now()
        patient = Patient(self._new_id(), first_name, last_name, stamp, stamp, **extra)
        self.patients[patient.id] = patient
        self.db.save_patient(patient)
        return patient

    def get_patient(self, patient_id: str | int) -> Patient:
        patient = self.patients.get(_int_id(patient_id))
        if patient is None:
            raise ApiError(404, f"Patient {patient_id} not found")
        return patient

    def update_patient(self, patient_id: str | int, changes: dict[str, Any]) -> Patient:
        patient = self.get_patient(patient_id)
        errors: dict[str, str] = {}
        for key, value in changes.items():
            if key not in ("first_name", "last_name", "preferred_first_name", "title", "date_of_birth"):
                continue  # Cliniko ignores attributes it does not know
            if key in ("first_name", "last_name") and (not isinstance(value, str) or not value.strip()):
                errors[key] = "can't be blank"
            elif value is not None and not isinstance(value, str):
                errors[key] = "is invalid"
            else:
                setattr(patient, key, value)
        if errors:
            raise Unprocessable(errors)
        patient.updated_at = self.clock.now()
        self.db.save_patient(patient)
        return patient

    def rename_patient(self, patient_id: int, first_name: str, last_name: str) -> Patient:
        """Test helper: someone corrects a patient's name in Cliniko."""
        return self.update_patient(patient_id, {"first_name": first_name, "last_name": last_name})

    def archive_patient(self, patient_id: int) -> None:
        patient = self.get_patient(patient_id)
        patient.archived_at = patient.updated_at = self.clock.now()
        self.db.save_patient(patient)

    # ---- the bucket --------------------------------------------------------------------------

    def upload_prefix(self, patient_id: int) -> str:
        return f"{ACCOUNT}/patients/{patient_id}/attachments/temp/{uuid.uuid4().hex}/"

    def patient_of_key(self, key: str) -> int | None:
        parts = key.split("/")
        if len(parts) >= 6 and parts[0] == ACCOUNT and parts[1] == "patients" and parts[2].isdigit():
            return int(parts[2])
        return None

    def store_object(self, key: str, written: BlobWritten) -> StoredObject:
        patient_id = self.patient_of_key(key)
        if patient_id is None:
            raise ApiError(403, "Invalid according to Policy: Policy Condition failed: key")
        obj = StoredObject(key, written.name, written.size, written.digest, patient_id)
        old = self.objects.get(key)
        self.objects[key] = obj
        self.db.save_object(obj)
        if old is not None and old.used_by is None:
            self.blobs.remove(old.blob)
        return obj

    def key_of_upload_url(self, upload_url: str) -> str | None:
        """The object key an ``upload_url`` points at (any host: the client knows ours), or None."""
        try:
            parts = urlsplit(upload_url)
        except ValueError:
            return None
        prefix = f"/s3/{BUCKET}/"
        if parts.scheme not in ("http", "https") or not parts.path.startswith(prefix):
            return None
        return unquote(parts.path[len(prefix) :]) or None

    # ---- attachments -------------------------------------------------------------------------

    def get_attachment(self, attachment_id: str | int) -> Attachment:
        attachment = self.attachments.get(_int_id(attachment_id))
        if attachment is None:
            raise ApiError(404, f"Patient attachment {attachment_id} not found")
        return attachment

    def create_attachment(self, patient_id: Any, upload_url: Any, description: Any) -> Attachment:
        """``POST /patient_attachments``: a record over an object uploaded with the presigned POST."""
        errors: dict[str, str] = {}
        patient: Patient | None = None
        try:
            patient = self.get_patient(str(patient_id)) if isinstance(patient_id, str | int) else None
        except ApiError:
            patient = None
        if patient is None or patient.archived_at is not None:
            errors["patient"] = "must exist"
        key = self.key_of_upload_url(upload_url) if isinstance(upload_url, str) else None
        obj = self.objects.get(key) if key else None
        if obj is None or obj.used_by is not None or (patient is not None and obj.patient_id != patient.id):
            errors["upload_url"] = "is invalid"
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            errors["description"] = "is too long (maximum is 255 characters)"
        if errors:
            raise Unprocessable(errors)
        assert obj is not None and patient is not None
        stamp = self.clock.now()
        attachment = Attachment(
            id=self._new_id(),
            patient_id=patient.id,
            object_key=obj.key,
            created_at=stamp,
            updated_at=stamp,
            ready_at=self.time() + self.processing_delay,
            description=description,
        )
        obj.used_by = attachment.id
        with self.db.batch():
            self.db.save_object(obj)
            self.attachments[attachment.id] = attachment
            self.db.save_attachment(attachment)
        return attachment

    def add_attachment(
        self, patient_id: int, filename: str, data: bytes, *, processed: bool = True, description: str | None = None
    ) -> Attachment:
        """Test/seed helper: an attachment as if uploaded in Cliniko's web app."""
        key = self.upload_prefix(patient_id) + filename
        self.store_object(key, self.blobs.write_bytes(new_blob_name(), data))
        attachment = self.create_attachment(patient_id, f"http://sandbox/s3/{BUCKET}/{quote(key)}", description)
        if processed:
            attachment.ready_at = self.time()
            self._complete(attachment)
        return attachment

    def archive(self, attachment_id: str | int) -> Attachment:
        attachment = self.get_attachment(attachment_id)
        if attachment.archived_at is not None:
            raise ApiError(404, f"Patient attachment {attachment_id} not found")
        attachment.archived_at = attachment.updated_at = self.clock.now()
        self.db.save_attachment(attachment)
        return attachment

    def read_content(self, attachment_id: int) -> bytes:
        attachment = self.get_attachment(attachment_id)
        return self.blobs.read_bytes(self.objects[attachment.object_key].blob)

    def active_attachments(self, patient_id: int | None = None) -> list[Attachment]:
        """Test helper: attachments not archived (processed or not), by id."""
        return [
            a
            for a in sorted(self.attachments.values(), key=lambda x: x.id)
            if a.archived_at is None and (patient_id is None or a.patient_id == patient_id)
        ]


def _int_id(raw: str | int) -> int:
    if isinstance(raw, int):
        return raw
    if not raw.isdigit():
        return -1
    return int(raw)
