"""``libmirror status [--json] [--check]``: each library's state, read from the state store.

Read-only: never creates, migrates or locks the store (it works beside a running daemon and says "no
state yet" before the first pass), never builds a provider (no network). Stored server errors are
redacted like the logs and cut to ``ERROR_CHARS``. The ``--json`` shape is documented in the README
("status --json"); keys are only ever added to it.
"""

from __future__ import annotations

import html
import json
import re
import sys
from datetime import datetime
from typing import Any

from daemon.config import Config, LibraryConfig
from daemon.control import ControlDir
from daemon.exit_codes import CHECK_CRITICAL, CHECK_UNKNOWN, EXIT_FAILED, EXIT_OK
from daemon.health import LAST_FAILURE, Health, assess, check_line, rank, read_failure, worst
from daemon.logs import redact_text
from daemon.state.lock import current_holder
from daemon.state.store import StateStore
from daemon.sync.progress import format_bytes, format_duration

# an HTML document quoted in an error (a proxy's 502 page), up to its end or the end of the text (cut)
_HTML_DOCUMENT = re.compile(r"<(?:!doctype\s+html|html)\b.*?(?:</html\s*>|\Z)", re.I | re.S)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.I | re.S)
NO_STATE = "no state yet: run `libmirror sync --once` or start the service"
ERROR_CHARS = 300  # a stored error may quote a whole server answer (an HTML page)


def _age(stamp: str | None, now: datetime) -> str | None:
    """``"3m ago"`` for an ISO timestamp written by this host (never compared with server clocks)."""
    if not stamp:
        return None
    try:
        seconds = max(0, int((now - datetime.fromisoformat(stamp)).total_seconds()))
    except (ValueError, TypeError):
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _library_state(status: dict[str, str], pending: int, paused: bool) -> str:
    if status.get("gate"):
        return "halted"
    if paused:
        return "paused"
    daemon_state = status.get("daemon_state")
    if daemon_state in ("syncing", "retrying", "starting"):
        return daemon_state
    return "pending" if pending else "idle"


def _json_status(status: dict[str, str], key: str) -> Any:
    """A JSON value the last pass stored under ``key`` (None when absent or unreadable)."""
    try:
        return json.loads(status.get(key) or "null")
    except ValueError:
        return None


def _held_counts(status: dict[str, str]) -> dict[str, int] | None:
    """What the held gate keeps back: ``{"local_deletes": .., "remote_deletes": .., "local_overwrites":
    .., "remote_overwrites": ..}`` as the last pass counted it."""
    try:
        counts = json.loads(status.get("gate_counts") or "null")
    except ValueError:
        return None
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None


def _html_page(match: re.Match[str]) -> str:
    title = _HTML_TITLE.search(match.group(0))
    name = " ".join(html.unescape(title.group(1)).split())[:80] if title else ""
    return f"[HTML page: {name}]" if name else "[HTML page]"


def clean_error(text: str | None) -> str | None:
    """A stored error text fit to print: credentials redacted as in the logs, an HTML page a server or
    proxy answered with reduced to its title (no raw server body), on one line, at most ``ERROR_CHARS``
    characters. Redacted first: the header patterns end at a line break, and a cut secret is no longer
    recognisable."""
    if not text:
        return None
    cleaned = " ".join(_HTML_DOCUMENT.sub(_html_page, redact_text(text)).split())
    return cleaned if len(cleaned) <= ERROR_CHARS else cleaned[: ERROR_CHARS - 1] + "…"


async def show_status(config: Config, as_json: bool, check: bool) -> int:
    from sqlalchemy.exc import DBAPIError

    from daemon.state.migrations import SchemaMismatch
    from daemon.state.store import StoreUnreadable

    try:
        store = await StateStore.open_readonly(config.state_dir)
        if store is None:
            rows = None
        else:
            try:
                rows = [await _status_row(store, config, library) for library in config.libraries]
            finally:
                await store.close()
    except (SchemaMismatch, StoreUnreadable, DBAPIError, OSError) as exc:
        reason = clean_error(str(getattr(exc, "orig", None) or exc))
        message = f"{config.path}: cannot read the state store in {config.state_dir}: {reason}"
        if check:
            print(f"CRITICAL: {message}")
            return CHECK_CRITICAL
        print(f"error: {message}", file=sys.stderr)
        return EXIT_FAILED
    holder = current_holder(config.state_dir)
    head: dict[str, Any] = {
        "state_store": str(config.state_dir),
        "exists": rows is not None,
        "daemon": {"pid": holder.pid, "command": holder.command} if holder is not None else None,
    }
    if rows is None:
        head["health"] = Health(CHECK_UNKNOWN, [NO_STATE]).as_json()
        if as_json:
            print(json.dumps({**head, "message": NO_STATE, "libraries": []}, indent=2))
        elif check:
            print(f"UNKNOWN: {NO_STATE} (state store: {config.state_dir})")
        else:
            print(f"{NO_STATE} (state store: {config.state_dir})")
        return CHECK_UNKNOWN if check else EXIT_OK
    now = datetime.now().astimezone()
    healths = []
    for library, row in zip(config.libraries, rows, strict=True):
        health = assess(row, poll_interval=library.poll_interval, now=now, daemon_running=holder is not None)
        row["health"] = health.as_json()
        healths.append(health)
    overall = worst(*(h.code for h in healths))
    head["health"] = {"status": Health(overall).status, "code": overall}
    if as_json:
        print(json.dumps({**head, "libraries": rows}, indent=2))
    elif check:
        order = sorted(range(len(rows)), key=lambda i: -rank(healths[i].code))  # the worst first
        for i in order:
            print(check_line(rows[i], healths[i]))
        if not rows:
            print("OK: no libraries configured")
    else:
        _print_status_table(rows)
    return overall if check else EXIT_OK


