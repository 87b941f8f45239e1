"""The pure planner: three rows per path in, a deterministic list of actions out.

No I/O and no clock (the caller passes ``now_label`` for conflict-copy names), so the planner can be
tested by generating random trees and running it with a simulated executor until it stops
(tests/sync/test_plan_property.py).

Conventions the executor relies on:

* Rows on an action are those of ``action.path``, except: MOVE_REMOTE carries the local row of the
  target (``path``) and the remote and synced rows of the source (``src``); MOVE_LOCAL carries the
  local and synced rows of ``src`` and the remote row of ``path``; CONFLICT_COPY moves the local item
  at ``src`` (file or folder) to the new name ``path`` and carries the rows of ``src``.
* A MOVE_REMOTE / MOVE_LOCAL of a folder moves its whole subtree in one call. Every path under the
  old and the new name is left alone in that round (the executor rewrites their rows with the move);
  changes inside the moved folder are planned in the next round, against the rows at the new place.
* The conflict-copy name is free among the paths the planner saw; the executor must still check the
  disk and may pick another one with :func:`conflict_copy_name`.
* Output order: MKDIR_* first (parents before children), then everything else by path, then
  RMDIR_* last (children before parents), so a sequential executor empties a folder before it is
  removed. RMDIR_* and MKDIR_* are only attempted by the executor when they still make sense (empty
  folder, missing folder); uploads and downloads create missing parent folders.
* When propagate_deletes is off, a local delete of synced content is reported as SKIP every pass:
  neither deleting the remote (not allowed) nor downloading it again (it would undo the user's delete)
  is right, so the operator decides.
"""

from __future__ import annotations

import bisect
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from enum import Enum

from daemon.local.names import with_suffix
from daemon.vocab import (
    Action,
    ActionKind,
    ConflictCopy,
    DeleteRemote,
    Direction,
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
    moved_from,
)

__all__ = ["conflict_copy_name", "plan"]

_PULL_FORBIDDEN = frozenset(
    {
        ActionKind.UPLOAD,
        ActionKind.DELETE_REMOTE,
        ActionKind.MOVE_REMOTE,
        ActionKind.MKDIR_REMOTE,
        ActionKind.RMDIR_REMOTE,
    }
)
_PUSH_FORBIDDEN = frozenset(
    {
        ActionKind.DOWNLOAD,
        ActionKind.TRASH_LOCAL,
        ActionKind.MOVE_LOCAL,
        ActionKind.MKDIR_LOCAL,
        ActionKind.RMDIR_LOCAL,
        ActionKind.CONFLICT_COPY,
    }
)
_MKDIRS = frozenset({ActionKind.MKDIR_LOCAL, ActionKind.MKDIR_REMOTE})
_RMDIRS = frozenset({ActionKind.RMDIR_LOCAL, ActionKind.RMDIR_REMOTE})
_KIND_ORDER = {kind: i for i, kind in enumerate(ActionKind)}


class _Change(Enum):
    """How one side differs from the merge base."""

    ABSENT = "absent"  # no item, no base
    NEW = "new"
    UNCHANGED = "unchanged"
    META = "meta"  # remote only: id or version token moved, content provably the same
    CHANGED = "changed"
    DELETED = "deleted"


def conflict_copy_name(path: str, now_label: str, taken: Callable[[str], bool], *, is_dir: bool = False) -> str:
    """``dir/NAME (conflicted copy LABEL).EXT``; `` 2``, `` 3``... before the extension while taken.

    Folders (``is_dir``) keep their whole name as the stem: a dot in a folder name is no extension. A
    long name gives way before the suffix, so the copy's name fits the file system's limit too.
    """
    parent, name = posixpath.split(path)
    suffix = f" (conflicted copy {now_label})"
    candidate = posixpath.join(parent, with_suffix(name, suffix, is_dir=is_dir))
    n = 2
    while taken(candidate):
        candidate = posixpath.join(parent, with_suffix(name, f"{suffix} {n}", is_dir=is_dir))
        n += 1
    return candidate


