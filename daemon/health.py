"""How healthy a library is, for ``libmirror status --check`` (and the ``health`` field of ``--json``).

Pure: it reads one status row (as ``daemon.cli`` builds it from the state store) and the time, and
returns a monitoring-plugin state (Nagios, Icinga, rclone's checks) with the reasons for it. Nothing
here touches the store, the network or the clock.

- OK (0): in sync within the expected interval.
- WARNING (1): a held safety gate, files in backoff, paused by the operator (a failure before the
  pause is then not reported), on periodic rescans because the watcher is unavailable, the last
  successful pass older than ``STALE_POLLS`` poll intervals, or a failure since the last successful
  pass that is younger than that.
- CRITICAL (2): credentials rejected, or failing for longer than ``STALE_POLLS`` poll intervals (or
  failing and never synced).
- UNKNOWN (3): nothing known yet (no pass has run for the library).

"Last successful pass" is the later of the last completed pass and the last successful poll (an idle
poll that finds nothing to do is a pass that did not need to run). A pass running in a live daemon is
not stale: a first sync of many files may take hours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daemon.exit_codes import CHECK_CRITICAL, CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING

STALE_POLLS = 3  # a last successful pass older than this many poll intervals is a warning
LAST_FAILURE = "last_failure"  # status key: {"at": ISO time, "error": text, "auth": bool}

NAMES = {CHECK_OK: "OK", CHECK_WARNING: "WARNING", CHECK_CRITICAL: "CRITICAL", CHECK_UNKNOWN: "UNKNOWN"}
# the order states combine in: a known problem outranks not knowing
_RANK = {CHECK_OK: 0, CHECK_UNKNOWN: 1, CHECK_WARNING: 2, CHECK_CRITICAL: 3}


@dataclass
class Health:
    code: int = CHECK_OK
    reasons: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return NAMES[self.code]

    def add(self, code: int, reason: str) -> None:
        self.code = worst(self.code, code)
        self.reasons.append(reason)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "reasons": list(self.reasons)}


def worst(*codes: int) -> int:
    return max(codes, key=rank, default=CHECK_OK)


def rank(code: int) -> int:
    """How bad a state is: OK < UNKNOWN < WARNING < CRITICAL."""
    return _RANK[code]


def failure_note(error: str, *, auth: bool, at: datetime) -> str:
    """The ``last_failure`` status value a writer stores when a whole pass of a library fails."""
    return json.dumps({"at": at.isoformat(timespec="seconds"), "error": error, "auth": auth})


def read_failure(text: str | None) -> dict[str, Any] | None:
    """The stored ``last_failure`` (see :func:`failure_note`); None when absent or unreadable."""
    try:
        data = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("at"), str):
        return None
    return {"at": data["at"], "error": str(data.get("error") or ""), "auth": bool(data.get("auth"))}


def _stamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.astimezone()


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def assess(row: Mapping[str, Any], *, poll_interval: float, now: datetime, daemon_running: bool) -> Health:
    """The health of one library from its ``status --json`` row (the ``health`` field excepted)."""
    health = Health()
    if row["state"] == "new":
        health.add(CHECK_UNKNOWN, "no pass has run for this library yet")
        return health
    window = STALE_POLLS * poll_interval
    last_ok = max(
        (s for s in (_stamp(row.get("last_pass")), _stamp(row.get("last_poll"))) if s is not None), default=None
    )
    running_pass = daemon_running and row["state"] in ("syncing", "starting")
    failure = row.get("last_failure")
    failed_at = _stamp(failure["at"]) if failure else None
    # a paused library is not expected to sync: a failure before the pause is history, not a page
    if failure and failed_at is not None and (last_ok is None or failed_at >= last_ok) and not row.get("paused"):
        error = failure["error"] or "(no detail)"
        if failure["auth"]:
            health.add(CHECK_CRITICAL, f"credentials rejected: {error}")
        elif last_ok is None:
            health.add(CHECK_CRITICAL, f"failing since {failure['at']}, never synced: {error}")
        elif (now - last_ok).total_seconds() > window:
            age = _ago((now - last_ok).total_seconds())
            health.add(CHECK_CRITICAL, f"failing every pass, last success {age} ago: {error}")
        else:
            health.add(CHECK_WARNING, f"last pass failed (retrying): {error}")
    if row.get("halted_because"):
        held = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in (row.get("held") or {}).items() if n)
        health.add(CHECK_WARNING, f"safety gate holds {held or 'changes'} back: {row['halted_because']}")
    backoff = row.get("backoff") or []
    if backoff:
        health.add(CHECK_WARNING, f"{len(backoff)} file(s) in backoff, first {backoff[0]['path']}")
    if row.get("paused"):
        health.add(CHECK_WARNING, f"paused since {row['paused']['since']} (`libmirror resume {row['library']}`)")
    if daemon_running and row.get("watcher") == "fallback":
        health.add(CHECK_WARNING, "watcher unavailable: local changes are found by periodic rescans only")
    if row.get("paused") or running_pass or health.code == CHECK_CRITICAL:
        pass  # staleness is expected (paused), not yet due (a pass is running), or already said
    elif last_ok is None:
        health.add(CHECK_UNKNOWN, "no successful pass yet")
    elif (now - last_ok).total_seconds() > window:
        age = _ago((now - last_ok).total_seconds())
        expected = f"expected every {poll_interval:g} s, {STALE_POLLS}x allowed"
        health.add(CHECK_WARNING, f"last successful pass {age} ago ({expected})")
    return health


def check_line(row: Mapping[str, Any], health: Health) -> str:
    """One line for a monitoring system: ``STATE library: reasons`` (or a short summary when OK)."""
    if health.reasons:
        text = "; ".join(health.reasons)
    else:
        seen = [(_stamp(row.get(f"last_{k}")), row.get(f"last_{k}_age")) for k in ("pass", "poll")]
        ages = [(stamp, age) for stamp, age in seen if stamp is not None]
        newest = max(ages, key=lambda pair: pair[0])[1] if ages else None
        text = f"in sync, {row['files']} files, last pass {newest or 'never'}"
    line = f"{health.status} {row['library']}: {text}"
    # one line, whatever a path holds (a file name may contain a line break or an escape sequence)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
