"""The actions the planner returns and the executor carries out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from daemon.vocab.rows import LocalRow, RemoteRow, SyncedRow


class ActionKind(StrEnum):
    UPLOAD = "upload"  # create (remote_id None) or update content of remote_id
    DOWNLOAD = "download"  # fetch remote content into path (create or replace)
    RECORD = "record"  # both sides agree already: write the synced row, transfer nothing
    DELETE_REMOTE = "delete_remote"
    TRASH_LOCAL = "trash_local"  # move the local file into ROOT/.libmirror/trash/
    FORGET = "forget"  # drop the synced row: the path is gone on both sides
    MOVE_REMOTE = "move_remote"  # rename/move remote_id from src to path
    MOVE_LOCAL = "move_local"  # rename local src to path
    CONFLICT_COPY = "conflict_copy"  # rename local path to a conflict copy; the next round pulls and pushes
    MKDIR_LOCAL = "mkdir_local"
    MKDIR_REMOTE = "mkdir_remote"
    RMDIR_LOCAL = "rmdir_local"  # remove an empty local folder
    RMDIR_REMOTE = "rmdir_remote"  # remove an empty remote folder
    SKIP = "skip"  # nothing can be done in this direction; kept for reporting


DESTRUCTIVE_LOCAL = frozenset({ActionKind.TRASH_LOCAL, ActionKind.RMDIR_LOCAL})
DESTRUCTIVE_REMOTE = frozenset({ActionKind.DELETE_REMOTE, ActionKind.RMDIR_REMOTE})


@dataclass(frozen=True, slots=True)
class Action:
    """One step for the executor.

    ``path`` is the target path. ``src`` is the old path of a move. ``local`` / ``remote`` /
    ``synced`` are the rows the planner decided on: the executor checks them again just before it
    acts (DESIGN rule 2) and drops the action when the world moved on.
    """

    kind: ActionKind
    path: str
    reason: str
    src: str | None = None
    local: LocalRow | None = None
    remote: RemoteRow | None = None
    synced: SyncedRow | None = None
    # UPLOAD only: the remote id whose content is replaced in place (provider can update). None means
    # "create a new object"; when ``remote`` is set as well (provider cannot update in place), the
    # executor retires ``remote.remote_id`` once the new object exists.
    replace_id: str | None = None

    @property
    def is_destructive(self) -> bool:
        return self.kind in DESTRUCTIVE_LOCAL or self.kind in DESTRUCTIVE_REMOTE
