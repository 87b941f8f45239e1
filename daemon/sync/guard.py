"""Safety gates (DESIGN rule 5): hold back destructive actions when the world looks wrong.

Pure: given the planned actions and a few facts about the library, split the actions into those that
may run and those held back, with the reasons. Gates are loud (every held action is counted and the
reasons are logged and shown in ``status``) and not sticky: they are evaluated afresh on every pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.sync.model import DESTRUCTIVE_LOCAL, DESTRUCTIVE_REMOTE, Action, ActionKind


@dataclass(frozen=True)
class GateFacts:
    marker_present: bool  # ROOT/.libmirror/ exists (or this is the first sync)
    synced_files: int  # files in the synced tree
    remote_files: int  # files in the remote tree after the last listing
    local_files: int  # files in the local tree after the last scan
    max_delete_percent: float
    max_delete_count: int
    confirmed: bool = False  # the operator passed --confirm-deletes


@dataclass
class GateResult:
    allowed: list[Action] = field(default_factory=list)
    held: list[Action] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def tripped(self) -> bool:
        return bool(self.reasons)


def _over_limit(count: int, facts: GateFacts) -> str | None:
    if count == 0:
        return None
    if count > facts.max_delete_count:
        return f"{count} deletes exceed max_delete_count = {facts.max_delete_count}"
    if facts.synced_files > 0 and count * 100 > facts.max_delete_percent * facts.synced_files:
        pct = count * 100 // facts.synced_files
        return (
            f"{count} deletes are {pct}% of {facts.synced_files} synced files "
            f"(max_delete_percent = {facts.max_delete_percent:g})"
        )
    return None


def apply_gates(actions: list[Action], facts: GateFacts) -> GateResult:
    result = GateResult()
    # counted: files whose content would leave a side (empty folders carry no content)
    local_deletes = [a for a in actions if a.kind is ActionKind.TRASH_LOCAL]
    remote_deletes = [a for a in actions if a.kind is ActionKind.DELETE_REMOTE]
    hold_local = False
    hold_remote = False

    if not facts.marker_present and facts.synced_files > 0:
        result.reasons.append(
            "the root marker .libmirror/ is missing (is the disk mounted?): no deletes on either side; "
            "restore the folder or run `sync --once --confirm-deletes`"
        )
        hold_local = hold_remote = True
    if facts.remote_files == 0 and facts.synced_files > 0:
        result.reasons.append(
            "the remote listing came back empty while files were synced: local files are not trashed; "
            "check the remote root, or run `sync --once --confirm-deletes` if the library really is empty"
        )
        hold_local = True
    if facts.local_files == 0 and facts.synced_files > 0:
        result.reasons.append(
            "the local folder is empty while files were synced: remote files are not deleted; "
            "check the disk, or run `sync --once --confirm-deletes` if you really emptied it"
        )
        hold_remote = True
    if (why := _over_limit(len(local_deletes), facts)) is not None:
        result.reasons.append(f"local side: {why}; run `sync --once --confirm-deletes` to allow them")
        hold_local = True
    if (why := _over_limit(len(remote_deletes), facts)) is not None:
        result.reasons.append(f"remote side: {why}; run `sync --once --confirm-deletes` to allow them")
        hold_remote = True

    if facts.confirmed:
        result.reasons.clear()
        hold_local = hold_remote = False

    for action in actions:
        if (hold_local and action.kind in DESTRUCTIVE_LOCAL) or (hold_remote and action.kind in DESTRUCTIVE_REMOTE):
            result.held.append(action)
        else:
            result.allowed.append(action)
    if not result.held:
        # a condition with nothing to hold back is not a tripped gate
        result.reasons.clear()
    return result
