"""Signals and reload: TERM/INT stop (a second one forces), HUP reads the config again.

:func:`read_reloaded` and :func:`library_changes` are the two halves of a reload that do not touch the
runners: the new file read (a bad one rejected, loudly) and which libraries it removes, changes or adds.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import structlog

from daemon.bandwidth import Schedule
from daemon.config import Config, ConfigError, LibraryConfig

log = structlog.get_logger("daemon.service")


async def receive_signals(stop: anyio.Event, scope: anyio.CancelScope, reload: Callable[[], Awaitable[None]]) -> None:
    """SIGHUP reloads (not while stopping); the first TERM/INT sets ``stop``, a second cancels ``scope``."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                if not stop.is_set():
                    await reload()
            elif stop.is_set():
                log.warning("daemon_stop_forced", signal=signal.Signals(signum).name)
                scope.cancel()  # a second TERM/INT: do not wait for transfers
            else:
                log.info("signal_received", signal=signal.Signals(signum).name)
                stop.set()


def read_reloaded(loader: Callable[[Path], Config], current: Config) -> Config | None:
    """The config file read again, or None (logged) when it is invalid and ``current`` keeps running."""
    try:
        new = loader(current.path)
    except ConfigError as exc:
        log.error(
            "config_reload_rejected",
            problems=[str(i) for i in exc.issues],
            next_step="the previous configuration keeps running; fix the file and send SIGHUP again",
        )
        return None
    if new.state_dir != current.state_dir:
        log.warning(
            "config_state_dir_unchanged",
            configured=str(new.state_dir),
            in_use=str(current.state_dir),
            next_step="a new state_dir takes effect only after a restart",
        )
    return new


@dataclass(frozen=True)
class LibraryChanges:
    """Library names a reload stops (``removed``), restarts (``changed``) and starts (``added``)."""

    removed: list[str]
    changed: list[str]
    added: list[str]


def library_changes(old: Config, new: Config) -> LibraryChanges:
    """A library whose ``bwlimit`` alone changed is not restarted: its new limit applies in flight."""
    before = {lib.name: _without_bwlimit(lib) for lib in old.libraries}
    after = {lib.name: _without_bwlimit(lib) for lib in new.libraries}
    return LibraryChanges(
        removed=[n for n in before if n not in after],
        changed=[n for n in before if n in after and after[n] != before[n]],
        added=[n for n in after if n not in before],
    )


def _without_bwlimit(library: LibraryConfig) -> LibraryConfig:
    return replace(library, bwlimit=Schedule())
