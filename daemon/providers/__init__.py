"""Providers: one module per remote service, one protocol for all (``base.Provider``)."""

from __future__ import annotations

from daemon.providers.base import Provider
from daemon.providers.cliniko_settings import ClinikoRemote
from daemon.providers.coredata_settings import CoreDataRemote
from daemon.providers.coreplus_settings import CorePlusRemote
from daemon.providers.settings import RemoteConfig
from daemon.providers.timetap_settings import TimeTapRemote


def make_provider(remote: RemoteConfig) -> Provider:
    """Build the provider client from a library's ``[library.remote]`` settings."""
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
    raise ValueError(f"settings {type(remote).__name__} name no provider available in this version")