def plan(states: Sequence[PathState], options: PlanOptions, *, now_label: str) -> list[Action]:
    """Decide what to do for every path whose rows disagree. Pure and deterministic."""
    by_path = {s.path: s for s in states}
    taken: set[str] = set()
    for s in by_path.values():
        for row in (s.local, s.remote, s.synced):
            if row is not None:
                taken.add(row.path)
        taken.add(s.path)

    def name_copy(path: str, is_dir: bool) -> str:
        name = conflict_copy_name(path, now_label, taken.__contains__, is_dir=is_dir)
        taken.add(name)
        return name

    planner = _Planner(options, name_copy)
    actions: list[Action] = []
    consumed: set[str] = set()
    actions += planner.local_dir_moves(by_path, consumed)
    actions += planner.remote_dir_moves(by_path, consumed)
    actions += planner.local_moves(by_path, consumed)
    actions += planner.remote_moves(by_path, consumed)
    for path in sorted(by_path):
        if path not in consumed:
            actions += planner.decide(by_path[path])
    return _ordered(_hold_busy_rmdirs(_skip_under_blocked(actions), by_path.values(), name_copy))


_INTO_REMOTE_FOLDER = frozenset({ActionKind.UPLOAD, ActionKind.MKDIR_REMOTE, ActionKind.MOVE_REMOTE})
_FromRows = (
    Upload
    | Download
    | Record
    | DeleteRemote
    | TrashLocal
    | Forget
    | MkdirLocal
    | MkdirRemote
    | RmdirLocal
    | RmdirRemote
    | Skip
)
"""The kinds built from one path's rows alone (no second path, no replaced id)."""


def _skip_under_blocked(actions: list[Action]) -> list[Action]:
    """A local folder whose name the remote gives to a file, with no way to settle it this time (a
    push-only library cannot rename the local folder, nor delete a file it did not put there): nothing
    can be put under that name remotely, so the actions that would are reported as SKIP instead of
    being refused by the executor on every pass."""
    blocked = [
        a.path
        for a in actions
        if isinstance(a, Skip)
        and a.local is not None
        and a.local.is_dir
        and a.remote is not None
        and not a.remote.is_dir
    ]
    if not blocked:
        return actions
    out: list[Action] = []
    for a in actions:
        under = next((b for b in blocked if a.path.startswith(b + "/")), None)
        if under is not None and a.kind in _INTO_REMOTE_FOLDER:
            reason = f"the remote has a file named {under!r}: rename the local folder to sync what is in it"
            out.append(Skip(a.path, reason, local=a.local, remote=a.remote, synced=a.synced))
            if (src := moved_from(a)) is not None:  # the move's source stays as it is on the server, reported too
                out.append(Skip(src, reason, remote=a.remote, synced=a.synced))
            continue
        out.append(a)
    return out


