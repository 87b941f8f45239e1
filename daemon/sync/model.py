"""The data the planner reads and the actions it returns.

Three trees per library, keyed by the library-relative path (NFC, ``/``-separated, no leading slash):

* ``RemoteRow``: what the poller last saw on the server;
* ``LocalRow``: what the scanner or watcher last saw on disk;
* ``SyncedRow``: the merge base, what both sides held when the path last agreed.

All types here are plain frozen dataclasses without I/O, so the planner stays pure and testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Direction(StrEnum):
    TWO_WAY = "two-way"
    PULL = "pull"
    PUSH = "push"


@dataclass(frozen=True, slots=True)
class RemoteRow:
    """One entry of the remote tree (a file or a folder)."""

    path: str
    remote_id: str
    is_dir: bool = False
    parent_id: str | None = None
    size: int | None = None
    digest: str | None = None  # MD5 hex where the provider has one
    version: str = ""  # provider's version token: snapshot_id, updated_at, "size:modifiedDate" ...
    modified: str | None = None  # server timestamp, compared only with the same server's timestamps
    name: str | None = None  # the server's own name (unsanitised); None where not known


@dataclass(frozen=True, slots=True)
class LocalRow:
    """One entry of the local tree. ``digest`` is None for folders."""

    path: str
    is_dir: bool = False
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    digest: str | None = None


class KnownLocal(NamedTuple):
    """What the scanner compares a directory entry with: the stored row of that path, as a plain tuple
    (a full rescan reads 100,000 of them; a tuple costs a fraction of a frozen dataclass to build)."""

    path: str
    is_dir: bool
    size: int
    mtime_ns: int
    inode: int
    digest: str | None


Known = LocalRow | KnownLocal
"""A stored local row as the scanner sees it: either form has the same fields."""


@dataclass(frozen=True, slots=True)
class SyncedRow:
    """The merge base: what both sides held when this path last agreed."""

    path: str
    is_dir: bool = False
    digest: str | None = None
    size: int = 0
    remote_id: str | None = None
    remote_version: str = ""
    local_mtime_ns: int = 0
    local_inode: int = 0


@dataclass(frozen=True, slots=True)
class PathState:
    """The three rows of one path, as read from the state store."""

    path: str
    local: LocalRow | None = None
    remote: RemoteRow | None = None
    synced: SyncedRow | None = None


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Library settings that change what the planner decides."""

    direction: Direction = Direction.TWO_WAY
    propagate_deletes: bool = True  # False: a local delete never deletes remotely
    can_move_remote: bool = True  # provider renames/moves files in one call
    can_update_remote: bool = True  # provider replaces content in place
    has_remote_dirs: bool = True  # provider has folders we can create
    can_move_remote_dir: bool = False  # provider renames/moves a folder (with its contents) in one call


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
