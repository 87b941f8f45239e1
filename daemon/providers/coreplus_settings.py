"""coreplus' ``[library.remote]`` keys and its typed settings (a push-only provider)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.providers.settings import Key, ProviderSettings, RemoteConfig
from daemon.providers.settings_reader import MISSING, TableReader, type_name
from daemon.secrets import Secret


@dataclass(frozen=True)
class CorePlusRemote(RemoteConfig):
    """coreplus: server URL (no trailing slash), app credentials and JWT claims (push-only provider)."""

    base_url: str
    consumer_id: str
    consumer_secret: Secret
    access_token: Secret
    issuer: str = ""
    audience: str = ""
    clock_skew: float = 0.0  # seconds subtracted from the JWT's nbf when our clock runs ahead


def _claim(p: TableReader, key: Key, values: Mapping[str, Any]) -> str:
    """An optional JWT claim value; unlike ``p.string`` an empty string is allowed (the vendor's
    sample code sends empty ``iss``/``aud``)."""
    name = key.name
    value = p.raw(name)
    if value is MISSING:
        return ""
    if not isinstance(value, str):
        p.error(name, f'expected a string, got {type_name(value)}, e.g. {name} = "..."')
        return ""
    return value


KEYS: tuple[Key, ...] = (
    Key(
        "base_url",
        "url",
        "The coreplus server, without /API/...; https:// required",
        hint='base_url = "https://<your server>" (without /API/...)',
    ),
    Key("consumer_id", "string", "consumerId of the app", hint='consumer_id = "<consumerId of the app>"'),
    Key("consumer_secret", "secret", "The app's consumer secret"),
    Key("access_token", "secret", "The app's access token"),
    Key("issuer", "claim", 'JWT "iss" claim, as given with the app\'s credentials (may be empty)', "", read=_claim),
    Key("audience", "claim", 'JWT "aud" claim (may be empty)', "", read=_claim),
    Key(
        "clock_skew",
        "number",
        "Seconds subtracted from the token's nbf if our clock runs ahead, 0..3600",
        0.0,
        minimum=0,
        maximum=3600,
    ),
)

SETTINGS = ProviderSettings(
    "coreplus",
    CorePlusRemote,
    KEYS,
    directions=("push",),
    directions_why="the coreplus API documents only uploads (no listing, download, update or delete)",
)
