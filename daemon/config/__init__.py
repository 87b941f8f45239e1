"""The TOML configuration, read into frozen typed dataclasses.

The daemon runs unattended for months, so a bad config must fail at start with every problem listed
at once, each naming the file, the key and the fix (``ConfigError.issues``). Every key is declared
once: the general and library keys in ``keys.py``, each provider's ``[library.remote]`` keys beside
the provider (``daemon/providers/<provider>_settings.py``, collected in ``daemon.providers.catalog``),
so adding a provider never touches the loader. Reading goes through one ``TableReader``
(``daemon.providers.settings_reader``); secrets are wrapped in :class:`Secret` and registered for
log redaction.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.config.keys import ALLOWED_DIRECTIONS, GENERAL_KEYS, LIBRARY_KEYS, LOG_LEVELS
from daemon.config.load import load_config
from daemon.config.model import Config, ConfigError, LibraryConfig
from daemon.providers.catalog import PROVIDER_SETTINGS
from daemon.providers.cliniko_settings import ClinikoRemote
from daemon.providers.coredata_settings import CoreDataRemote
from daemon.providers.coreplus_settings import CorePlusRemote
from daemon.providers.settings import RemoteConfig
from daemon.providers.settings_reader import ConfigIssue, TableReader
from daemon.providers.timetap_settings import TimeTapRemote
from daemon.secrets import Secret

RemoteParser = TableReader  # the reader's former name
RemoteSchema = Callable[[TableReader], RemoteConfig]

# provider name → reader of its [library.remote] table (from each provider's declaration)
REMOTE_SCHEMAS: dict[str, RemoteSchema] = {name: spec.read for name, spec in PROVIDER_SETTINGS.items()}

__all__ = [
    "ALLOWED_DIRECTIONS",
    "GENERAL_KEYS",
    "LIBRARY_KEYS",
    "LOG_LEVELS",
    "PROVIDER_SETTINGS",
    "REMOTE_SCHEMAS",
    "ClinikoRemote",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "CoreDataRemote",
    "CorePlusRemote",
    "LibraryConfig",
    "RemoteConfig",
    "RemoteParser",
    "RemoteSchema",
    "Secret",
    "TimeTapRemote",
    "load_config",
]
