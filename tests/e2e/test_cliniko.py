"""`libmirror sync --once` against a real `libmirror sandbox cliniko` process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cliniko_api import ClinikoAPI
from tests.e2e.conftest import Mirror, Sandbox, running_sandbox, write_config
from tests.e2e.libraries import local_by_patient

Clinic = Sandbox[ClinikoAPI]


def start(tmp_path: Path, seed: int, *options: str) -> Iterator[Clinic]:
    args = [a for option in ("processing_delay=0.3", *options) for a in ("-o", option)]
    with running_sandbox(tmp_path / "sandbox-data", seed, ClinikoAPI, *args, provider="cliniko") as clinic:
        yield clinic


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Clinic]:
    yield from start(tmp_path, 8)


def mirror_for(tmp_path: Path, clinic: Clinic, **remote_extra: Any) -> Mirror:
    mirror = write_config(tmp_path, clinic.remote, provider="cliniko")
    if remote_extra:
        extra = "".join(f"{k} = {v}\n" for k, v in remote_extra.items())
        mirror.config.write_text(mirror.config.read_text() + extra)
    return mirror


def folder_of(mirror: Mirror, patient_id: str) -> Path:
    (found,) = [p for p in mirror.root.iterdir() if p.name.endswith(f"({patient_id})")]
    return found


def actions(mirror: Mirror, result: Any) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == "action"]


def test_local_drop_edit_and_delete_reach_cliniko(tmp_path: Path, clinic: Clinic) -> None:
    mirror = mirror_for(tmp_path, clinic)
    mirror.sync()
    api = clinic.api
    live = {a["id"]: a for a in api.attachments()}
    pid = next(pid for pid, files in sorted(local_by_patient(mirror).items()) if len(files) >= 2)
    folder = folder_of(mirror, pid)
    names = sorted(p.name for p in folder.iterdir())
    edited, deleted = names[0], names[-1]
    old_ids = {a["filename"]: a["id"] for a in live.values() if api.patient_of(a) == pid}
    (folder / "Überweisung neu.pdf").write_bytes(b"%PDF new referral\n")
    (folder / edited).write_bytes(b"edited locally\n")
    (folder / deleted).unlink()
    (mirror.root / "loose in root.txt").write_bytes(b"nowhere to go\n")
    (mirror.root / "Unknown person (999999)").mkdir()
    (mirror.root / "Unknown person (999999)" / "lost.txt").write_bytes(b"no such patient\n")
    nobody = next(p for p in api.patients().values() if p["last_name"] == "Nobody")
    (mirror.root / f"Nobody, Empty ({nobody['id']})").mkdir()
    (mirror.root / f"Nobody, Empty ({nobody['id']})" / "first letter.txt").write_bytes(b"first\n")

    result = mirror.sync()
    events = mirror.events(result)
    unsupported = {e["path"] for e in events if e["event"] == "action_unsupported"}
    assert {"loose in root.txt", "Unknown person (999999)/lost.txt"} <= unsupported

    remote = api.by_patient()
    assert remote[pid]["Überweisung neu.pdf"] == b"%PDF new referral\n"
    assert remote[pid][edited] == b"edited locally\n"
    assert deleted not in remote[pid]
    assert remote[nobody["id"]] == {"first letter.txt": b"first\n"}
    assert "loose in root.txt" not in str(remote) and "lost.txt" not in str(remote)
    archived = {a["id"] for a in api.attachments(archived=True) if a["archived_at"]}
    assert {old_ids[edited], old_ids[deleted]} <= archived  # the edit archived the old version
    new_edit = next(a for a in api.attachments() if a["filename"] == edited and api.patient_of(a) == pid)
    assert new_edit["id"] != old_ids[edited]

    third = mirror.sync()  # nothing left but the two files nobody can upload
    assert [e for e in actions(mirror, third) if e["action"] != "skip"] == []
    assert local_by_patient(mirror, strict=False)[pid] == remote[pid]
    assert (mirror.root / "loose in root.txt").exists()  # never touched, only reported


def test_remote_changes_arrive_and_archives_go_to_trash(tmp_path: Path, clinic: Clinic) -> None:
    mirror = mirror_for(tmp_path, clinic)
    mirror.sync()
    api = clinic.api
    live = api.attachments()
    victim = live[0]
    victim_bytes = api.content(victim["id"])
    pid = api.patient_of(live[1])
    assert api.archive(victim["id"]) == 204
    api.upload(pid, "from the clinic.txt", b"uploaded in Cliniko\n")
    api.upload(pid, "scan.pdf", b"first scan\n")
    api.upload(pid, "scan.pdf", b"second scan, same name\n")
    assert api.rename_patient(pid, "Renamed", "Person") == 200
    mirror.sync()
    local = local_by_patient(mirror)
    assert victim["filename"] not in local.get(api.patient_of(victim), {})
    assert victim_bytes in mirror.trash().values()
    assert folder_of(mirror, pid).name == f"Person, Renamed ({pid})"
    assert local[pid]["from the clinic.txt"] == b"uploaded in Cliniko\n"
    scans = {name: data for name, data in local[pid].items() if name.startswith("scan")}
    assert sorted(scans.values()) == [b"first scan\n", b"second scan, same name\n"]
    assert len(scans) == 2
    again = mirror.sync()
    assert actions(mirror, again) == []
    assert {n: d for n, d in local_by_patient(mirror)[pid].items() if n.startswith("scan")} == scans  # stable


def _busiest(hits: list[dict[str, Any]], window: float) -> int:
    times = sorted(h["time"] for h in hits)
    busiest = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def test_requests_stay_under_the_configured_rate_limit(tmp_path: Path) -> None:
    limit, window = 6, 2
    for clinic in start(tmp_path, 14, f"rate_limit={limit}", f"rate_window={window}"):
        mirror = mirror_for(tmp_path, clinic, rate_limit=limit, rate_limit_window=window)
        started = time.time()
        mirror.sync()
        finished = time.time()
        hits = [h for h in clinic.api.api_log() if started <= h["time"] <= finished]
        assert len(hits) > 2 * limit  # enough requests for the pacing to matter
        assert [h for h in hits if h["status"] == 429] == []
        assert _busiest(hits, window) <= limit
        assert local_by_patient(mirror) == clinic.api.by_patient()


def test_429_storm_slows_the_sync_down_without_failing_it(tmp_path: Path) -> None:
    for clinic in start(tmp_path, 10, "rate_limit=4", "rate_window=1"):
        mirror = mirror_for(tmp_path, clinic)  # believes it has Cliniko's 200 per minute
        started = time.time()
        result = mirror.sync()
        hits = [h for h in clinic.api.api_log() if h["time"] >= started]
        assert any(h["status"] == 429 for h in hits)
        assert not [e for e in mirror.events(result) if e["event"] == "action_failed"]
        assert local_by_patient(mirror) == clinic.api.by_patient()
