"""CoreData's ``[library.remote]`` keys and its typed settings."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.providers.settings import Key, ProviderSettings, RemoteConfig
from daemon.secrets import Secret


@dataclass(frozen=True)
class CoreDataRemote(RemoteConfig):
    """CoreData: tenant URL (no trailing slash), root container id, API user and key."""

    base_url: str
    root: str
    api_user: str
    api_key: Secret


KEYS: tuple[Key, ...] = (
    Key(
        "base_url",
        "url",
        "Tenant URL; https:// is required, http:// only for 127.0.0.1, localhost or ::1 (test servers)",
        hint='base_url = "https://tenant.coredata.is"',
    ),
    Key(
        "root",
        "string",
        "Id of the space, project or folder that is mirrored",
        hint='root = "<id of a space, project or folder>"',
    ),
    Key("api_user", "string", "API user name", hint='api_user = "<API user name>"'),
    Key("api_key", "secret", "The API key (api_key_env, api_key_file or inline api_key)"),
)

SETTINGS = ProviderSettings("coredata", CoreDataRemote, KEYS)
