"""systemd's notify protocol without a C dependency: one datagram per message to ``$NOTIFY_SOCKET``.

The protocol is newline-separated ``KEY=VALUE`` assignments sent as a single datagram on an AF_UNIX
socket. ``$NOTIFY_SOCKET`` is a filesystem path, or an abstract socket name written with a leading
``@`` (the kernel spells it with a NUL byte). Outside systemd the variable is unset and every call is
a cheap no-op, so the daemon never has to ask "am I under systemd?".

Sending never raises: a lost status line must not take the daemon down. A failure is logged once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


class Notifier:
    """Sends sd_notify messages; a no-op when ``address`` (default ``$NOTIFY_SOCKET``) is unset."""

    def __init__(self, address: str | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = address if address is not None else env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = _address(raw) if raw else None
        self._sock: socket.socket | None = None
        self._warned = False
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; returns whether it was sent."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "sd_notify_failed",
                    error=str(exc),
                    next_step="systemd status and watchdog messages are not delivered; check NOTIFY_SOCKET",
                )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` as a datagram of its own (a listener matching whole messages sees it), then STATUS."""
        sent = self.send("READY=1")
        if status:
            self._last_status = None
            self.status(status)
        return sent

    def status(self, text: str) -> bool:
        """Send ``STATUS=`` only when it changed since the last one (systemd keeps the last value)."""
        line = " ".join(text.splitlines())
        if line == self._last_status:
            return False
        self._last_status = line
        return self.send(f"STATUS={line}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (required by ``Type=notify-reload``, harmless otherwise)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or None when not asked for.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; another process (a child
    that inherited the environment) must not ping.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
