"""The general and ``[[library]]`` keys, each declared once: type, default, check and help text.

A library's ``[library.remote]`` keys are declared by its provider (``daemon/providers/*_settings.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pathspec

from daemon.bandwidth import Schedule
from daemon.config.bwlimit_key import read_bwlimit
from daemon.config.model import Direction
from daemon.metrics.listen import parse_listen
from daemon.providers.catalog import PROVIDER_SETTINGS
from daemon.providers.settings import Key
from daemon.providers.settings_reader import MISSING, TableReader

LOG_LEVELS = ("debug", "info", "warning", "error")
LIBRARY_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")

# provider → (the directions its API allows, why). Providers not listed allow every direction; for a
# listed one, an omitted ``direction`` means the first allowed one (coreplus: push).
ALLOWED_DIRECTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    name: (spec.directions, spec.directions_why) for name, spec in PROVIDER_SETTINGS.items() if spec.directions
}


def _metrics_listen(p: TableReader, key: Key, values: Mapping[str, Any]) -> str:
    """``HOST:PORT``; absent or ``""``: no endpoint."""
    if p.raw(key.name) in (MISSING, ""):
        return ""
    text = p.string(key.name, "", hint=key.hint)
    if text:
        try:
            parse_listen(text)
        except ValueError as exc:
            p.error(key.name, f'{exc}; or set metrics_listen = "" for no metrics endpoint')
    return text


GENERAL_KEYS: tuple[Key, ...] = (
    Key(
        "state_dir",
        "path",
        "Where the SQLite state file and runtime data live; not inside a library's local_path",
        hint='state_dir = "/var/lib/libmirror"',
    ),
    Key("log_level", "choice", "debug | info | warning | error", "info", choices=LOG_LEVELS),
    Key("allow_root", "boolean", "`run` and `sync` refuse to run as root unless this is true", False),
    Key("stop_timeout", "number", "Seconds `run` waits on SIGTERM for in-flight transfers", 30.0, minimum=0),
    Key(
        "metrics_listen",
        "string",
        'HOST:PORT where `run` serves Prometheus metrics on /metrics, e.g. "127.0.0.1:9464"; "" (default): off',
        "",
        hint='metrics_listen = "127.0.0.1:9464"',
        read=_metrics_listen,
    ),
    Key(
        "bwlimit",
        "bwlimit",
        'Bandwidth of all libraries together: "1M", "UP:DOWN" like "1M:10M", "off", or a day-time schedule',
        Schedule(),
        read=read_bwlimit,
    ),
)


def _library_name(p: TableReader, name: str, values: Mapping[str, Any]) -> str:
    if name and not LIBRARY_NAME_RE.fullmatch(name):
        p.error("name", f'"{name}" may only contain letters, digits, "_", "." and "-"')
    return name


def _direction(p: TableReader, key: Key, values: Mapping[str, Any]) -> str:
    """``two-way`` unless the provider allows fewer directions: then its first, and only those."""
    provider = values["provider"]
    allowed, why = ALLOWED_DIRECTIONS.get(provider, ((), ""))
    default_direction = allowed[0] if allowed else Direction.TWO_WAY.value  # coreplus: push
    direction = p.choice("direction", key.choices, default_direction)
    if direction and allowed and direction not in allowed:
        p.error(
            "direction",
            f'is "{direction}", but a {provider} library must be direction = "{allowed[0]}" '
            f"(or leave direction out): {why}",
        )
    return direction


def _ignore_patterns(p: TableReader, patterns: tuple[str, ...], values: Mapping[str, Any]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except Exception as exc:  # pathspec's error classes moved between versions
            p.error("ignore", f"pattern {pattern!r} is not a valid gitignore pattern ({exc})")
    return patterns


# in the order they are read; ``remote`` (the provider's table) is read after them
LIBRARY_KEYS: tuple[Key, ...] = (
    Key(
        "name",
        "string",
        'Unique name: letters, digits, "_", "." and "-"; shown in logs as `library`',
        hint='name = "board" (letters, digits, "_", "." and "-")',
        check=_library_name,
    ),
    Key("provider", "choice", "Which SaaS the remote side lives on", choices=tuple(PROVIDER_SETTINGS)),
    Key(
        "local_path",
        "path",
        "The local folder; two libraries may not share or nest folders",
        hint='local_path = "/srv/mirror/board"',
    ),
    Key(
        "direction",
        "choice",
        "two-way | pull | push (a provider may allow fewer)",
        choices=tuple(d.value for d in Direction),
        read=_direction,
    ),
    Key(
        "max_delete_percent",
        "number",
        "Safety gate: share of synced files a pass may delete",
        50.0,
        minimum=0,
        maximum=100,
    ),
    Key("max_delete_count", "integer", "Safety gate: files a pass may delete", 500, minimum=0),
    Key(
        "max_overwrite_percent",
        "number",
        "Safety gate: share of synced files a pass may replace",
        50.0,
        minimum=0,
        maximum=100,
    ),
    Key("max_overwrite_count", "integer", "Safety gate: synced files a pass may replace", 500, minimum=0),
    Key("ignore", "strings", "gitignore-style patterns never synced", (), check=_ignore_patterns),
    Key("trash_days", "integer", "Days replaced or remotely deleted files stay in the trash", 30, minimum=0),
    Key("concurrency", "integer", "Parallel transfers for this library", 16, minimum=1, maximum=32),
    Key("poll_interval", "number", "Seconds between remote changed-since polls", 30.0, minimum=1),
    Key("full_scan_interval", "number", "Seconds between full remote listings", 3600.0, minimum=1),
    Key("settle", "number", "Seconds a local file must stay unchanged before upload", 1.0, minimum=0),
    Key("local_rescan_interval", "number", "Seconds between full local rescans", 3600.0, minimum=1),
    Key("propagate_deletes", "boolean", "false: a local delete is not sent to the server", True),
    Key(
        "filesystem",
        "choice",
        'auto: detect a network filesystem (NFS, SMB/CIFS, FUSE...) and rescan it; "network": always rescan '
        'beside the watcher; "local": trust the watcher alone',
        "auto",
        choices=("auto", "network", "local"),
    ),
    Key(
        "network_rescan_interval",
        "number",
        "Seconds between local rescans of a folder on a network filesystem (changes other machines make there "
        "reach no watcher)",
        120.0,
        minimum=5,
    ),
    Key(
        "bwlimit",
        "bwlimit",
        "This library's bandwidth (as the general bwlimit; a transfer keeps under both)",
        Schedule(),
        read=read_bwlimit,
    ),
)
