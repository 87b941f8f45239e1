"""``metrics_listen``: the address the daemon serves ``/metrics`` on, written ``HOST:PORT``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """``127.0.0.1:9464``, ``[::1]:9464``, ``0.0.0.0:9464`` or ``localhost:9464``; ValueError says what
    is wrong. The host is required: listening on every interface must be asked for (``0.0.0.0``)."""
    if "://" in text:
        raise ValueError(f'"{text}": write HOST:PORT without a scheme or path, like "127.0.0.1:9464"')
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f'"{text}" is not HOST:PORT (for example "127.0.0.1:9464")')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'"{host}" in "{text}" is not an IPv6 address') from None
    elif ":" in host:
        raise ValueError(f'"{text}": write an IPv6 address in brackets, like "[::1]:9464"')
    elif not all(c.isalnum() or c in ".-" for c in host):
        raise ValueError(f'"{host}" in "{text}" is not a host name or address')
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f'the port in "{text}" must be a number from 1 to 65535')
    return ListenAddress(host, int(port_text))
