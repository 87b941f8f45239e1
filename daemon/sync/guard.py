"""Safety gates (DESIGN rule 5): hold back destructive actions when the world looks wrong.

Pure: given the planned actions and a few facts about the library, split the actions into those that
may run and those held back, with the reasons. Gates are loud (every held action is counted and the
reasons are logged and shown in ``status``) and not sticky: they are evaluated afresh on every pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from daemon.vocab import (
    Action,
    ConflictCopy,
    DeleteRemote,
    Download,
    Forget,
    MkdirLocal,
    MkdirRemote,
    MoveLocal,
    MoveRemote,
    Record,
    RmdirLocal,
    RmdirRemote,
    Skip,
    TrashLocal,
    Upload,
)


@dataclass(frozen=True)
class GateFacts:
    marker_present: bool  # ROOT/.libmirror/ exists (or this is the first sync)
    synced_files: int  # files in the synced tree
    remote_files: int  # files in the remote tree after the last listing
    local_files: int  # files in the local tree after the last scan
    max_delete_percent: float
    max_delete_count: int
    max_overwrite_percent: float = 50.0
    max_overwrite_count: int = 500
    confirmed: bool = False  # the operator released the held changes (--confirm-deletes, release-gate)
    library: str = "LIBRARY"  # for the hint in the reasons


def overwrites_remote(action: Action) -> bool:
    """The action replaces synced content on the server with local content (an upload over it)."""
    return (
        isinstance(action, Upload)
        and action.remote is not None
        and not action.remote.is_dir
        and action.synced is not None
    )


def overwrites_local(action: Action) -> bool:
    """The action replaces synced content on disk with remote content (a download over it)."""
    return (
        isinstance(action, Download)
        and action.local is not None
        and not action.local.is_dir
        and action.synced is not None
    )


@dataclass
class GateCounts:
    """What one plan would destroy or replace on each side (files only)."""

    local_deletes: int = 0
    remote_deletes: int = 0
    local_overwrites: int = 0
    remote_overwrites: int = 0


def describe(counts: GateCounts) -> str:
    """``"12 remote overwrites, 3 local deletes"``: the non-zero counts, for status lines."""
    parts = [
        (counts.remote_deletes, "remote deletes"),
        (counts.local_deletes, "local deletes"),
        (counts.remote_overwrites, "remote overwrites"),
        (counts.local_overwrites, "local overwrites"),
    ]
    return ", ".join(f"{n} {what}" for n, what in parts if n) or "nothing"


def count(actions: list[Action]) -> GateCounts:
    c = GateCounts()
    for a in actions:
        if isinstance(a, TrashLocal):
            c.local_deletes += 1
        elif isinstance(a, DeleteRemote):
            c.remote_deletes += 1
        elif overwrites_remote(a):
            c.remote_overwrites += 1
        elif overwrites_local(a):
            c.local_overwrites += 1
    return c


@dataclass
class GateResult:
    allowed: list[Action] = field(default_factory=list)
    held: list[Action] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    counts: GateCounts = field(default_factory=GateCounts)

    @property
    def tripped(self) -> bool:
        return bool(self.reasons)


OVERWRITE_PERCENT_FLOOR = 5
"""Fewer overwrites than this in one pass never trip ``max_overwrite_percent`` (the count limit still
applies): editing two of the three files of a small library is everyday work, not an attack."""


def _over_limit(n: int, what: str, percent: float, limit: int, facts: GateFacts) -> str | None:
    if n == 0:
        return None
    if n > limit:
        return f"{n} {what}s exceed max_{what}_count = {limit}"
    if what == "overwrite" and n < OVERWRITE_PERCENT_FLOOR:
        return None
    if facts.synced_files > 0 and n * 100 > percent * facts.synced_files:
        pct = n * 100 // facts.synced_files
        return f"{n} {what}s are {pct}% of {facts.synced_files} synced files (max_{what}_percent = {percent:g})"
    return None


def verdict(c: GateCounts, facts: GateFacts) -> tuple[list[str], set[str]]:
    """The gates a pass that would delete and overwrite ``c`` trips: their reasons, and what they hold
    (of "local_delete", "remote_delete", "local_overwrite", "remote_overwrite")."""
    reasons: list[str] = []
    release = (
        f"release them with `libmirror release-gate {facts.library}` (service running) "
        "or `libmirror sync --once --confirm-deletes`"
    )
    hold: set[str] = set()

    if not facts.marker_present and facts.synced_files > 0:
        reasons.append(
            "the root marker .libmirror/ is missing (is the disk mounted?): no deletes or overwrites on either "
            "side; restore the folder or run `sync --once --confirm-deletes`"
        )
        hold |= {"local_delete", "remote_delete", "local_overwrite", "remote_overwrite"}
    if facts.remote_files == 0 and facts.synced_files > 0:
        reasons.append(
            "the remote listing came back empty while files were synced: local files are not trashed; "
            "check the remote root, or run `sync --once --confirm-deletes` if the library really is empty"
        )
        hold.add("local_delete")
    if facts.local_files == 0 and facts.synced_files > 0:
        reasons.append(
            "the local folder is empty while files were synced: remote files are not deleted; "
            "check the disk, or run `sync --once --confirm-deletes` if you really emptied it"
        )
        hold.add("remote_delete")
    limits = (
        ("local", "delete", c.local_deletes),
        ("remote", "delete", c.remote_deletes),
        ("local", "overwrite", c.local_overwrites),
        ("remote", "overwrite", c.remote_overwrites),
    )
    for side, what, n in limits:
        percent = facts.max_delete_percent if what == "delete" else facts.max_overwrite_percent
        limit = facts.max_delete_count if what == "delete" else facts.max_overwrite_count
        if (why := _over_limit(n, what, percent, limit, facts)) is not None:
            reasons.append(f"{side} side: {why}; {release}")
            hold.add(f"{side}_{what}")

    if facts.confirmed:
        reasons.clear()
        hold.clear()
    return reasons, hold


def apply_gates(actions: list[Action], facts: GateFacts) -> GateResult:
    result = GateResult(counts=count(actions))
    result.reasons, hold = verdict(result.counts, facts)
    for action in actions:
        if held(action, hold):
            result.held.append(action)
        else:
            result.allowed.append(action)
    if not result.held:
        # a condition with nothing to hold back is not a tripped gate
        result.reasons.clear()
    return result


def held(action: Action, hold: set[str]) -> bool:
    """Whether a tripped gate holds ``action`` back. Every kind is placed here: a new one that
    deletes or replaces content cannot slip past the gates unnoticed (mypy: ``assert_never``)."""
    if not hold:
        return False
    match action:
        case TrashLocal() | RmdirLocal():
            return "local_delete" in hold
        case DeleteRemote() | RmdirRemote():
            return "remote_delete" in hold
        case Upload():
            return overwrites_remote(action) and "remote_overwrite" in hold
        case Download():
            return overwrites_local(action) and "local_overwrite" in hold
        case Record() | Forget() | MoveRemote() | MoveLocal() | ConflictCopy() | MkdirLocal() | MkdirRemote() | Skip():
            return False
        case _:
            assert_never(action)
