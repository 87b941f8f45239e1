"""``libmirror release-gate LIBRARY``: let the changes a safety gate holds through, beside the service.

It never writes the state store (the running daemon is its one writer): it reads the held gate from
the store read-only and leaves a request in ``state_dir/control/`` (``daemon.control``). The daemon's
next poll takes it, if the held changes are still exactly those released.
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import DBAPIError

from daemon.config import Config, LibraryConfig
from daemon.control import ControlDir
from daemon.state.lock import StateLock, StateLocked
from daemon.state.migrations import SchemaMismatch
from daemon.state.store import StateStore, StoreUnreadable

EXIT_OK = 0
EXIT_FAILED = 1


async def held_gate(config: Config, library: LibraryConfig) -> str | None:
    """The reasons of the gate holding ``library`` back, as its last pass recorded them; None if none."""
    store = await StateStore.open_readonly(config.state_dir)
    if store is None:
        return None
    try:
        lib_id = await store.find_library(library.name)
        if lib_id is None:
            return None
        return (await store.get_status(lib_id)).get("gate") or None
    finally:
        await store.close()


def _holder(config: Config) -> int | None:
    """The pid of the process writing the store (the service), or None when nobody holds it."""
    try:
        probe = StateLock.acquire(config.state_dir, "release-gate (probe)")
    except StateLocked as exc:
        return exc.holder.pid or -1
    probe.release()
    return None


async def release_gate(config: Config, library: LibraryConfig) -> int:
    try:
        gate = await held_gate(config, library)
    except (SchemaMismatch, StoreUnreadable, DBAPIError, OSError) as exc:
        reason = getattr(exc, "orig", None) or exc
        return fail(f"{config.path}: cannot read the state store in {config.state_dir}: {reason}")
    if gate is None:
        print(f"{library.name}: no safety gate holds anything back; nothing to release (see `libmirror status`)")
        return EXIT_OK
    path = ControlDir(config.state_dir).request_release(library.name, gate)
    print(f"{library.name}: release requested for what this gate holds back:\n  {gate}")
    pid = _holder(config)
    if pid is None:
        print(
            "No libmirror process runs on this state store: the next `libmirror sync --once` or start of the "
            f"service applies it (request: {path})."
        )
    else:
        who = f"pid {pid}" if pid > 0 else "the running service"
        print(
            f"The running service ({who}) applies it at its next poll of {library.name} "
            f"(within poll_interval = {library.poll_interval:g} s), if the held changes are still the same; "
            "its log says `gate_released` (or `gate_release_not_applied` if they changed: check and release again)."
        )
    return EXIT_OK


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAILED
