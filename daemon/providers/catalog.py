"""Every provider's settings declaration, by provider name (the order ``provider = ...`` lists them)."""

from __future__ import annotations

from daemon.providers import cliniko_settings, coredata_settings, coreplus_settings, timetap_settings
from daemon.providers.settings import ProviderSettings

PROVIDER_SETTINGS: dict[str, ProviderSettings] = {
    spec.provider: spec
    for spec in (
        coredata_settings.SETTINGS,
        timetap_settings.SETTINGS,
        coreplus_settings.SETTINGS,
        cliniko_settings.SETTINGS,
    )
}
