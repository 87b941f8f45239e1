"""Safety gates (DESIGN rule 5), as a pure function."""

from __future__ import annotations

from daemon.sync.guard import GateFacts, apply_gates
from daemon.vocab import Action, DeleteRemote, Download, LocalRow, RemoteRow, SyncedRow, TrashLocal, Upload


def trash(path: str) -> Action:
    return TrashLocal(path, "remote deleted", local=LocalRow(path, digest="d"))


def delete(path: str) -> Action:
    return DeleteRemote(path, "local deleted", remote=RemoteRow(path, "id-" + path))


def download(path: str) -> Action:
    return Download(path, "remote changed", remote=RemoteRow(path, "id-" + path))


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


def test_deletes_within_the_limits_are_not_held() -> None:
    result = apply_gates([trash("a"), delete("b"), download("c")], facts())
    assert not result.tripped and len(result.allowed) == 3


def test_percent_gate_holds_only_that_side() -> None:
    actions = [delete(f"f{i}") for i in range(51)] + [trash("x"), download("y")]
    result = apply_gates(actions, facts())
    assert result.tripped and "remote side" in result.reasons[0] and "51%" in result.reasons[0]
    assert {type(a) for a in result.held} == {DeleteRemote}
    assert {a.path for a in result.allowed} == {"x", "y"}


def test_more_deletes_than_max_delete_count_are_all_held() -> None:
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


def test_a_confirmed_pass_holds_nothing_whatever_the_condition() -> None:
    actions = [delete(f"f{i}") for i in range(90)]
    result = apply_gates(actions, facts(confirmed=True, marker_present=False))
    assert not result.tripped and len(result.allowed) == 90


def test_condition_without_destructive_actions_is_not_a_gate() -> None:
    result = apply_gates([download("a")], facts(remote_files=0))
    assert not result.tripped


def upload_over(path: str) -> Action:
    base = SyncedRow(path, digest="old", remote_id="id-" + path, remote_version="1")
    return Upload(
        path,
        "local changed, remote unchanged",
        local=LocalRow(path, digest="new"),
        remote=RemoteRow(path, "id-" + path, version="1"),
        synced=base,
    )


def download_over(path: str) -> Action:
    base = SyncedRow(path, digest="old", remote_id="id-" + path, remote_version="1")
    return Download(
        path,
        "remote changed, local unchanged",
        local=LocalRow(path, digest="old"),
        remote=RemoteRow(path, "id-" + path, version="2"),
        synced=base,
    )


def new_upload(path: str) -> Action:
    return Upload(path, "new local file", local=LocalRow(path, digest="d"))


def test_overwrites_count_per_side_and_hold_only_what_they_overwrite() -> None:
    actions = [upload_over(f"u{i}") for i in range(60)] + [download_over("d"), new_upload("n"), trash("t")]
    result = apply_gates(actions, facts())
    assert result.counts.remote_overwrites == 60 and result.counts.local_overwrites == 1
    assert result.reasons == [
        "remote side: 60 overwrites are 60% of 100 synced files (max_overwrite_percent = 50); release them "
        "with `libmirror release-gate LIBRARY` (service running) or `libmirror sync --once --confirm-deletes`"
    ]
    assert [a.path for a in result.held] == [f"u{i}" for i in range(60)]
    assert [a.path for a in result.allowed] == ["d", "n", "t"]


def test_overwrite_count_gate_holds_downloads_over_local_content() -> None:
    result = apply_gates([download_over(f"d{i}") for i in range(3)], facts(max_overwrite_count=2))
    assert [a.path for a in result.held] == ["d0", "d1", "d2"]
    assert "local side: 3 overwrites exceed max_overwrite_count = 2" in result.reasons[0]


def test_a_few_edits_of_a_small_library_pass_the_percent_gate() -> None:
    result = apply_gates([upload_over("a"), upload_over("b")], facts(synced_files=3))
    assert not result.tripped and len(result.allowed) == 2


def test_confirmed_releases_overwrites_too() -> None:
    result = apply_gates([upload_over(f"u{i}") for i in range(60)], facts(confirmed=True))
    assert not result.tripped and len(result.allowed) == 60
