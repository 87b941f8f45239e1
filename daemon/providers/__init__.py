"""Providers: one module per remote service, one protocol for all (``base.Provider``)."""

from __future__ import annotations

from daemon.config import ClinikoRemote, CoreDataRemote, CorePlusRemote, LibraryConfig, TimeTapRemote
from daemon.providers.base import Provider


def make_provider(library: LibraryConfig) -> Provider:
    """Build the provider client for ``library`` from its ``[library.remote]`` table."""
    remote = library.remote
    if isinstance(remote, CoreDataRemote):
        from daemon.providers.coredata import CoreDataProvider

        return CoreDataProvider(remote.base_url, remote.root, remote.api_user, remote.api_key.reveal())
    if isinstance(remote, CorePlusRemote):
        from daemon.providers.coreplus import CorePlusProvider

        return CorePlusProvider(
            remote.base_url,
            remote.consumer_id,
            remote.consumer_secret.reveal(),
            remote.access_token.reveal(),
            issuer=remote.issuer,
            audience=remote.audience,
            clock_skew=remote.clock_skew,
        )
    if isinstance(remote, TimeTapRemote):
        from daemon.providers.timetap import TimeTapProvider

        return TimeTapProvider(
            remote.base_url,
            remote.api_key.reveal(),
            remote.private_key.reveal(),
            business_id=remote.business_id,
            user_name=remote.user_name,
            root_folder=remote.root_folder,
        )
    if isinstance(remote, ClinikoRemote):
        from daemon.providers.cliniko import ClinikoProvider

        return ClinikoProvider(
            remote.base_url,
            remote.api_key.reveal(),
            remote.user_agent,
            patients=remote.patients,
            patient_folder=remote.patient_folder,
            rate_limit=remote.rate_limit,
            rate_window=remote.rate_limit_window,
        )
    raise ValueError(f"library {library.name!r}: provider {library.provider!r} is not available in this version")
