"""TimeTap's ``[library.remote]`` keys and its typed settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.providers.settings import Key, ProviderSettings, RemoteConfig
from daemon.providers.settings_reader import MISSING, TableReader
from daemon.secrets import Secret


@dataclass(frozen=True)
class TimeTapRemote(RemoteConfig):
    """TimeTap: API base (no trailing slash), API key + private key, the business, the uploading user,
    and optionally one folder (``fileLibraryUUID``) as the library root instead of the whole library."""

    api_key: Secret
    private_key: Secret
    business_id: int
    user_name: str
    base_url: str = "https://api.timetap.com/live"
    root_folder: str | None = None


def _business_id(p: TableReader, key: Key, values: Mapping[str, Any]) -> int:
    """A positive whole number, written as a number or a digit string."""
    raw_id = p.raw("business_id")
    if raw_id is MISSING:
        p.error("business_id", "required key is missing; add business_id = <your TimeTap business id>")
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool) and raw_id > 0:
        return raw_id
    elif isinstance(raw_id, str) and raw_id.strip().isdigit() and int(raw_id) > 0:
        return int(raw_id)
    else:
        p.error("business_id", f"expected a positive whole number, got {raw_id!r}; e.g. business_id = 12345")
    return 0


def _business_id_first(p: TableReader, key: Key, values: Mapping[str, Any]) -> int:
    business_id = _business_id(p, key, values)
    for optional in ("base_url", "root_folder"):
        p.raw(optional)  # listed among the known keys in this order, as they always were
    return business_id


def _none_when_empty(p: TableReader, value: str | None, values: Mapping[str, Any]) -> str | None:
    return value or None


# declared in the order they are read: the issues are listed in that order
KEYS: tuple[Key, ...] = (
    Key("business_id", "integer", "Your TimeTap business id", read=_business_id_first),
    Key(
        "root_folder",
        "string",
        "Optional: the fileLibraryUUID of the one folder mirrored (default: the whole file library)",
        None,
        hint='root_folder = "<fileLibraryUUID of a folder>"',
        check=_none_when_empty,
    ),
    Key("api_key", "secret", "The API key"),
    Key("private_key", "secret", "The private key"),
    Key(
        "user_name",
        "string",
        "The TimeTap user uploads are made as",
        hint='user_name = "<TimeTap user the uploads are made as>"',
    ),
    Key(
        "base_url",
        "url",
        'The API base; "https://api.timetap.com/test" for the test API',
        TimeTapRemote.base_url,
        hint='base_url = "https://api.timetap.com/live"',
    ),
)

SETTINGS = ProviderSettings("timetap", TimeTapRemote, KEYS)
