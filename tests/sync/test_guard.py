"""Safety gates (DESIGN rule 5), as a pure function."""

from __future__ import annotations

from daemon.sync.guard import GateFacts, apply_gates
from daemon.sync.model import Action, ActionKind, LocalRow, RemoteRow


def trash(path: str) -> Action:
    return Action(ActionKind.TRASH_LOCAL, path, "remote deleted", local=LocalRow(path, digest="d"))


def delete(path: str) -> Action:
    return Action(ActionKind.DELETE_REMOTE, path, "local deleted", remote=RemoteRow(path, "id-" + path))


def download(path: str) -> Action:
    return Action(ActionKind.DOWNLOAD, path, "remote changed", remote=RemoteRow(path, "id-" + path))


def facts(**kw: object) -> GateFacts:
    base: dict[str, object] = {
        "marker_present": True,
        "synced_files": 100,
        "remote_files": 100,
        "local_files": 100,
        "max_delete_percent": 50,
        "max_delete_count": 500,
    }
    base.update(kw)
    return GateFacts(**base)  # type: ignore[arg-type]


def test_nothing_held_in_normal_pass() -> None:
    result = apply_gates([trash("a"), delete("b"), download("c")], facts())
    assert not result.tripped and len(result.allowed) == 3


def test_percent_gate_holds_only_that_side() -> None:
    actions = [delete(f"f{i}") for i in range(51)] + [trash("x"), download("y")]
    result = apply_gates(actions, facts())
    assert result.tripped and "remote side" in result.reasons[0] and "51%" in result.reasons[0]
    assert {a.kind for a in result.held} == {ActionKind.DELETE_REMOTE}
    assert {a.path for a in result.allowed} == {"x", "y"}


def test_count_gate() -> None:
    result = apply_gates([trash(f"f{i}") for i in range(6)], facts(max_delete_count=5, synced_files=1000))
    assert "max_delete_count = 5" in result.reasons[0]
    assert len(result.held) == 6


def test_marker_missing_holds_both_sides_but_not_downloads() -> None:
    result = apply_gates([trash("a"), delete("b"), download("c")], facts(marker_present=False))
    assert "marker" in result.reasons[0]
    assert [a.path for a in result.allowed] == ["c"]


def test_empty_remote_listing_holds_local_trash() -> None:
    result = apply_gates([trash("a")], facts(remote_files=0, max_delete_percent=100))
    assert result.held and "empty" in result.reasons[0]


def test_confirm_releases_everything() -> None:
    actions = [delete(f"f{i}") for i in range(90)]
    result = apply_gates(actions, facts(confirmed=True, marker_present=False))
    assert not result.tripped and len(result.allowed) == 90


def test_condition_without_destructive_actions_is_not_a_gate() -> None:
    result = apply_gates([download("a")], facts(remote_files=0))
    assert not result.tripped
