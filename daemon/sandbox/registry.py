"""Which sandboxes exist and how each is built: one ``SandboxKind`` per provider.

Adding a provider (cliniko, timetap, coreplus) means writing its backend and app modules and adding
one entry to ``_KINDS``; the runner and the CLI need no change.

A service whose real counterpart answers on more than one origin (Cliniko's presigned S3 bucket is
not on the API host) names its other apps in ``side_apps``: the runner serves each on a port of its
own, so clients see a different origin there, as against the real service (a generic HTTP client
drops ``Authorization`` only on a redirect to another origin).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    build_app: Callable[..., web.Application]  # (backend, **{side name: its origin}): the app at base_url
    seed: Callable[[Any, int, int], None]  # (backend, file count, seed)
    side_apps: Mapping[str, Callable[[Any], web.Application]] = field(default_factory=dict)
    """Name → builder (backend) of an app served on its own 127.0.0.1 port in the same process; its
    origin (``http://127.0.0.1:PORT``) reaches ``build_app`` as the keyword argument of that name.
    The runner gives every side app the main app's fault injector and fault hooks."""


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
    from daemon.sandbox.cliniko_app import build_app, build_s3_app
    from daemon.sandbox.cliniko_backend import ClinikoBackend
    from daemon.sandbox.cliniko_seed import seed_account

    # N attachments, a few patients; the presigned S3 side on an origin of its own, as in production
    return SandboxKind("cliniko", ClinikoBackend, build_app, seed_account, side_apps={"s3": build_s3_app})


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
