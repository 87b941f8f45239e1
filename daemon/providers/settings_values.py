"""Small pure helpers of the settings reader: the missing marker, type names, URL and path checks."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})

MISSING: Any = object()


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"{value!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not host:
        return f'{value!r} is not an http(s) URL; write it like "https://tenant.example.com"'
    if parts.username is not None or parts.password is not None:
        return "must not contain user or password; put credentials in the api_* keys"
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query string or fragment"
    if parts.scheme == "http" and not is_loopback(host):
        return f"plain http is only allowed for 127.0.0.1, localhost or ::1 (got {host}); use https:// for real servers"
    return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_vars(text: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``$VAR`` / ``${VAR}`` replaced from ``environ``; returns the first unset name, if any."""
    unset: list[str] = []

    def repl(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(2)
        if var not in environ:
            unset.append(var)
            return match.group(0)
        return environ[var]

    expanded = _VAR_RE.sub(repl, text)
    return expanded, (unset[0] if unset else None)
