"""The three trees the planner reads, one row type each, keyed by the library-relative path (NFC,
``/``-separated, no leading slash):

* ``RemoteRow``: what the poller last saw on the server;
* ``LocalRow``: what the scanner or watcher last saw on disk;
* ``SyncedRow``: the merge base, what both sides held when the path last agreed.

All types here are plain frozen values without I/O, so the planner stays pure and testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


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
    (a full rescan reads 100,000 of them). No digest: the scanner never reads one."""

    path: str
    is_dir: bool
    size: int
    mtime_ns: int
    inode: int


StoredStat = tuple[str, int, int, int, int]
"""A ``KnownLocal``'s fields as the plain tuple SQLite hands over: (path, is_dir, size, mtime_ns, inode).
A full rescan keeps the driver's tuples as they are: wrapping 100,000 of them in a named tuple would cost
as much as the store's whole read."""

Known = LocalRow | StoredStat
"""A stored local row as the scanner gets it: a row, or its compared fields as a tuple (a KnownLocal is one)."""


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