def _hold_busy_rmdirs(
    actions: list[Action], states: Iterable[PathState], name_copy: Callable[[str, bool], str]
) -> list[Action]:
    """Turn RMDIR_* into SKIP when the folder keeps a child this round (e.g. an unsynced local edit).

    Without this a folder deleted on one side but holding a change on the other would get an RMDIR
    that the executor refuses every pass. Children removed by this plan (trash, delete, move away,
    an inner RMDIR) do not count; folders are checked deepest first so inner RMDIRs are known.

    One exception: a local folder the remote replaced by a FILE of the same name cannot stay, or the
    two kinds would fight over the name for ever (its new children could never be uploaded): the
    folder becomes a conflict copy, the remote file takes the name, and the copy is pushed as new.
    """
    gone: dict[ActionKind, set[str]] = {ActionKind.RMDIR_LOCAL: set(), ActionKind.RMDIR_REMOTE: set()}
    for a in actions:
        match a:
            case TrashLocal():
                gone[ActionKind.RMDIR_LOCAL].add(a.path)
            case MoveLocal() | ConflictCopy():
                gone[ActionKind.RMDIR_LOCAL].add(a.src)
            case DeleteRemote():
                gone[ActionKind.RMDIR_REMOTE].add(a.path)
            case MoveRemote():
                gone[ActionKind.RMDIR_REMOTE].add(a.src)
            case _:
                pass

    def stays(path: str, side: ActionKind) -> bool:
        parts = path.split("/")
        return not any("/".join(parts[:n]) in gone[side] for n in range(1, len(parts) + 1))

    present: dict[ActionKind, list[str]] = {
        ActionKind.RMDIR_LOCAL: sorted(s.local.path for s in states if s.local is not None),
        ActionKind.RMDIR_REMOTE: sorted(s.remote.path for s in states if s.remote is not None),
    }
    held: dict[int, Action] = {}
    rmdirs = sorted(
        ((i, a) for i, a in enumerate(actions) if a.kind in _RMDIRS), key=lambda ia: ia[1].path, reverse=True
    )
    for i, a in rmdirs:
        busy = [p for p in _subtree(present[a.kind], a.path) if stays(p, a.kind)][:1]
        if busy and a.kind is ActionKind.RMDIR_LOCAL and a.remote is not None and not a.remote.is_dir:
            held[i] = ConflictCopy(
                path=name_copy(a.path, True),
                src=a.path,
                reason=f"{a.reason}, but {busy[0]} stays: the local folder is kept as a copy",
                local=a.local,
                remote=a.remote,
                synced=a.synced,
            )
        elif busy:
            held[i] = Skip(
                path=a.path,
                reason=f"{a.reason}, but {busy[0]} stays",
                local=a.local,
                remote=a.remote,
                synced=a.synced,
            )
        else:
            gone[a.kind].add(a.path)
    return [held.get(i, a) for i, a in enumerate(actions)]


def _ordered(actions: Iterable[Action]) -> list[Action]:
    def key(a: Action) -> tuple[str, int, str]:
        return (a.path, _KIND_ORDER[a.kind], moved_from(a) or "")

    items = list(actions)
    mkdirs = sorted((a for a in items if a.kind in _MKDIRS), key=key)
    rmdirs = sorted((a for a in items if a.kind in _RMDIRS), key=key, reverse=True)
    rest = sorted((a for a in items if a.kind not in _MKDIRS and a.kind not in _RMDIRS), key=key)
    return mkdirs + rest + rmdirs


def _self_and_ancestors(path: str) -> list[str]:
    """``a/b/c`` → ``a/b/c``, ``a/b``, ``a``."""
    out = [path]
    while "/" in path:
        path = path.rpartition("/")[0]
        out.append(path)
    return out


def _subtree(ordered: Sequence[str], folder: str) -> Sequence[str]:
    """The paths strictly under ``folder`` in the sorted ``ordered``: one contiguous range."""
    prefix = folder + "/"
    lo = bisect.bisect_left(ordered, prefix)
    hi = bisect.bisect_left(ordered, folder + "0")  # "0" sorts right after "/"
    return ordered[lo:hi]


