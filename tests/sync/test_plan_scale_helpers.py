"""The planner's subtree helpers (they keep planning linear: issue 15 §2) and the plan of the two shapes
that once grew quadratically, checked whole on a small library."""

from __future__ import annotations

from collections import Counter

from bench.plan_scale import deleted_folders, renamed_folders
from daemon.sync.plan import _self_and_ancestors, _subtree, plan
from daemon.vocab import PlanOptions


def test_subtree_is_the_range_under_a_folder_and_nothing_beside_it() -> None:
    ordered = sorted(["a", "a b", "a/x", "a/x/y", "a-b/z", "a0", "ab", "b/a"])
    assert list(_subtree(ordered, "a")) == ["a/x", "a/x/y"]
    assert list(_subtree(ordered, "a/x")) == ["a/x/y"]
    assert list(_subtree(ordered, "c")) == []
    assert _self_and_ancestors("a/b/c") == ["a/b/c", "a/b", "a"]


def test_many_folders_renamed_or_deleted_on_the_server_plan_one_action_each() -> None:
    options = PlanOptions(can_move_remote=True, can_move_remote_dir=True)
    renamed = plan(renamed_folders(2100), options, now_label="x")
    assert Counter(a.kind.value for a in renamed) == {"move_local": 50}
    assert all(a.path == f"{a.src} renamed" for a in renamed)  # type: ignore[union-attr]
    deleted = plan(deleted_folders(2100), options, now_label="x")
    assert Counter(a.kind.value for a in deleted) == {"trash_local": 2000, "rmdir_local": 100}
    assert [a.kind.value for a in deleted][-100:] == ["rmdir_local"] * 100  # folders after their files
