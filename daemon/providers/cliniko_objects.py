"""Cliniko JSON → typed records, timestamps, patient folder names, and the request pacing.

Kept apart from the provider so the parsing rules (which fields we trust, how timestamps are made
sortable, how a folder name maps back to a patient id) can be read and tested on their own.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from yarl import URL

from daemon.providers.fields import FieldReader, require_object
from daemon.providers.http import RateLimiter, budget_key, shared_rate_limiter
from daemon.vocab import InvalidResponse

DEFAULT_PATIENT_FOLDER = "{last_name}, {first_name} ({id})"
FOLDER_FIELDS = ("id", "first_name", "last_name", "preferred_first_name", "title")
_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
_SHARD = re.compile(r"-[a-z]{2,3}[0-9]+$")
_TRAILING_ID = re.compile(r"\((\d+)\)\s*$")


# ---- timestamps ------------------------------------------------------------------------------


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the docs: every time is UTC
    return value.astimezone(UTC)


def normalise_timestamp(text: str) -> str:
    """Cliniko's RFC 3339 time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so that string order is time order
    whatever precision the server sends (the engine sorts cursors as strings)."""
    try:
        return _parse(text).strftime(_STAMP)
    except ValueError:
        raise InvalidResponse(f"Cliniko timestamp {text!r} is not RFC 3339") from None


def filter_timestamp(stamp: str, minus_seconds: float) -> str:
    """A server timestamp minus the overlap window, as a ``q[]`` filter value (UTC, ``Z``)."""
    value = _parse(stamp) - timedelta(seconds=minus_seconds)
    if value.microsecond:
        return value.strftime(_STAMP)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    id: str
    patient_id: str
    filename: str | None
    size: int | None
    created_at: str  # normalised
    updated_at: str  # normalised
    archived: bool
    processed: bool


@dataclass(frozen=True, slots=True)
class PatientRecord:
    id: str
    first_name: str
    last_name: str
    preferred_first_name: str
    title: str
    archived: bool


def _get(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str, *, nullable: bool = False) -> Any:
    return FieldReader(f"Cliniko {what}")(obj, name, kind, nullable=nullable)


def id_from_link(obj: Mapping[str, Any], name: str, what: str) -> str:
    """``{"patient": {"links": {"self": ".../patients/123"}}}`` → ``"123"``."""
    try:
        link = obj[name]["links"]["self"]
        last = URL(str(link)).path.rstrip("/").rpartition("/")[2]
    except (KeyError, TypeError, ValueError):
        raise InvalidResponse(f"Cliniko {what} {obj.get('id', '?')!r} has no {name}.links.self") from None
    if not last.isdigit():
        raise InvalidResponse(f"Cliniko {what} {obj.get('id', '?')!r}: {name} link {link!r} has no id")
    return last


def parse_attachment(obj: Any) -> AttachmentRecord:
    obj = require_object(obj, "Cliniko patient attachment")
    what = "patient attachment"
    processed = obj.get("processing_completed") is True
    size = _get(obj, "size", int, what, nullable=True)
    return AttachmentRecord(
        id=_get(obj, "id", str, what),
        patient_id=id_from_link(obj, "patient", what),
        filename=_get(obj, "filename", str, what, nullable=True),
        size=size,
        created_at=normalise_timestamp(_get(obj, "created_at", str, what)),
        updated_at=normalise_timestamp(_get(obj, "updated_at", str, what)),
        archived=_get(obj, "archived_at", str, what, nullable=True) is not None,
        processed=processed and obj.get("filename") is not None,
    )


def parse_patient(obj: Any) -> PatientRecord:
    obj = require_object(obj, "Cliniko patient")
    what = "patient"

    def text(name: str) -> str:
        value = obj.get(name)
        return value if isinstance(value, str) else ""

    patient_id = _get(obj, "id", (str, int), what)
    return PatientRecord(
        id=str(patient_id),
        first_name=text("first_name"),
        last_name=text("last_name"),
        preferred_first_name=text("preferred_first_name"),
        title=text("title"),
        archived=obj.get("archived_at") is not None,
    )


# ---- folder names ----------------------------------------------------------------------------


def folder_name(patient: PatientRecord, fmt: str) -> str:
    """The patient's folder name; the default format when ``fmt`` cannot render this patient."""
    values: dict[str, Any] = {
        "id": int(patient.id) if patient.id.isdigit() else patient.id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "preferred_first_name": patient.preferred_first_name or patient.first_name,
        "title": patient.title,
    }
    try:
        name = fmt.format(**values)
    except (ValueError, KeyError, IndexError):
        name = DEFAULT_PATIENT_FOLDER.format(**values)
    return " ".join(name.split()) or f"({patient.id})"


def folder_pattern(fmt: str) -> re.Pattern[str] | None:
    """A regex that recovers ``id`` from a name rendered with ``fmt`` (other fields match anything)."""
    parts: list[str] = []
    has_id = False
    try:
        for literal, field, _spec, _conv in string.Formatter().parse(fmt):
            parts.append(re.escape(re.sub(r"\s+", " ", literal)))  # names are rendered with single spaces
            if field == "id" and not has_id:
                parts.append(r"(?P<id>\d+)")
                has_id = True
            elif field is not None:
                parts.append(".*?")
    except ValueError:
        return None
    return re.compile("".join(parts), re.DOTALL) if has_id else None


def patient_id_of_folder(name: str, pattern: re.Pattern[str] | None) -> str | None:
    """The patient id a local folder name stands for: by the format, else a trailing ``(ID)``."""
    if pattern is not None:
        match = pattern.fullmatch(" ".join(name.split()))
        if match:
            return match.group("id")
    match = _TRAILING_ID.search(name)
    return match.group(1) if match else None


# ---- pacing ----------------------------------------------------------------------------------


def bare_key(api_key: str) -> str:
    """The key without its ``-SHARD`` suffix: both spellings are the same account."""
    return _SHARD.sub("", api_key)


def pacing_limiter(api_key: str, limit: int, window: float) -> RateLimiter:
    """The request budget shared by every library using this API key.

    A token bucket of ``burst`` tokens refilled at ``(target - burst) / window`` per second lets at most
    ``target`` requests through in ANY window of ``window`` seconds (burst + refill over one window).
    ``target`` keeps 5 % head room under Cliniko's limit for requests that arrive closer together than
    they were sent.
    """
    target = max(1, math.floor(limit * 0.95))
    burst = max(1, target // 10)
    refill = target - burst
    if refill <= 0:
        return shared_rate_limiter(budget_key("cliniko", bare_key(api_key)), 1, window * 1.05)
    return shared_rate_limiter(budget_key("cliniko", bare_key(api_key)), burst, burst * window / refill)


def reset_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (UNIX seconds) on a 429; at least half a second."""
    raw = headers.get("X-RateLimit-Reset")
    if raw is None:
        return None
    try:
        reset = float(raw)
    except ValueError:
        return None
    if reset != reset or reset in (math.inf, -math.inf):
        return None
    return max(0.5, reset - now)
