"""An in-memory world and executor for testing the planner the way Dropbox's CanopyCheck does.

The world holds a local tree, a remote tree and the synced tree as dicts. ``execute`` carries out one
planned action exactly as the real executor is meant to:

* check, then act: every row the action was planned on must still be current, else it is dropped;
* local files that get replaced or deleted go to ``trash``;
* every remote write (create, update, move) gets a fresh version token; digests are MD5 of content;
* uploads and downloads create missing parent folders; RMDIR_* removes only empty folders;
* local folders have inodes that stay with them when they are renamed (folder-move detection);
  a MOVE_* of a folder moves its whole subtree, ids and rows included, as one call would;
* after each successful action the synced row is written as the executor will write it.

It also refuses unsafe actions outright (``UnsafeAction``): trashing or overwriting a local file, or
deleting or overwriting a remote one, whose content is not the synced content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from daemon.sync.plan import conflict_copy_name, plan
from daemon.vocab import (
    Action,
    ConflictCopy,
    DeleteRemote,
    Download,
    Forget,
    LocalRow,
    MkdirLocal,
    MkdirRemote,
    MoveLocal,
    MoveRemote,
    PathState,
    PlanOptions,
    Record,
    RemoteRow,
    RmdirLocal,
    RmdirRemote,
    Skip,
    SyncedRow,
    TrashLocal,
    Upload,
)

Tree = dict[str, bytes | None]  # path -> content; None is a folder


class UnsafeAction(AssertionError):
    """The planner asked for something that could lose a version."""


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def parents(path: str) -> list[str]:
    """Ancestors of ``path``, outermost first."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def subtree(tree: Mapping[str, object], path: str) -> list[str]:
    """``path`` and everything under it, sorted."""
    return sorted(p for p in tree if p == path or p.startswith(path + "/"))


@dataclass
class RObj:
    """One remote object: a file (content bytes) or a folder (content None)."""

    remote_id: str
    content: bytes | None
    version: str


