"""One test per row of DESIGN.md's decision table, the classic change matrix, directions and moves."""

from __future__ import annotations

import random

import pytest

from daemon.sync.plan import conflict_copy_name, plan
from daemon.vocab import (
    Action,
    ActionKind,
    Direction,
    LocalRow,
    MkdirRemote,
    MoveRemote,
    PathState,
    PlanOptions,
    RemoteRow,
    RmdirRemote,
    Skip,
    SyncedRow,
    moved_from,
)
from tests.sync.simulated import md5

K = ActionKind
NOW = "2024-05-01 120000"
TWO_WAY = PlanOptions()
PULL = PlanOptions(direction=Direction.PULL)
PUSH = PlanOptions(direction=Direction.PUSH)


def loc(path: str, content: bytes | None = None) -> LocalRow:
    if content is None:
        return LocalRow(path=path, is_dir=True)
    return LocalRow(path=path, size=len(content), digest=md5(content))


def rem(path: str, rid: str, version: str, content: bytes | None = None, *, digest: bool = True) -> RemoteRow:
    if content is None:
        return RemoteRow(path=path, remote_id=rid, is_dir=True, version=version)
    return RemoteRow(
        path=path, remote_id=rid, size=len(content), digest=md5(content) if digest else None, version=version
    )


def base(path: str, rid: str, version: str, content: bytes | None = None) -> SyncedRow:
    if content is None:
        return SyncedRow(path=path, is_dir=True, remote_id=rid, remote_version=version)
    return SyncedRow(path=path, digest=md5(content), size=len(content), remote_id=rid, remote_version=version)


def one(state: PathState, options: PlanOptions = TWO_WAY) -> Action:
    actions = plan([state], options, now_label=NOW)
    assert len(actions) == 1, actions
    return actions[0]


P = "docs/a.txt"
SYNCED = base(P, "r1", "v1", b"old")
SAME_LOCAL = loc(P, b"old")
SAME_REMOTE = rem(P, "r1", "v1", b"old")


# -- the classic change matrix ----------------------------------------------------------------------

MATRIX = [
    ("new local", loc(P, b"x"), None, None, K.UPLOAD),
    ("new remote", None, rem(P, "r1", "v1", b"x"), None, K.DOWNLOAD),
    ("changed local", loc(P, b"new"), SAME_REMOTE, SYNCED, K.UPLOAD),
    ("changed remote", SAME_LOCAL, rem(P, "r1", "v2", b"new"), SYNCED, K.DOWNLOAD),
    ("deleted local", None, SAME_REMOTE, SYNCED, K.DELETE_REMOTE),
    ("deleted remote", SAME_LOCAL, None, SYNCED, K.TRASH_LOCAL),
    ("changed both, equal", loc(P, b"new"), rem(P, "r1", "v2", b"new"), SYNCED, K.RECORD),
    ("changed both, different", loc(P, b"mine"), rem(P, "r1", "v2", b"theirs"), SYNCED, K.CONFLICT_COPY),
    ("changed local, deleted remote", loc(P, b"new"), None, SYNCED, K.UPLOAD),
    ("deleted local, changed remote", None, rem(P, "r1", "v2", b"new"), SYNCED, K.DOWNLOAD),
    ("deleted both", None, None, SYNCED, K.FORGET),
]


