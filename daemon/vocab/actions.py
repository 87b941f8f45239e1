"""The actions the planner returns and the executor carries out: a closed set, one class per kind.

``Action`` is the union of every kind. A stage that handles actions dispatches with ``match`` and ends
with ``case _: assert_never(action)``, so a new kind that a stage does not handle is a type error, not a
surprise at run time.

Every action carries its ``path`` (the target), a ``reason`` (for the logs) and the rows the planner
decided on (``local``, ``remote``, ``synced``): the executor checks them again just before it acts
(DESIGN rule 2) and drops the action when the world moved on. Fields only some kinds need live on those
kinds: ``src`` (the old path) on the moves and the conflict copy, ``replace_id`` on ``Upload``.
``kind`` names the action in log lines and summaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

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
class _Step:
    """What every action has: the target path, why, and the rows the plan was made on."""

    kind: ClassVar[ActionKind]

    path: str
    reason: str
    local: LocalRow | None = None
    remote: RemoteRow | None = None
    synced: SyncedRow | None = None

    @property
    def is_destructive(self) -> bool:
        return self.kind in DESTRUCTIVE_LOCAL or self.kind in DESTRUCTIVE_REMOTE


@dataclass(frozen=True, slots=True)
class Upload(_Step):
    """Push the local file: create a new remote object, or replace ``replace_id``'s content in place.

    ``replace_id`` None means "create a new object"; when ``remote`` is set as well (the provider cannot
    update in place), the executor retires ``remote.remote_id`` once the new object exists."""

    kind: ClassVar[ActionKind] = ActionKind.UPLOAD
    replace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Download(_Step):
    """Fetch the remote content into ``path`` (create or replace)."""

    kind: ClassVar[ActionKind] = ActionKind.DOWNLOAD


@dataclass(frozen=True, slots=True)
class Record(_Step):
    """Both sides agree already: write the synced row, transfer nothing."""

    kind: ClassVar[ActionKind] = ActionKind.RECORD


@dataclass(frozen=True, slots=True)
class DeleteRemote(_Step):
    """Delete the remote item (a file, or a folder the remote replaced a synced file with)."""

    kind: ClassVar[ActionKind] = ActionKind.DELETE_REMOTE


@dataclass(frozen=True, slots=True)
class TrashLocal(_Step):
    """Move the local item into ``ROOT/.libmirror/trash/``."""

    kind: ClassVar[ActionKind] = ActionKind.TRASH_LOCAL


@dataclass(frozen=True, slots=True)
class Forget(_Step):
    """Drop the synced row: the path is gone on both sides."""

    kind: ClassVar[ActionKind] = ActionKind.FORGET


@dataclass(frozen=True, slots=True)
class MoveRemote(_Step):
    """Rename/move the remote item from ``src`` to ``path`` (a folder with everything under it).
    Carries the local row of ``path`` and the remote and synced rows of ``src``."""

    kind: ClassVar[ActionKind] = ActionKind.MOVE_REMOTE
    src: str = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MoveLocal(_Step):
    """Rename the local item from ``src`` to ``path`` (a folder with everything under it). Carries the
    local and synced rows of ``src`` and the remote row of ``path``."""

    kind: ClassVar[ActionKind] = ActionKind.MOVE_LOCAL
    src: str = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class ConflictCopy(_Step):
    """Rename the local item at ``src`` (file or folder) to the conflict-copy name ``path``; the next
    round pulls the remote version and pushes the copy. Carries the rows of ``src``."""

    kind: ClassVar[ActionKind] = ActionKind.CONFLICT_COPY
    src: str = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MkdirLocal(_Step):
    """Create the local folder."""

    kind: ClassVar[ActionKind] = ActionKind.MKDIR_LOCAL


@dataclass(frozen=True, slots=True)
class MkdirRemote(_Step):
    """Create the remote folder."""

    kind: ClassVar[ActionKind] = ActionKind.MKDIR_REMOTE


@dataclass(frozen=True, slots=True)
class RmdirLocal(_Step):
    """Remove an empty local folder."""

    kind: ClassVar[ActionKind] = ActionKind.RMDIR_LOCAL


@dataclass(frozen=True, slots=True)
class RmdirRemote(_Step):
    """Remove an empty remote folder."""

    kind: ClassVar[ActionKind] = ActionKind.RMDIR_REMOTE


@dataclass(frozen=True, slots=True)
class Skip(_Step):
    """Nothing can be done in this direction; kept for reporting."""

    kind: ClassVar[ActionKind] = ActionKind.SKIP


Action = (
    Upload
    | Download
    | Record
    | DeleteRemote
    | TrashLocal
    | Forget
    | MoveRemote
    | MoveLocal
    | ConflictCopy
    | MkdirLocal
    | MkdirRemote
    | RmdirLocal
    | RmdirRemote
    | Skip
)
"""Every action the planner can return: a closed union, matched exhaustively by the stages."""

Moving = MoveRemote | MoveLocal | ConflictCopy
"""The actions that take an item away from ``src``."""


def moved_from(action: Action) -> str | None:
    """The old path of a move or a conflict copy; None for every other kind."""
    return action.src if isinstance(action, Moving) else None
