"""Providers: one module per remote service, one protocol for all (``base.Provider``)."""

from __future__ import annotations

from daemon.config import CoreDataRemote, LibraryConfig
from daemon.providers.base import Provider


def make_provider(library: LibraryConfig) -> Provider:
    """Build the provider client for ``library`` from its ``[library.remote]`` table."""
    remote = library.remote
    if isinstance(remote, CoreDataRemote):
        from daemon.providers.coredata import CoreDataProvider

        return CoreDataProvider(remote.base_url, remote.root, remote.api_user, remote.api_key.reveal())
    raise ValueError(f"library {library.name!r}: provider {library.provider!r} is not available in this version")
