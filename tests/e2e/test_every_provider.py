"""`libmirror sync --once` behaviours every provider that pulls must show, each stated once and run
against the sandbox process of every one of them (see ``libraries.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mirror, write_config
from tests.e2e.libraries import LIBRARIES, Library

PULLING = sorted(LIBRARIES)
STRICT = {"max_delete_count": 1, "max_delete_percent": 1, "max_overwrite_count": 1, "max_overwrite_percent": 1}


def _mtimes(mirror: Mirror) -> dict[str, int]:
    return {p: (mirror.root / p).stat().st_mtime_ns for p in mirror.files()}


@pytest.mark.parametrize("name", PULLING)
def test_first_run_pulls_the_library_byte_for_byte_and_a_second_run_changes_nothing(tmp_path: Path, name: str) -> None:
    library: Library = LIBRARIES[name]
    with library.start(tmp_path) as sandbox:
        mirror = write_config(tmp_path, sandbox.remote, provider=library.provider)
        first = mirror.events(mirror.sync())
        assert not [e for e in first if e["event"] in ("action_failed", "action_replanned")]
        assert library.local(mirror) == library.remote(sandbox)
        assert len(mirror.files()) == library.seeded
        assert (mirror.root / ".libmirror").is_dir()
        before, remote_before = _mtimes(mirror), library.remote(sandbox)

        second = mirror.events(mirror.sync())
        assert [e for e in second if e["event"] == "action"] == []
        assert _mtimes(mirror) == before  # nothing downloaded again
        assert library.remote(sandbox) == remote_before
        assert not any((mirror.root / ".libmirror" / "tmp").iterdir())
        CHECK_FIRST_RUN.get(name, lambda *_: None)(sandbox, mirror, first)


def _coredata_first_run(sandbox: Any, mirror: Mirror, events: list[dict[str, Any]]) -> None:
    [pass_line] = [e for e in events if e["event"] == "pass"]
    assert pass_line["pulled"] == 12 and pass_line["folders"] > 0  # files and folders counted apart


def _cliniko_first_run(sandbox: Any, mirror: Mirror, events: list[dict[str, Any]]) -> None:
    local = LIBRARIES["cliniko"].local(mirror)
    patients = sandbox.api.patients()
    for pid in local:
        (folder,) = [p for p in mirror.root.iterdir() if p.name.endswith(f"({pid})")]
        assert folder.name.startswith(f"{patients[pid]['last_name']}, ")
    assert not any(p["last_name"] == "Nobody" for pid, p in patients.items() if pid in local)


def _timetap_first_run(sandbox: Any, mirror: Mirror, events: list[dict[str, Any]]) -> None:
    local_dirs = {
        p.relative_to(mirror.root).as_posix()
        for p in mirror.root.rglob("*")
        if p.is_dir() and ".libmirror" not in p.relative_to(mirror.root).parts
    }
    assert local_dirs == {p.rstrip("/") for p in sandbox.api.tree() if p.endswith("/")}
    assert any("/" in d for d in local_dirs)  # nested folders, private and public files


CHECK_FIRST_RUN = {"coredata": _coredata_first_run, "cliniko": _cliniko_first_run, "timetap": _timetap_first_run}


@pytest.mark.parametrize("name", ["coredata", "timetap"])
def test_overwriting_every_local_file_is_held_and_no_original_leaves_the_server(tmp_path: Path, name: str) -> None:
    """Ransomware or a bad script rewrites every local file: without the overwrite gate each one was
    uploaded over (TimeTap: in place of) the server's version, and not one original was left anywhere
    (DESIGN rule 5). The gate holds the pass until the operator confirms."""
    library: Library = LIBRARIES[name]
    with library.start(tmp_path, options=()) as sandbox:  # sessions that last (a token per run)
        mirror = write_config(tmp_path, sandbox.remote, provider=library.provider, **STRICT)
        mirror.sync()
        originals = mirror.files()
        assert len(originals) == library.seeded and library.remote(sandbox) == originals
        for path, data in originals.items():
            (mirror.root / path).write_bytes(b"ENCRYPTED" + data[::-1])
        held = mirror.sync(check=3)
        events = mirror.events(held)
        gates = [e for e in events if e["event"] == "safety_gate"]
        assert [e["remote_overwrites"] for e in gates] == [library.seeded]
        assert not [e for e in events if e["event"] == "action" and e["action"] == "upload"]
        assert library.remote(sandbox) == originals, "an original version left the server"
        assert "max_overwrite" in held.stderr and "release-gate board" in held.stderr

        mirror.sync("--confirm-deletes")  # the operator has looked and confirms
        assert all(data.startswith(b"ENCRYPTED") for data in library.remote(sandbox).values())
