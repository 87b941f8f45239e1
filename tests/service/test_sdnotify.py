"""sd_notify over a real AF_UNIX datagram socket (path and abstract names)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from daemon.sdnotify import Notifier, watchdog_interval


def _bound(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    sock = _bound(str(path))
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(path)})
    assert notifier.enabled
    assert notifier.ready("2 libraries")
    assert sock.recv(4096) == b"READY=1"  # a message of its own
    assert sock.recv(4096) == b"STATUS=2 libraries"
    assert notifier.status("a: idle")
    assert sock.recv(4096) == b"STATUS=a: idle"
    assert not notifier.status("a: idle")  # unchanged status is not resent
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.reloading()
    reloading = sock.recv(4096).decode().split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1].split("=")[1]) > 0
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()
    sock.close()


def test_abstract_socket_name() -> None:
    name = f"libmirror-test-{uuid.uuid4().hex}"
    sock = _bound(b"\0" + name.encode())
    notifier = Notifier(f"@{name}")
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.close()
    sock.close()


def test_unset_socket_is_a_no_op_and_a_dead_socket_does_not_raise(tmp_path: Path) -> None:
    assert not Notifier(environ={}).ready()
    dead = Notifier(str(tmp_path / "nobody-listens"))
    assert not dead.ready()
    assert not dead.stopping()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