@dataclass
class World:
    local: Tree = field(default_factory=dict)
    remote: dict[str, RObj] = field(default_factory=dict)
    synced: dict[str, SyncedRow] = field(default_factory=dict)
    has_digest: bool = True
    trash: list[bytes] = field(default_factory=list)
    remote_retired: list[bytes] = field(default_factory=list)  # remote content replaced or deleted
    dropped: list[Action] = field(default_factory=list)
    counter: int = 0
    inodes: dict[str, int] = field(default_factory=dict)  # local folders only; given out on first sight

    # -- construction and user edits --------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    @classmethod
    def in_sync(cls, tree: Tree, *, has_digest: bool = True) -> World:
        """A world where local, remote and synced all hold ``tree``."""
        world = cls(has_digest=has_digest)
        for path in sorted(tree):
            content = tree[path]
            obj = RObj(world.fresh("id"), content, world.fresh("v"))
            world.local[path] = content
            world.remote[path] = obj
            world.record(path)
        return world

    def local_write(self, path: str, content: bytes | None) -> None:
        for p in parents(path):
            self.local.setdefault(p, None)
        self.local[path] = content

    def local_delete(self, path: str) -> None:
        for p in subtree(self.local, path):
            del self.local[p]
            self.inodes.pop(p, None)

    def local_move(self, src: str, dst: str) -> None:
        moved = {p: self.inodes.pop(p) for p in subtree(self.local, src) if p in self.inodes}
        for p in subtree(self.local, src):
            self.local_write(dst + p[len(src) :], self.local.pop(p))
        for p, inode in moved.items():
            self.inodes[dst + p[len(src) :]] = inode

    def inode(self, path: str) -> int:
        """The inode of the local folder at ``path`` (a new folder gets a new one)."""
        if path not in self.inodes:
            self.counter += 1
            self.inodes[path] = 1000 + self.counter
        return self.inodes[path]

    def remote_write(self, path: str, content: bytes | None) -> None:
        """A write by someone else on the server: same id when the path exists, new version always."""
        for p in parents(path):
            if p not in self.remote:
                self.remote[p] = RObj(self.fresh("id"), None, self.fresh("v"))
        old = self.remote.get(path)
        rid = old.remote_id if old is not None else self.fresh("id")
        self.remote[path] = RObj(rid, content, self.fresh("v"))

    def remote_delete(self, path: str) -> None:
        for p in subtree(self.remote, path):
            del self.remote[p]

    def remote_move(self, src: str, dst: str) -> None:
        """A server-side rename: ids stay, version tokens stay (as with CoreData's snapshot_id)."""
        for p in parents(dst):
            if p not in self.remote:
                self.remote[p] = RObj(self.fresh("id"), None, self.fresh("v"))
        for p in subtree(self.remote, src):
            self.remote[dst + p[len(src) :]] = self.remote.pop(p)

    # -- observation ------------------------------------------------------------------------------

    def local_row(self, path: str) -> LocalRow | None:
        if path not in self.local:
            return None
        content = self.local[path]
        if content is None:
            return LocalRow(path=path, is_dir=True, inode=self.inode(path))
        return LocalRow(path=path, size=len(content), digest=md5(content))

    def remote_row(self, path: str) -> RemoteRow | None:
        obj = self.remote.get(path)
        if obj is None:
            return None
        if obj.content is None:
            return RemoteRow(path=path, remote_id=obj.remote_id, is_dir=True, version=obj.version)
        digest = md5(obj.content) if self.has_digest else None
        return RemoteRow(path=path, remote_id=obj.remote_id, size=len(obj.content), digest=digest, version=obj.version)

    def states(self) -> list[PathState]:
        """Every path of every tree, in sync or not: the planner must ignore the in-sync ones."""
        paths = sorted(set(self.local) | set(self.remote) | set(self.synced))
        return [PathState(p, self.local_row(p), self.remote_row(p), self.synced.get(p)) for p in paths]

    def contents(self) -> tuple[Tree, Tree]:
        return dict(self.local), {p: o.content for p, o in self.remote.items()}

    # -- the executor -----------------------------------------------------------------------------

    def record(self, path: str) -> None:
        """Write the synced row from what both sides hold now at ``path``."""
        obj = self.remote[path]
        content = obj.content
        local_dir = path in self.local and self.local[path] is None
        self.synced[path] = SyncedRow(
            path=path,
            is_dir=content is None,
            digest=None if content is None else md5(content),
            size=0 if content is None else len(content),
            remote_id=obj.remote_id,
            remote_version=obj.version,
            local_inode=self.inode(path) if content is None and local_dir else 0,
        )

    def _move_synced(self, src: str, dst: str) -> None:
        for p in subtree(self.synced, src):
            row = self.synced.pop(p)
            self.synced[dst + p[len(src) :]] = replace(row, path=dst + p[len(src) :])

    def current(self, action: Action) -> bool:
        """Check, then act: are the rows the action was planned on still what the world holds?"""
        for row in (action.local, action.remote, action.synced):
            if row is None:
                continue
            if isinstance(row, LocalRow) and self.local_row(row.path) != row:
                return False
            if isinstance(row, RemoteRow) and self.remote_row(row.path) != row:
                return False
            if isinstance(row, SyncedRow) and self.synced.get(row.path) != row:
                return False
        return True

    def _local_parents(self, path: str) -> bool:
        for p in parents(path):
            if self.local.get(p, None) is not None:
                return False  # a file is in the way
            self.local.setdefault(p, None)
        return True

    def _remote_parents(self, path: str) -> bool:
        for p in parents(path):
            obj = self.remote.get(p)
            if obj is not None and obj.content is not None:
                return False
            if obj is None:
                self.remote[p] = RObj(self.fresh("id"), None, self.fresh("v"))
        return True

    def _require_synced(self, path: str, content: bytes | None, what: str) -> None:
        base = self.synced.get(path)
        if content is not None and (base is None or base.digest != md5(content)):
            raise UnsafeAction(f"{what} {path}: content is not the synced version")

    def execute(self, action: Action) -> bool:
        """Carry out one action; False when it was dropped (world moved on or precondition failed)."""
        if isinstance(action, Skip):
            return True
        if not self.current(action) or not self._apply(action):
            self.dropped.append(action)
            return False
        return True

    def _apply(self, a: Action) -> bool:
        path = a.path
        if isinstance(a, Upload):
            content = self.local.get(path)
            old = self.remote.get(path)
            if content is None or a.local is None or (a.remote is None) != (old is None):
                return False
            if not self._remote_parents(path):
                return False
            if old is not None:
                if old.content is None:
                    return False
                self._require_synced(path, old.content, "overwrite remote")
                self.remote_retired.append(old.content)
            if a.replace_id is not None:
                assert old is not None and old.remote_id == a.replace_id
                self.remote[path] = RObj(old.remote_id, content, self.fresh("v"))
            else:
                self.remote[path] = RObj(self.fresh("id"), content, self.fresh("v"))
            self.record(path)
        elif isinstance(a, Download):
            obj = self.remote.get(path)
            if obj is None or obj.content is None or a.remote is None:
                return False
            have = self.local.get(path)
            if (a.local is None) != (path not in self.local) or (path in self.local and have is None):
                return False
            if not self._local_parents(path):
                return False
            if have is not None:
                self._require_synced(path, have, "overwrite local")
                self.trash.append(have)
            self.local[path] = obj.content
            self.record(path)
        elif isinstance(a, Record):
            if path not in self.local or path not in self.remote:
                return False
            if (self.local[path] is None) != (self.remote[path].content is None):
                return False
            self.record(path)
        elif isinstance(a, DeleteRemote):
            obj = self.remote.get(path)
            if obj is None or obj.content is None:
                return False
            self._require_synced(path, obj.content, "delete remote")
            self.remote_retired.append(obj.content)
            del self.remote[path]
            self.synced.pop(path, None)
        elif isinstance(a, TrashLocal):
            have = self.local.get(path)
            if have is None:
                return False
            self._require_synced(path, have, "trash local")
            self.trash.append(have)
            del self.local[path]
            self.synced.pop(path, None)
        elif isinstance(a, Forget):
            if path in self.local or path in self.remote:
                return False
            self.synced.pop(path, None)
        elif isinstance(a, MoveRemote):
            assert a.remote is not None and a.synced is not None
            obj = self.remote.get(a.src)
            if obj is None or path in self.remote or not self._remote_parents(path):
                return False
            if obj.content is None:  # a folder: one call moves everything under it
                if subtree(self.remote, path) or subtree(self.synced, path):
                    return False
                self.remote_move(a.src, path)
                self.remote[path] = RObj(obj.remote_id, None, self.fresh("v"))
                self._move_synced(a.src, path)
            else:
                del self.remote[a.src]
                self.remote[path] = RObj(obj.remote_id, obj.content, self.fresh("v"))
                del self.synced[a.src]
            self.record(path)
        elif isinstance(a, MoveLocal):
            assert a.remote is not None and a.synced is not None
            if a.src not in self.local or path in self.local or not self._local_parents(path):
                return False
            if self.local[a.src] is None:  # a folder: one rename moves everything under it
                if subtree(self.synced, path):
                    return False
                self.local_move(a.src, path)
                self._move_synced(a.src, path)
            else:
                self.local[path] = self.local.pop(a.src)
                del self.synced[a.src]
            self.synced[path] = replace(
                a.synced, path=path, remote_id=a.remote.remote_id, remote_version=a.remote.version
            )
        elif isinstance(a, ConflictCopy):
            if a.src not in self.local:
                return False
            target = path
            if target in self.local:
                target = conflict_copy_name(a.src, "retry", self.local.__contains__)
            self.local_move(a.src, target)
        elif isinstance(a, MkdirLocal):
            obj = self.remote.get(path)
            if path in self.local or obj is None or obj.content is not None:
                return False
            if not self._local_parents(path):
                return False
            self.local[path] = None
            self.record(path)
        elif isinstance(a, MkdirRemote):
            if path in self.remote or self.local.get(path, b"") is not None:
                return False
            if not self._remote_parents(path):
                return False
            self.remote[path] = RObj(self.fresh("id"), None, self.fresh("v"))
            self.record(path)
        elif isinstance(a, RmdirLocal):
            if path not in self.local or self.local[path] is not None or len(subtree(self.local, path)) > 1:
                return False
            del self.local[path]
            self.synced.pop(path, None)
        elif isinstance(a, RmdirRemote):
            obj = self.remote.get(path)
            if obj is None or obj.content is not None or len(subtree(self.remote, path)) > 1:
                return False
            del self.remote[path]
            self.synced.pop(path, None)
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(a.kind)
        return True


def run_until_stable(world: World, options: PlanOptions, *, max_rounds: int = 10) -> int:
    """Plan and execute until the plan holds nothing but SKIPs; return the number of rounds run."""
    for round_no in range(1, max_rounds + 1):
        actions = plan(world.states(), options, now_label=f"2024-05-01 1200{round_no:02d}")
        if all(isinstance(a, Skip) for a in actions):
            return round_no - 1
        for action in actions:
            world.execute(action)
    raise AssertionError(f"no fixpoint after {max_rounds} rounds")
