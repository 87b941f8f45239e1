"""Cliniko's ``[library.remote]`` keys and its typed settings."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.providers.settings import Key, ProviderSettings, RemoteConfig
from daemon.providers.settings_reader import MISSING, TableReader
from daemon.secrets import Secret

CLINIKO_FOLDER_FIELDS = ("id", "first_name", "last_name", "preferred_first_name", "title")
_CLINIKO_USER_AGENT = re.compile(r"\S.*\([^()\s@]+@[^()\s@]+\.[^()\s@]+\)")
_CLINIKO_SHARD = re.compile(r"-([a-z]{2,3}[0-9]+)$")


@dataclass(frozen=True)
class ClinikoRemote(RemoteConfig):
    """Cliniko: API key, the User-Agent Cliniko requires, the API base (from the key's shard unless
    given), optionally the patients to mirror, the folder name format and the request budget."""

    api_key: Secret
    user_agent: str
    base_url: str
    patients: tuple[str, ...] = ()
    patient_folder: str = "{last_name}, {first_name} ({id})"
    rate_limit: int = 200
    rate_limit_window: float = 60.0


def cliniko_base_url(api_key: str) -> str:
    """``https://api.SHARD.cliniko.com/v1``; the shard is the key's ``-xx9`` suffix, au1 without one."""
    match = _CLINIKO_SHARD.search(api_key)
    return f"https://api.{match.group(1) if match else 'au1'}.cliniko.com/v1"


def _user_agent(p: TableReader, value: str, values: Mapping[str, Any]) -> str:
    if value and not _CLINIKO_USER_AGENT.fullmatch(value.strip()):
        p.error(
            "user_agent",
            f'{value!r} is not "NAME (EMAIL)"; Cliniko requires a name and a contact email, '
            'e.g. user_agent = "Practice Mirror (it@practice.example)"',
        )
    return value.strip()


def _base_url(p: TableReader, key: Key, values: Mapping[str, Any]) -> str:
    if p.has("base_url"):
        return p.url("base_url", hint=key.hint)
    p.raw("base_url")
    api_key: Secret = values["api_key"]
    return cliniko_base_url(api_key.reveal())


def _patients(p: TableReader, key: Key, values: Mapping[str, Any]) -> tuple[str, ...]:
    raw = p.raw("patients")
    if raw is MISSING:
        return ()
    patients: list[str] = []
    items = raw if isinstance(raw, list) else None
    for item in items or []:
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            patients.append(str(item))
        elif isinstance(item, str) and item.strip().isdigit():
            patients.append(item.strip())
        else:
            items = None
            break
    if items is None:
        p.error("patients", f"expected an array of patient ids, got {raw!r}; e.g. patients = [1234, 5678]")
        return ()
    return tuple(dict.fromkeys(patients))


def _folder_format(p: TableReader, fmt: str, values: Mapping[str, Any]) -> str:
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(fmt) if field is not None]
    except ValueError as exc:
        p.error("patient_folder", f'is not a valid format ({exc}); e.g. patient_folder = "{{last_name}} ({{id}})"')
        return ClinikoRemote.patient_folder
    unknown = [n for n in names if n not in CLINIKO_FOLDER_FIELDS]
    if unknown:
        known = ", ".join("{" + f + "}" for f in CLINIKO_FOLDER_FIELDS)
        p.error("patient_folder", f"unknown field {{{unknown[0]}}}; use {known}")
    elif "id" not in names:
        p.error("patient_folder", "must contain {id}: local folders are matched to patients by their id")
    return fmt


KEYS: tuple[Key, ...] = (
    Key("api_key", "secret", "The API key; its shard suffix (-au2) picks the API base"),
    Key(
        "user_agent",
        "string",
        'Required by Cliniko: "NAME (EMAIL)", sent with every request',
        hint='user_agent = "Practice Mirror (it@practice.example)"',
        check=_user_agent,
    ),
    Key(
        "base_url",
        "url",
        "Optional: the API base (default: derived from the key's shard suffix)",
        "",
        hint='base_url = "https://api.au1.cliniko.com/v1"',
        read=_base_url,
    ),
    Key(
        "patients",
        "patient ids",
        "Optional: only these patients (default: every patient with attachments)",
        (),
        read=_patients,
    ),
    Key(
        "patient_folder",
        "string",
        "Optional: the patient folder name format; fields: " + " ".join(CLINIKO_FOLDER_FIELDS) + "; must contain {id}",
        ClinikoRemote.patient_folder,
        check=_folder_format,
    ),
    Key("rate_limit", "integer", "Requests per window per API key (shared by every library using it)", 200, minimum=1),
    Key("rate_limit_window", "number", "Seconds of the rate limit's window", 60.0, minimum=0.1),
)

SETTINGS = ProviderSettings("cliniko", ClinikoRemote, KEYS)