def _under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` itself or lies inside it."""
    return path == folder or path.startswith(folder + "/")


def _remote_same_content(remote: RemoteRow, base: SyncedRow) -> bool:
    """True when the remote item provably holds the base content (same version, or same digest)."""
    if remote.remote_id == base.remote_id and remote.version == base.remote_version:
        return True
    return remote.digest is not None and base.digest is not None and remote.digest == base.digest


def _local_change(local: LocalRow | None, base: SyncedRow | None) -> _Change:
    if local is None:
        return _Change.ABSENT if base is None else _Change.DELETED
    if base is None or base.is_dir != local.is_dir:
        return _Change.NEW
    if local.is_dir or local.digest == base.digest:
        return _Change.UNCHANGED
    return _Change.CHANGED


def _remote_change(remote: RemoteRow | None, base: SyncedRow | None) -> _Change:
    if remote is None:
        return _Change.ABSENT if base is None else _Change.DELETED
    if base is None or base.is_dir != remote.is_dir:
        return _Change.NEW
    if remote.is_dir:
        return _Change.UNCHANGED if remote.remote_id == base.remote_id else _Change.META
    if remote.remote_id == base.remote_id and remote.version == base.remote_version:
        return _Change.UNCHANGED
    if remote.digest is not None and remote.digest == base.digest:
        return _Change.META
    return _Change.CHANGED


def _same_digest(local: LocalRow | None, remote: RemoteRow | None) -> bool:
    """Both sides hold the same bytes, as far as we can prove it (an unknown digest proves nothing)."""
    return (
        local is not None
        and remote is not None
        and local.digest is not None
        and remote.digest is not None
        and local.digest == remote.digest
    )


def _stat_drifted(local: LocalRow, base: SyncedRow) -> bool:
    """Same content but different size/mtime/inode: refresh the base so the scanner can trust stat."""
    return (local.size, local.mtime_ns, local.inode) != (base.size, base.local_mtime_ns, base.local_inode)


class _Planner:
    """Per-path decisions; holds only the options and the conflict-name allocator."""

    def __init__(self, options: PlanOptions, name_copy: Callable[[str, bool], str]) -> None:
        self.options = options
        self.name_copy = name_copy

    # -- emitting ---------------------------------------------------------------------------------

    def emit(self, cls: type[_FromRows], state: PathState, reason: str) -> Action:
        """An action of ``cls`` on ``state``'s path and rows, or a SKIP when the direction forbids it."""
        return self.allowed(state, cls(state.path, reason, local=state.local, remote=state.remote, synced=state.synced))

    def allowed(self, state: PathState, action: Action) -> Action:
        """``action``, or a SKIP of ``state`` when the library's direction forbids its kind."""
        direction = self.options.direction
        if (direction is Direction.PULL and action.kind in _PULL_FORBIDDEN) or (
            direction is Direction.PUSH and action.kind in _PUSH_FORBIDDEN
        ):
            return self.refused(state, action.kind, action.reason)
        return action

    def refused(self, state: PathState, kind: ActionKind, reason: str) -> Skip:
        """The SKIP that reports ``kind`` on ``state`` as forbidden by the library's direction."""
        return Skip(
            path=state.path,
            reason=f"{reason}; {self.options.direction.value} library does not {kind.value}",
            local=state.local,
            remote=state.remote,
            synced=state.synced,
        )

    def conflict_copy(self, state: PathState, reason: str) -> Action:
        assert state.local is not None
        if self.options.direction is Direction.PUSH:
            return self.refused(state, ActionKind.CONFLICT_COPY, reason)  # no copy name is taken
        copy = self.name_copy(state.path, state.local.is_dir)
        return self.allowed(
            state,
            ConflictCopy(copy, reason, local=state.local, remote=state.remote, synced=state.synced, src=state.path),
        )

    # -- moves ------------------------------------------------------------------------------------

    def local_dir_moves(self, by_path: dict[str, PathState], consumed: set[str]) -> list[Action]:
        """Synced folder gone locally at A, a new local folder B has A's inode, remote A unchanged:
        rename the remote folder in one call instead of re-creating everything under it."""
        if self.options.direction is Direction.PULL or not self.options.can_move_remote_dir:
            return []
        sources: dict[int, list[PathState]] = defaultdict(list)
        targets: dict[int, list[PathState]] = defaultdict(list)
        for s in by_path.values():
            b, loc, rem = s.synced, s.local, s.remote
            if (
                b is not None
                and b.is_dir
                and b.local_inode
                and loc is None
                and rem is not None
                and rem.is_dir
                and rem.remote_id == b.remote_id
            ):
                sources[b.local_inode].append(s)
            if b is None and rem is None and loc is not None and loc.is_dir and loc.inode:
                targets[loc.inode].append(s)
        pairs = [
            (sources[inode][0], targets[inode][0])
            for inode in sources
            if len(sources[inode]) == 1 and len(targets.get(inode, [])) == 1
        ]
        actions: list[Action] = []
        for src, dst in self._independent(pairs, by_path, consumed):
            actions.append(
                MoveRemote(
                    path=dst.path,
                    src=src.path,
                    reason="folder moved locally, remote unchanged",
                    local=dst.local,
                    remote=src.remote,
                    synced=src.synced,
                )
            )
        return actions

    def remote_dir_moves(self, by_path: dict[str, PathState], consumed: set[str]) -> list[Action]:
        """Remote folder id gone from A and present at B, local folder A still there: one local rename."""
        if self.options.direction is Direction.PUSH:
            return []
        sources: dict[str, list[PathState]] = defaultdict(list)
        targets: dict[str, list[PathState]] = defaultdict(list)
        for s in by_path.values():
            b, loc, rem = s.synced, s.local, s.remote
            local_dir_kept = loc is not None and loc.is_dir
            if b is not None and b.is_dir and b.remote_id is not None and rem is None and local_dir_kept:
                sources[b.remote_id].append(s)
            if b is None and loc is None and rem is not None and rem.is_dir:
                targets[rem.remote_id].append(s)
        pairs = [
            (sources[rid][0], targets[rid][0])
            for rid in sources
            if len(sources[rid]) == 1 and len(targets.get(rid, [])) == 1
        ]
        actions: list[Action] = []
        for src, dst in self._independent(pairs, by_path, consumed):
            actions.append(
                MoveLocal(
                    path=dst.path,
                    src=src.path,
                    reason="folder moved remotely, local unchanged",
                    local=src.local,
                    remote=dst.remote,
                    synced=src.synced,
                )
            )
        return actions

    @staticmethod
    def _independent(
        pairs: list[tuple[PathState, PathState]], by_path: dict[str, PathState], consumed: set[str]
    ) -> list[tuple[PathState, PathState]]:
        """Folder moves that touch no other move's subtree, outermost first; their subtrees are consumed.

        A folder inside a moved folder moves with it; if it was renamed as well, that rename is found
        again in the next round, against the rows at the new place.
        """
        chosen: list[tuple[PathState, PathState]] = []
        if not pairs:
            return chosen
        # linear in the paths: "some consumed path is r, under r or above r" is answered from the set of
        # consumed paths and their ancestors; a subtree is a contiguous range of the sorted paths
        touched = {a for c in consumed for a in _self_and_ancestors(c)}
        ordered = sorted(by_path)
        for src, dst in sorted(pairs, key=lambda p: (p[0].path.count("/"), p[0].path)):
            roots = (src.path, dst.path)
            if any(r in touched or any(a in consumed for a in _self_and_ancestors(r)) for r in roots):
                continue
            chosen.append((src, dst))
            for root in roots:
                for p in (root, *_subtree(ordered, root)):
                    if p in by_path and p not in consumed:
                        consumed.add(p)
                        touched.update(_self_and_ancestors(p))
        return chosen

    def local_moves(self, by_path: dict[str, PathState], consumed: set[str]) -> list[Action]:
        """Local file gone at A, same content new at B, remote A unchanged: rename remotely."""
        if self.options.direction is Direction.PULL or not self.options.can_move_remote:
            return []
        sources: dict[str, list[PathState]] = defaultdict(list)
        targets: dict[str, list[PathState]] = defaultdict(list)
        for s in by_path.values():
            if s.path in consumed:
                continue
            b, loc, rem = s.synced, s.local, s.remote
            if (
                b is not None
                and not b.is_dir
                and b.digest is not None
                and loc is None
                and rem is not None
                and not rem.is_dir
                and _remote_same_content(rem, b)
            ):
                sources[b.digest].append(s)
            if b is None and rem is None and loc is not None and not loc.is_dir and loc.digest is not None:
                targets[loc.digest].append(s)
        actions: list[Action] = []
        for digest in sorted(sources):
            if len(sources[digest]) != 1 or len(targets.get(digest, [])) != 1:
                continue  # ambiguous or no match: per-path create + delete
            src, dst = sources[digest][0], targets[digest][0]
            consumed.update((src.path, dst.path))
            actions.append(
                MoveRemote(
                    path=dst.path,
                    src=src.path,
                    reason="moved locally, remote unchanged",
                    local=dst.local,
                    remote=src.remote,
                    synced=src.synced,
                )
            )
        return actions

    def remote_moves(self, by_path: dict[str, PathState], consumed: set[str]) -> list[Action]:
        """Remote id gone from A and present at B with the same content, local A unchanged: rename."""
        if self.options.direction is Direction.PUSH:
            return []
        sources: dict[str, list[PathState]] = defaultdict(list)
        targets: dict[str, list[PathState]] = defaultdict(list)
        for s in by_path.values():
            rem = s.remote
            if s.synced is None and s.local is None and rem is not None and not rem.is_dir and s.path not in consumed:
                targets[rem.remote_id].append(s)
        if not targets:  # a move needs a new place: without one, no source is worth collecting
            return []
        for s in by_path.values():
            if s.path in consumed:
                continue
            b, loc, rem = s.synced, s.local, s.remote
            if (
                b is not None
                and not b.is_dir
                and b.remote_id is not None
                and b.remote_id in targets
                and rem is None
                and loc is not None
                and not loc.is_dir
            ):
                # local unchanged: a plain rename. Local changed: follow the rename first and push the
                # change at the new path next round. (Pushing it as a new file at the old path left two
                # remote files with one name when the engine itself renamed the remote entry, e.g. a
                # case-insensitive name clash; found by the simulation.)
                sources[b.remote_id].append(s)
        actions: list[Action] = []
        for rid in sorted(sources):
            if len(sources[rid]) != 1 or len(targets.get(rid, [])) != 1:
                continue
            src, dst = sources[rid][0], targets[rid][0]
            assert src.synced is not None and dst.remote is not None
            if not _remote_same_content(dst.remote, src.synced):
                continue  # moved and edited: download B, trash A
            consumed.update((src.path, dst.path))
            assert src.local is not None
            changed = src.local.digest != src.synced.digest
            actions.append(
                MoveLocal(
                    path=dst.path,
                    src=src.path,
                    reason="moved remotely, local changed: follow the move, push the change next"
                    if changed
                    else "moved remotely, local unchanged",
                    local=src.local,
                    remote=dst.remote,
                    synced=src.synced,
                )
            )
        return actions

    # -- one path ---------------------------------------------------------------------------------

    def decide(self, s: PathState) -> list[Action]:
        loc, rem = s.local, s.remote
        if loc is None and rem is None and s.synced is None:
            return []
        if loc is not None and rem is not None and loc.is_dir != rem.is_dir:
            return [self.kind_clash(s)]
        lc, rc = _local_change(loc, s.synced), _remote_change(rem, s.synced)
        # A side that replaced the base by the other kind (file <-> folder): the other side can only
        # be gone or replaced the same way here (a kind clash was handled above), so the new item is
        # decided as if there were no base.
        if lc is _Change.NEW and rc is _Change.DELETED:
            rc = _Change.ABSENT
        if rc is _Change.NEW and lc is _Change.DELETED:
            lc = _Change.ABSENT
        if loc is not None:
            is_dir = loc.is_dir
        elif rem is not None:
            is_dir = rem.is_dir
        else:
            is_dir = s.synced is not None and s.synced.is_dir
        if is_dir:
            return self.decide_dir(s, lc, rc)
        return self.decide_file(s, lc, rc)

    def kind_clash(self, s: PathState) -> Action:
        """A file on one side and a folder on the other. Never lose content: rename the local one."""
        loc, rem, b = s.local, s.remote, s.synced
        assert loc is not None and rem is not None
        if not loc.is_dir:
            if b is not None and not b.is_dir and loc.digest == b.digest:
                return self.emit(TrashLocal, s, "remote replaced the synced file by a folder")
            return self.conflict_copy(s, "local file, remote folder")
        if b is not None and b.is_dir:
            return self.emit(RmdirLocal, s, "remote replaced the folder by a file")
        if b is not None and _remote_same_content(rem, b):
            if not self.options.propagate_deletes:
                reason = "local replaced the file by a folder; deletes not propagated"
                return self.emit(Skip, s, reason)
            return self.emit(DeleteRemote, s, "local replaced the synced file by a folder")
        return self.conflict_copy(s, "local folder, remote file")

    def decide_dir(self, s: PathState, lc: _Change, rc: _Change) -> list[Action]:
        C = _Change
        if lc is C.ABSENT and rc is C.NEW:
            return [self.emit(MkdirLocal, s, "new remote folder")]
        if lc is C.NEW and rc is C.ABSENT:
            if not self.options.has_remote_dirs:
                return [self.emit(Skip, s, "new local folder; provider has no folders")]
            return [self.emit(MkdirRemote, s, "new local folder")]
        if lc is C.NEW and rc is C.NEW:
            return [self.emit(Record, s, "folder created on both sides")]
        if lc is C.UNCHANGED and rc is C.META:
            return [self.emit(Record, s, "remote folder id changed")]
        if lc is C.UNCHANGED and rc is C.DELETED:
            return [self.emit(RmdirLocal, s, "remote folder deleted")]
        if lc is C.DELETED and rc in (C.UNCHANGED, C.META):
            if not self.options.propagate_deletes:
                return [self.emit(Skip, s, "local folder deleted; deletes not propagated")]
            return [self.emit(RmdirRemote, s, "local folder deleted")]
        if lc is C.DELETED and rc is C.DELETED:
            return [self.emit(Forget, s, "folder deleted on both sides")]
        return []  # unchanged on both sides

    def decide_file(self, s: PathState, lc: _Change, rc: _Change) -> list[Action]:
        C = _Change
        loc, rem, b = s.local, s.remote, s.synced
        unchanged_remote = rc in (C.UNCHANGED, C.META)
        if lc is C.ABSENT and rc is C.NEW:
            return [self.emit(Download, s, "new remote file")]
        if lc is C.NEW and rc is C.ABSENT:
            return [self.emit(Upload, s, "new local file")]
        if (lc, rc) in ((C.NEW, C.NEW), (C.CHANGED, C.CHANGED)):
            what = "new" if lc is C.NEW else "changed"
            if _same_digest(loc, rem):
                return [self.emit(Record, s, f"{what} on both sides, same content")]
            return [self.conflict_copy(s, f"{what} on both sides, different or unknown content")]
        if lc is C.UNCHANGED:
            assert loc is not None and b is not None
            if rc is C.UNCHANGED:
                if _stat_drifted(loc, b):
                    return [self.emit(Record, s, "local metadata changed, content same")]
                return []
            if rc is C.META:
                return [self.emit(Record, s, "remote metadata changed, content same")]
            if rc is C.CHANGED:
                return [self.emit(Download, s, "remote changed, local unchanged")]
            return [self.emit(TrashLocal, s, "remote deleted, local unchanged")]
        if lc is C.CHANGED:
            if unchanged_remote:
                assert rem is not None
                replace = rem.remote_id if self.options.can_update_remote else None
                reason = "local changed, remote unchanged"
                upload = Upload(s.path, reason, local=loc, remote=rem, synced=b, replace_id=replace)
                return [self.allowed(s, upload)]
            return [self.emit(Upload, s, "local changed, remote deleted: the change wins")]
        # lc is DELETED
        if unchanged_remote:
            if not self.options.propagate_deletes:
                return [self.emit(Skip, s, "local deleted; deletes not propagated")]
            return [self.emit(DeleteRemote, s, "local deleted, remote unchanged")]
        if rc is C.CHANGED:
            return [self.emit(Download, s, "local deleted, remote changed: the change wins")]
        return [self.emit(Forget, s, "deleted on both sides")]