async def show_metrics(config: Config) -> int:
    """``status --metrics``: what the state store knows, in Prometheus' text format on stdout (for
    node_exporter's textfile collector; see ``daemon.metrics.textfile`` for the families)."""
    from sqlalchemy.exc import DBAPIError

    from daemon.metrics.textfile import textfile_metrics
    from daemon.state.migrations import SchemaMismatch
    from daemon.state.store import StoreUnreadable

    try:
        text = await textfile_metrics(config.state_dir, [library.name for library in config.libraries])
    except (SchemaMismatch, StoreUnreadable, DBAPIError, OSError) as exc:
        reason = clean_error(str(getattr(exc, "orig", None) or exc))
        print(f"error: {config.path}: cannot read the state store in {config.state_dir}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.buffer.write(text)
    sys.stdout.flush()
    return EXIT_OK


def progress_line(progress: dict[str, Any]) -> str:
    """A running pass's progress as the STATUS line shows it, from its ``status --json`` form."""
    eta = progress.get("eta_s")
    return (
        f"{progress['files_done']}/{progress['files_total']} files, {format_bytes(progress['bytes_done'])}/"
        f"{format_bytes(progress['bytes_total'])}, {format_bytes(progress['rate_bytes_per_s'])}/s, "
        f"ETA {format_duration(eta) if eta is not None else 'unknown'}, {progress['errors']} errors"
        f" (as of {progress.get('at', '?')})"
    )


async def _status_row(store: StateStore, config: Config, library: LibraryConfig) -> dict[str, Any]:
    now = datetime.now().astimezone()
    lib_id = await store.find_library(library.name)
    pause = ControlDir(config.state_dir).pause(library.name)
    paused = {"since": pause.requested_at} if pause is not None else None
    if lib_id is None:  # configured, never synced: nothing stored yet (and status writes nothing)
        counts, status, failures, pending = {"synced_files": 0}, {}, [], 0
        state = "new"
    else:
        counts = await store.counts(lib_id)
        status = await store.get_status(lib_id)
        failures = await store.failures(lib_id)
        pending = len(await store.changed_states(lib_id))
        state = _library_state(status, pending, paused is not None)
    failure = read_failure(status.get(LAST_FAILURE))
    if failure is not None:
        failure["error"] = clean_error(failure["error"])
    return {
        "library": library.name,
        "provider": library.provider,
        "state": state,
        "halted_because": status.get("gate") or None,
        "held": _held_counts(status) if status.get("gate") else None,
        "paused": paused,
        "unsyncable": _json_status(status, "unsyncable"),
        "error": clean_error(status.get("daemon_detail")) if state == "retrying" else None,
        "last_failure": failure,
        "watcher": status.get("watcher") or None,
        "watcher_mode": status.get("watcher_mode") or None,
        "progress": _json_status(status, "progress") if state == "syncing" else None,
        "files": counts["synced_files"],
        "pending": pending,
        "conflicts": int(status.get("conflicts_total", "0") or 0),
        "poll_interval": library.poll_interval,
        "last_poll": status.get("last_poll"),
        "last_poll_age": _age(status.get("last_poll"), now),
        "last_pass": status.get("last_pass"),
        "last_pass_age": _age(status.get("last_pass"), now),
        "backoff": [
            {
                "path": p,
                "attempts": a,
                "next_attempt": datetime.fromtimestamp(n).astimezone().isoformat(timespec="seconds"),
                "last_error": clean_error(e),
            }
            for p, a, n, e in failures
        ],
    }


def _print_status_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("library", "state", "health", "files", "pending", "conflicts", "last poll", "last pass", "backoff"):
        table.add_column(col, justify="right" if col in ("files", "pending", "conflicts", "backoff") else "left")
    for row in rows:
        table.add_row(
            row["library"],
            row["state"],
            row["health"]["status"],
            str(row["files"]),
            str(row["pending"]),
            str(row["conflicts"]),
            row["last_poll_age"] or "never",
            row["last_pass_age"] or "never",
            str(len(row["backoff"])),
        )
    console = Console(soft_wrap=True)
    console.print(table)
    for row in rows:
        if row.get("watcher_mode"):
            console.print(f"{row['library']}: watcher: {row['watcher_mode']}", markup=False, highlight=False)
        if row.get("progress"):
            console.print(f"{row['library']}: {progress_line(row['progress'])}", markup=False, highlight=False)
    for row in rows:
        if row["halted_because"]:
            held = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in (row["held"] or {}).items() if n)
            console.print(f"{row['library']}: halted ({held or 'changes held'}): {row['halted_because']}", markup=False)
        if row["paused"]:
            console.print(
                f"{row['library']}: paused since {row['paused']['since']} (`libmirror resume {row['library']}`)",
                markup=False,
            )
        if row["error"]:
            console.print(f"{row['library']}: retrying: {row['error']}", markup=False)
        if row["unsyncable"]:
            paths = ", ".join(row["unsyncable"]["paths"][:5])
            console.print(
                f"{row['library']}: {row['unsyncable']['count']} local name(s) cannot be synced (not UTF-8; "
                f"rename them): {paths}",
                markup=False,
            )
        for b in row["backoff"]:
            line = f"{row['library']}: backoff {b['path']} ({b['attempts']}x, next {b['next_attempt']})"
            console.print(f"{line}: {b['last_error'] or ''}", markup=False)
