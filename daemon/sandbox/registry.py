"""Which sandboxes exist and how each is built: one ``SandboxKind`` per provider.

Adding a provider (cliniko, timetap, coreplus) means writing its backend and app modules and adding
one entry to ``_KINDS``; the runner and the CLI need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from daemon.sandbox.access_log import RequestLog


class SandboxBackend(Protocol):
    """What the runner needs from any provider's backend."""

    @property
    def is_new(self) -> bool: ...  # DIR held no state before this start

    @property
    def requests(self) -> RequestLog: ...

    def remote_table(self, base_url: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SandboxKind:
    name: str
    create_backend: Callable[..., SandboxBackend]  # (data_dir, **options)
    build_app: Callable[[Any], web.Application]
    seed: Callable[[Any, int, int], None]  # (backend, file count, seed)


def _coredata() -> SandboxKind:
    from daemon.sandbox.coredata_app import build_app
    from daemon.sandbox.coredata_backend import CoreDataBackend
    from daemon.sandbox.seed import seed_files

    def seed(backend: CoreDataBackend, count: int, seed: int) -> None:
        with backend.db.batch():
            seed_files(backend, count, seed)

    return SandboxKind("coredata", CoreDataBackend, build_app, seed)


def _coreplus() -> SandboxKind:
    from daemon.sandbox.coreplus_app import build_app
    from daemon.sandbox.coreplus_backend import CorePlusBackend

    def seed(backend: CorePlusBackend, count: int, seed: int) -> None:
        backend.seed(count, seed)  # N clients

    return SandboxKind("coreplus", CorePlusBackend, build_app, seed)


def _timetap() -> SandboxKind:
    from daemon.sandbox.seed import seed_files
    from daemon.sandbox.timetap_app import build_app
    from daemon.sandbox.timetap_backend import TimeTapBackend

    def seed(backend: TimeTapBackend, count: int, seed: int) -> None:
        with backend.db.batch():
            seed_files(backend, count, seed)  # files in nested folders, pictures public

    return SandboxKind("timetap", TimeTapBackend, build_app, seed)


def _cliniko() -> SandboxKind:
    from daemon.sandbox.cliniko_app import build_app
    from daemon.sandbox.cliniko_backend import ClinikoBackend
    from daemon.sandbox.cliniko_seed import seed_account

    return SandboxKind("cliniko", ClinikoBackend, build_app, seed_account)  # N attachments, a few patients


_KINDS: dict[str, Callable[[], SandboxKind]] = {
    "coredata": _coredata,
    "coreplus": _coreplus,
    "timetap": _timetap,
    "cliniko": _cliniko,
}


def names() -> list[str]:
    return sorted(_KINDS)


def get(name: str) -> SandboxKind:
    try:
        return _KINDS[name]()
    except KeyError:
        raise ValueError(f"unknown sandbox provider {name!r}; known: {', '.join(names())}") from None