@pytest.mark.parametrize(("local", "remote", "synced", "kind"), [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
def test_each_change_matrix_row_plans_its_action_on_the_rows_it_saw(
    local: LocalRow | None, remote: RemoteRow | None, synced: SyncedRow | None, kind: ActionKind
) -> None:
    action = one(PathState(P, local, remote, synced))
    assert action.kind is kind
    assert (action.local, action.remote, action.synced) == (local, remote, synced)
    assert action.reason


def test_in_sync_paths_give_nothing() -> None:
    states = [
        PathState(P, SAME_LOCAL, SAME_REMOTE, SYNCED),
        PathState("docs", loc("docs"), rem("docs", "d1", "dv"), base("docs", "d1", "dv")),
        PathState("ghost"),
    ]
    assert plan(states, TWO_WAY, now_label=NOW) == []


# -- the decision table, row by row ----------------------------------------------------------------


def test_local_changed_remote_unchanged_updates_in_place() -> None:
    action = one(PathState(P, loc(P, b"new"), SAME_REMOTE, SYNCED))
    assert action.kind is K.UPLOAD
    assert action.replace_id == "r1"
    assert action.remote == SAME_REMOTE  # the precondition (snapshot_id) travels with the action
    assert action.reason == "local changed, remote unchanged"


def test_local_changed_without_update_capability_creates_and_carries_the_old_object() -> None:
    action = one(PathState(P, loc(P, b"new"), SAME_REMOTE, SYNCED), PlanOptions(can_update_remote=False))
    assert action.kind is K.UPLOAD
    assert action.replace_id is None
    assert action.remote == SAME_REMOTE


def test_new_local_file_is_created() -> None:
    action = one(PathState(P, loc(P, b"x")))
    assert (action.kind, action.remote, action.replace_id) == (K.UPLOAD, None, None)


def test_remote_changed_local_unchanged_downloads() -> None:
    assert one(PathState(P, SAME_LOCAL, rem(P, "r1", "v2", b"new"), SYNCED)).kind is K.DOWNLOAD


def test_remote_changed_without_digest_downloads() -> None:
    remote = rem(P, "r1", "v2", b"old", digest=False)
    assert one(PathState(P, SAME_LOCAL, remote, SYNCED)).kind is K.DOWNLOAD


def test_remote_version_moved_but_same_digest_is_only_recorded() -> None:
    action = one(PathState(P, SAME_LOCAL, rem(P, "r1", "v9", b"old"), SYNCED))
    assert action.kind is K.RECORD
    assert "metadata" in action.reason


def test_remote_id_changed_same_digest_is_only_recorded() -> None:
    assert one(PathState(P, SAME_LOCAL, rem(P, "r7", "v1", b"old"), SYNCED)).kind is K.RECORD


def test_local_change_over_metadata_only_remote_change_uploads() -> None:
    remote = rem(P, "r1", "v9", b"old")
    action = one(PathState(P, loc(P, b"new"), remote, SYNCED))
    assert (action.kind, action.replace_id, action.remote) == (K.UPLOAD, "r1", remote)


def test_changed_both_same_digest_records() -> None:
    action = one(PathState(P, loc(P, b"same"), rem(P, "r1", "v2", b"same"), SYNCED))
    assert action.kind is K.RECORD


def test_changed_both_different_makes_a_conflict_copy_of_the_local_file() -> None:
    action = one(PathState(P, loc(P, b"mine"), rem(P, "r1", "v2", b"theirs"), SYNCED))
    assert action.kind is K.CONFLICT_COPY
    assert action.src == P
    assert action.path == "docs/a (conflicted copy 2024-05-01 120000).txt"
    assert action.local == loc(P, b"mine")


def test_changed_both_with_unknown_remote_digest_is_a_conflict() -> None:
    remote = rem(P, "r1", "v2", b"mine", digest=False)
    assert one(PathState(P, loc(P, b"mine"), remote, SYNCED)).kind is K.CONFLICT_COPY


def test_new_both_same_digest_records() -> None:
    assert one(PathState(P, loc(P, b"x"), rem(P, "r1", "v1", b"x"))).kind is K.RECORD


@pytest.mark.parametrize("digest", [True, False], ids=["different", "unknown"])
def test_new_both_different_or_unknown_is_a_conflict(digest: bool) -> None:
    remote = rem(P, "r1", "v1", b"theirs" if digest else b"mine", digest=digest)
    assert one(PathState(P, loc(P, b"mine"), remote)).kind is K.CONFLICT_COPY


def test_local_deleted_remote_unchanged_deletes_remote() -> None:
    action = one(PathState(P, None, SAME_REMOTE, SYNCED))
    assert action.kind is K.DELETE_REMOTE
    assert action.is_destructive


def test_local_deleted_remote_metadata_only_still_deletes_remote() -> None:
    assert one(PathState(P, None, rem(P, "r1", "v5", b"old"), SYNCED)).kind is K.DELETE_REMOTE


def test_local_deleted_without_propagate_deletes_is_skipped() -> None:
    action = one(PathState(P, None, SAME_REMOTE, SYNCED), PlanOptions(propagate_deletes=False))
    assert action.kind is K.SKIP
    assert "not propagated" in action.reason


def test_remote_deleted_local_unchanged_trashes_local() -> None:
    action = one(PathState(P, SAME_LOCAL, None, SYNCED))
    assert action.kind is K.TRASH_LOCAL
    assert action.local == SAME_LOCAL


def test_local_deleted_remote_changed_downloads() -> None:
    assert one(PathState(P, None, rem(P, "r1", "v2", b"new"), SYNCED)).kind is K.DOWNLOAD


def test_local_changed_remote_deleted_uploads_as_create() -> None:
    action = one(PathState(P, loc(P, b"new"), None, SYNCED))
    assert (action.kind, action.remote, action.replace_id) == (K.UPLOAD, None, None)


def test_deleted_both_forgets() -> None:
    assert one(PathState(P, None, None, SYNCED)).kind is K.FORGET


def test_local_stat_drift_with_same_content_refreshes_the_base() -> None:
    local = LocalRow(path=P, size=3, mtime_ns=99, inode=5, digest=md5(b"old"))
    assert one(PathState(P, local, SAME_REMOTE, SYNCED)).kind is K.RECORD


# -- moves -----------------------------------------------------------------------------------------

A, B = "a/x.pdf", "b/x.pdf"
MOVE_BASE = base(A, "r1", "v1", b"pdf")


def local_move_states(remote_a: RemoteRow | None = None) -> list[PathState]:
    remote_a = remote_a or rem(A, "r1", "v1", b"pdf")
    return [PathState(A, None, remote_a, MOVE_BASE), PathState(B, loc(B, b"pdf"))]


def test_local_move_becomes_a_remote_move() -> None:
    [action] = plan(local_move_states(), TWO_WAY, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_REMOTE, A, B)
    assert action.remote == rem(A, "r1", "v1", b"pdf")
    assert action.local == loc(B, b"pdf")
    assert action.synced == MOVE_BASE


def test_local_move_without_move_capability_is_create_plus_delete() -> None:
    actions = plan(local_move_states(), PlanOptions(can_move_remote=False), now_label=NOW)
    assert [(a.kind, a.path) for a in actions] == [(K.DELETE_REMOTE, A), (K.UPLOAD, B)]


def test_local_move_with_remote_edit_is_not_a_move() -> None:
    actions = plan(local_move_states(rem(A, "r1", "v2", b"edited")), TWO_WAY, now_label=NOW)
    assert [(a.kind, a.path) for a in actions] == [(K.DOWNLOAD, A), (K.UPLOAD, B)]


def test_ambiguous_local_move_falls_back_to_create_and_delete() -> None:
    states = [*local_move_states(), PathState("c/x.pdf", loc("c/x.pdf", b"pdf"))]
    kinds = sorted((a.kind.value, a.path) for a in plan(states, TWO_WAY, now_label=NOW))
    assert kinds == [("delete_remote", A), ("upload", B), ("upload", "c/x.pdf")]


def test_local_move_in_pull_mode_is_skipped() -> None:
    actions = plan(local_move_states(), PULL, now_label=NOW)
    assert {a.kind for a in actions} == {K.SKIP}


def remote_move_states(remote_b: RemoteRow | None = None) -> list[PathState]:
    remote_b = remote_b or rem(B, "r1", "v1", b"pdf")
    return [PathState(A, loc(A, b"pdf"), None, MOVE_BASE), PathState(B, None, remote_b)]


def test_remote_move_becomes_a_local_move() -> None:
    [action] = plan(remote_move_states(), TWO_WAY, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_LOCAL, A, B)
    assert action.local == loc(A, b"pdf")
    assert action.remote == rem(B, "r1", "v1", b"pdf")


def test_remote_move_with_local_edit_follows_the_move_first() -> None:
    """Moved remotely, edited locally: the local file follows the move (edit kept), the push comes next."""
    states = [PathState(A, loc(A, b"edited here"), None, MOVE_BASE), PathState(B, None, rem(B, "r1", "v1", b"pdf"))]
    [action] = plan(states, TWO_WAY, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_LOCAL, A, B)
    assert "local changed" in action.reason


def test_remote_move_with_edit_downloads_and_trashes() -> None:
    actions = plan(remote_move_states(rem(B, "r1", "v2", b"edited")), TWO_WAY, now_label=NOW)
    assert [(a.kind, a.path) for a in actions] == [(K.TRASH_LOCAL, A), (K.DOWNLOAD, B)]


def test_remote_move_in_push_mode_is_skipped() -> None:
    actions = plan(remote_move_states(), PUSH, now_label=NOW)
    assert {a.kind for a in actions} == {K.SKIP}


# -- folder moves ----------------------------------------------------------------------------------

MOVE_DIRS = PlanOptions(can_move_remote_dir=True)
INODE = 4711


def dir_base(path: str, rid: str) -> SyncedRow:
    return SyncedRow(path=path, is_dir=True, remote_id=rid, remote_version="dv", local_inode=INODE)


def local_dir_move_states(*, inode: int = INODE) -> list[PathState]:
    """Folder "old" (with a file and a subfolder) renamed locally to "new"; the remote is unchanged."""
    f_base = base("old/f.txt", "rf", "v1", b"f")
    sub_base = SyncedRow(path="old/sub", is_dir=True, remote_id="rs", remote_version="dv", local_inode=99)
    return [
        PathState("old", None, rem("old", "rd", "dv"), dir_base("old", "rd")),
        PathState("old/f.txt", None, rem("old/f.txt", "rf", "v1", b"f"), f_base),
        PathState("old/sub", None, rem("old/sub", "rs", "dv"), sub_base),
        PathState("new", LocalRow(path="new", is_dir=True, inode=inode)),
        PathState("new/f.txt", loc("new/f.txt", b"f")),
        PathState("new/sub", LocalRow(path="new/sub", is_dir=True, inode=99)),
    ]


def test_local_folder_rename_is_one_remote_move() -> None:
    [action] = plan(local_dir_move_states(), MOVE_DIRS, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_REMOTE, "old", "new")
    assert action.remote == rem("old", "rd", "dv") and action.synced == dir_base("old", "rd")
    assert action.local == LocalRow(path="new", is_dir=True, inode=INODE)


def test_local_folder_rename_with_an_edit_inside_leaves_the_edit_for_the_next_round() -> None:
    states = local_dir_move_states()
    states[4] = PathState("new/f.txt", loc("new/f.txt", b"edited"))
    [action] = plan(states, MOVE_DIRS, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_REMOTE, "old", "new")


def test_local_folder_rename_without_the_capability_is_per_path() -> None:
    actions = plan(local_dir_move_states(), TWO_WAY, now_label=NOW)
    kinds = sorted((a.kind.value, a.path) for a in actions)
    assert ("move_remote", "new/f.txt") in kinds
    assert ("mkdir_remote", "new") in kinds and ("rmdir_remote", "old") in kinds


def at(states: list[PathState], path: str) -> PathState:
    return next(s for s in states if s.path == path)


def skip(state: PathState, reason: str) -> Skip:
    return Skip(state.path, reason, local=state.local, remote=state.remote, synced=state.synced)


def per_path_folder_rename(states: list[PathState]) -> list[Action]:
    """The plan of a local rename of "old" to "new" that is not one folder move: the new folder is
    created, what is inside moves path by path (the subfolder kept its inode: one folder move), and
    the emptied old folder is removed."""
    old, old_f, old_sub = at(states, "old"), at(states, "old/f.txt"), at(states, "old/sub")
    new, new_f, new_sub = at(states, "new"), at(states, "new/f.txt"), at(states, "new/sub")
    return [
        MkdirRemote("new", "new local folder", local=new.local),
        MoveRemote(
            "new/f.txt",
            "moved locally, remote unchanged",
            local=new_f.local,
            remote=old_f.remote,
            synced=old_f.synced,
            src="old/f.txt",
        ),
        MoveRemote(
            "new/sub",
            "folder moved locally, remote unchanged",
            local=new_sub.local,
            remote=old_sub.remote,
            synced=old_sub.synced,
            src="old/sub",
        ),
        RmdirRemote("old", "local folder deleted", remote=old.remote, synced=old.synced),
    ]


def test_local_folder_with_another_inode_is_not_a_rename_its_content_moves_path_by_path() -> None:
    states = local_dir_move_states(inode=INODE + 1)
    assert plan(states, MOVE_DIRS, now_label=NOW) == per_path_folder_rename(states)


def test_local_folder_rename_with_remote_folder_replaced_moves_its_content_path_by_path() -> None:
    states = local_dir_move_states()
    states[0] = PathState("old", None, rem("old", "other", "dv"), dir_base("old", "rd"))
    assert plan(states, MOVE_DIRS, now_label=NOW) == per_path_folder_rename(states)


def test_local_folder_rename_in_pull_mode_is_skipped_path_by_path() -> None:
    options = PlanOptions(direction=Direction.PULL, can_move_remote_dir=True)
    states = local_dir_move_states()
    assert plan(states, options, now_label=NOW) == [
        skip(at(states, "new"), "new local folder; pull library does not mkdir_remote"),
        skip(at(states, "new/f.txt"), "new local file; pull library does not upload"),
        skip(at(states, "new/sub"), "new local folder; pull library does not mkdir_remote"),
        skip(at(states, "old"), "local folder deleted; pull library does not rmdir_remote"),
        skip(at(states, "old/f.txt"), "local deleted, remote unchanged; pull library does not delete_remote"),
        skip(at(states, "old/sub"), "local folder deleted; pull library does not rmdir_remote"),
    ]


def remote_dir_move_states() -> list[PathState]:
    """Folder "old" moved remotely into "elsewhere/new" (same id); the local folder is unchanged."""
    return [
        PathState("old", LocalRow(path="old", is_dir=True, inode=INODE), None, dir_base("old", "rd")),
        PathState("old/f.txt", loc("old/f.txt", b"f"), None, base("old/f.txt", "rf", "v1", b"f")),
        PathState("elsewhere", None, rem("elsewhere", "re", "dv")),
        PathState("elsewhere/new", None, rem("elsewhere/new", "rd", "dv2")),
        PathState("elsewhere/new/f.txt", None, rem("elsewhere/new/f.txt", "rf", "v1", b"f")),
    ]


def test_remote_folder_move_is_one_local_rename() -> None:
    actions = plan(remote_dir_move_states(), TWO_WAY, now_label=NOW)
    assert [(a.kind, moved_from(a), a.path) for a in actions] == [
        (K.MKDIR_LOCAL, None, "elsewhere"),
        (K.MOVE_LOCAL, "old", "elsewhere/new"),
    ]
    move = actions[1]
    assert move.local == LocalRow(path="old", is_dir=True, inode=INODE)
    assert move.remote == rem("elsewhere/new", "rd", "dv2")


def test_remote_folder_move_in_push_mode_is_skipped_path_by_path() -> None:
    states = remote_dir_move_states()
    assert plan(states, PUSH, now_label=NOW) == [
        skip(at(states, "elsewhere"), "new remote folder; push library does not mkdir_local"),
        skip(at(states, "elsewhere/new"), "new remote folder; push library does not mkdir_local"),
        skip(at(states, "elsewhere/new/f.txt"), "new remote file; push library does not download"),
        skip(at(states, "old"), "remote folder deleted; push library does not rmdir_local"),
        skip(at(states, "old/f.txt"), "remote deleted, local unchanged; push library does not trash_local"),
    ]


def test_nested_folder_moves_take_the_outermost() -> None:
    states = [
        *local_dir_move_states(),
        # "old/sub" was also renamed to "new/sub2" inside the renamed folder: found again next round
    ]
    states[5] = PathState("new/sub2", LocalRow(path="new/sub2", is_dir=True, inode=99))
    [action] = plan(states, MOVE_DIRS, now_label=NOW)
    assert (action.kind, action.src, action.path) == (K.MOVE_REMOTE, "old", "new")


# -- folders ---------------------------------------------------------------------------------------

D = "projects"
D_BASE = base(D, "d1", "dv1")


def test_new_local_folder_is_created_remotely() -> None:
    assert one(PathState(D, loc(D))).kind is K.MKDIR_REMOTE


def test_new_local_folder_without_remote_folders_is_skipped() -> None:
    assert one(PathState(D, loc(D)), PlanOptions(has_remote_dirs=False)).kind is K.SKIP


def test_new_remote_folder_is_created_locally() -> None:
    assert one(PathState(D, None, rem(D, "d1", "dv1"))).kind is K.MKDIR_LOCAL


def test_new_folder_on_both_sides_is_recorded() -> None:
    assert one(PathState(D, loc(D), rem(D, "d1", "dv1"))).kind is K.RECORD


def test_folder_version_change_is_ignored_but_id_change_recorded() -> None:
    assert plan([PathState(D, loc(D), rem(D, "d1", "dv9"), D_BASE)], TWO_WAY, now_label=NOW) == []
    assert one(PathState(D, loc(D), rem(D, "d2", "dv1"), D_BASE)).kind is K.RECORD


def test_local_folder_deleted_removes_remote_folder() -> None:
    assert one(PathState(D, None, rem(D, "d1", "dv1"), D_BASE)).kind is K.RMDIR_REMOTE


def test_remote_folder_deleted_removes_local_folder() -> None:
    assert one(PathState(D, loc(D), None, D_BASE)).kind is K.RMDIR_LOCAL


def test_folder_deleted_on_both_sides_is_forgotten() -> None:
    assert one(PathState(D, None, None, D_BASE)).kind is K.FORGET


def test_rmdir_is_held_while_a_local_child_stays() -> None:
    child = f"{D}/notes.txt"
    states = [
        PathState(D, loc(D), None, D_BASE),
        PathState(child, loc(child, b"edited"), None, base(child, "r5", "v1", b"orig")),
    ]
    actions = plan(states, PULL, now_label=NOW)
    assert [(a.kind, a.path) for a in actions] == [(K.SKIP, D), (K.SKIP, child)]


def test_rmdir_goes_after_its_children_are_trashed() -> None:
    child = f"{D}/notes.txt"
    states = [
        PathState(D, loc(D), None, D_BASE),
        PathState(child, loc(child, b"orig"), None, base(child, "r5", "v1", b"orig")),
    ]
    actions = plan(states, TWO_WAY, now_label=NOW)
    assert [(a.kind, a.path) for a in actions] == [(K.TRASH_LOCAL, child), (K.RMDIR_LOCAL, D)]


def test_local_file_replaced_by_folder_deletes_the_synced_remote_file() -> None:
    action = one(PathState(D, loc(D), rem(D, "r1", "v1", b"old"), base(D, "r1", "v1", b"old")))
    assert action.kind is K.DELETE_REMOTE


def test_remote_file_replaced_by_folder_trashes_the_unchanged_local_file() -> None:
    action = one(PathState(D, loc(D, b"old"), rem(D, "d1", "dv1"), base(D, "r1", "v1", b"old")))
    assert action.kind is K.TRASH_LOCAL


def test_remote_folder_replaced_by_file_removes_the_local_folder() -> None:
    action = one(PathState(D, loc(D), rem(D, "r1", "v1", b"x"), D_BASE))
    assert action.kind is K.RMDIR_LOCAL


def test_changed_local_file_against_new_remote_folder_is_kept_as_a_copy() -> None:
    action = one(PathState(D, loc(D, b"edited"), rem(D, "d1", "dv1"), base(D, "r1", "v1", b"old")))
    assert (action.kind, action.src) == (K.CONFLICT_COPY, D)


def test_new_local_folder_against_new_remote_file_renames_the_folder() -> None:
    action = one(PathState("v1.0", loc("v1.0"), rem("v1.0", "r1", "v1", b"x")))
    assert (action.kind, action.path) == (K.CONFLICT_COPY, "v1.0 (conflicted copy 2024-05-01 120000)")


def test_local_file_replaced_by_folder_with_remote_deleted_creates_the_folder() -> None:
    assert one(PathState(D, loc(D), None, base(D, "r1", "v1", b"old"))).kind is K.MKDIR_REMOTE


# -- directions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "remote", "synced"),
    [
        (loc(P, b"x"), None, None),
        (loc(P, b"new"), SAME_REMOTE, SYNCED),
        (None, SAME_REMOTE, SYNCED),
        (loc(P, b"new"), None, SYNCED),
        (loc(D), None, None),
    ],
    ids=["new", "changed", "deleted", "changed-vs-deleted", "new-folder"],
)
def test_pull_leaves_local_changes_alone(
    local: LocalRow | None, remote: RemoteRow | None, synced: SyncedRow | None
) -> None:
    path = next(row.path for row in (local, remote, synced) if row is not None)
    action = one(PathState(path, local, remote, synced), PULL)
    assert action.kind is K.SKIP
    assert "pull" in action.reason


def test_pull_still_downloads_and_makes_conflict_copies() -> None:
    assert one(PathState(P, SAME_LOCAL, rem(P, "r1", "v2", b"new"), SYNCED), PULL).kind is K.DOWNLOAD
    conflict = PathState(P, loc(P, b"mine"), rem(P, "r1", "v2", b"theirs"), SYNCED)
    assert one(conflict, PULL).kind is K.CONFLICT_COPY


@pytest.mark.parametrize(
    ("local", "remote", "synced"),
    [
        (None, rem(P, "r1", "v1", b"x"), None),
        (SAME_LOCAL, rem(P, "r1", "v2", b"new"), SYNCED),
        (SAME_LOCAL, None, SYNCED),
        (None, rem(P, "r1", "v2", b"new"), SYNCED),
        (loc(P, b"mine"), rem(P, "r1", "v2", b"theirs"), SYNCED),
        (None, rem(D, "d1", "dv1"), None),
    ],
    ids=["new", "changed", "deleted", "deleted-vs-changed", "conflict", "new-folder"],
)
def test_push_leaves_remote_changes_alone(
    local: LocalRow | None, remote: RemoteRow | None, synced: SyncedRow | None
) -> None:
    path = next(row.path for row in (local, remote, synced) if row is not None)
    action = one(PathState(path, local, remote, synced), PUSH)
    assert action.kind is K.SKIP
    assert "push" in action.reason


def test_push_still_uploads_and_deletes() -> None:
    assert one(PathState(P, loc(P, b"new"), SAME_REMOTE, SYNCED), PUSH).kind is K.UPLOAD
    assert one(PathState(P, None, SAME_REMOTE, SYNCED), PUSH).kind is K.DELETE_REMOTE


# -- names and order -------------------------------------------------------------------------------


def test_conflict_copy_name_goes_before_the_extension_of_files_only() -> None:
    def free(_: str) -> bool:
        return False

    expected = "a/b/report (conflicted copy 2024-05-01 120000).pdf"
    assert conflict_copy_name("a/b/report.pdf", NOW, free) == expected
    assert conflict_copy_name("Makefile", NOW, free) == "Makefile (conflicted copy 2024-05-01 120000)"
    assert conflict_copy_name(".env", NOW, free) == ".env (conflicted copy 2024-05-01 120000)"
    assert conflict_copy_name("v1.2", NOW, free, is_dir=True) == "v1.2 (conflicted copy 2024-05-01 120000)"


def test_conflict_copy_name_counts_up_while_taken() -> None:
    taken = {"r (conflicted copy 2024-05-01 120000).txt", "r (conflicted copy 2024-05-01 120000) 2.txt"}
    expected = "r (conflicted copy 2024-05-01 120000) 3.txt"
    assert conflict_copy_name("r.txt", NOW, taken.__contains__) == expected


def test_conflict_copy_avoids_names_seen_in_the_states() -> None:
    copy = "docs/a (conflicted copy 2024-05-01 120000).txt"
    states = [
        PathState(P, loc(P, b"mine"), rem(P, "r1", "v2", b"theirs"), SYNCED),
        PathState(copy, None, rem(copy, "r9", "v1", b"other")),
    ]
    conflict = next(a for a in plan(states, TWO_WAY, now_label=NOW) if a.kind is K.CONFLICT_COPY)
    assert conflict.path == "docs/a (conflicted copy 2024-05-01 120000) 2.txt"


def test_order_is_deterministic_mkdirs_first_rmdirs_last() -> None:
    states = [
        PathState("old", None, rem("old", "d1", "v"), base("old", "d1", "v")),
        PathState("old/inner", None, rem("old/inner", "d2", "v"), base("old/inner", "d2", "v")),
        PathState("new", loc("new")),
        PathState("new/sub", loc("new/sub")),
        PathState("new/sub/f.txt", loc("new/sub/f.txt", b"f")),
        PathState("a.txt", None, rem("a.txt", "r3", "v", b"a")),
    ]
    expected = [
        (K.MKDIR_REMOTE, "new"),
        (K.MKDIR_REMOTE, "new/sub"),
        (K.DOWNLOAD, "a.txt"),
        (K.UPLOAD, "new/sub/f.txt"),
        (K.RMDIR_REMOTE, "old/inner"),
        (K.RMDIR_REMOTE, "old"),
    ]
    for seed in range(5):
        shuffled = states[:]
        random.Random(seed).shuffle(shuffled)
        assert [(a.kind, a.path) for a in plan(shuffled, TWO_WAY, now_label=NOW)] == expected


def test_a_folder_the_remote_replaced_by_a_file_gives_way_when_it_keeps_a_new_child() -> None:
    """Synced folder X with a new local child; remotely X became a file. The folder becomes a conflict
    copy (the file takes the name, the copy is pushed as new); holding the RMDIR for ever never
    converged: the child's upload under a remote file was refused every pass (issue 13 §4)."""
    states = [
        PathState("X", local=loc("X"), remote=rem("X", "f9", "v1", b"a file now"), synced=base("X", "d1", "")),
        PathState("X/new.txt", local=loc("X/new.txt", b"new child")),
    ]
    actions = plan(states, TWO_WAY, now_label=NOW)
    assert [(a.kind, a.path, moved_from(a)) for a in actions] == [
        (K.CONFLICT_COPY, f"X (conflicted copy {NOW})", "X"),
        (K.UPLOAD, "X/new.txt", None),
    ]


def test_a_folder_the_remote_replaced_by_a_file_is_removed_when_empty() -> None:
    state = PathState("X", local=loc("X"), remote=rem("X", "f9", "v1", b"a file now"), synced=base("X", "d1", ""))
    assert one(state).kind is K.RMDIR_LOCAL
