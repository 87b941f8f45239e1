"""Kind clashes converge in one pass and names the engine invents fit the limit (issue 13 §4), through
`libmirror sync --once` against the CoreData sandbox."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Mirror, Sandbox


def _actions(mirror: Mirror, result: Any) -> list[dict[str, Any]]:
    return [e for e in mirror.events(result) if e["event"] == "action"]


def test_a_folder_replaced_remotely_by_a_file_converges_in_one_pass(sandbox: Sandbox, mirror: Mirror) -> None:
    api = sandbox.api
    folder = api.mkdir(api.root, "X")
    inside = api.create(folder, "a.txt", b"synced inside X")
    mirror.sync()
    (mirror.root / "X" / "new.txt").write_bytes(b"a new local child")
    assert api.delete(inside).status in (200, 202, 204)
    assert api.call("DELETE", f"/api/v2/folders/{folder}/").status in (200, 202, 204)
    api.create(api.root, "X", b"a file named X")

    first = mirror.sync()  # exit 0: one pass, no error, nothing held
    assert not [e for e in mirror.events(first) if e["event"] == "action_failed"]
    conflicts = [e for e in mirror.events(first) if e["event"] == "conflict"]
    assert len(conflicts) == 1 and conflicts[0]["path"] == "X"
    files = mirror.files()
    assert files["X"] == b"a file named X"
    copies = [p for p in files if p.endswith("/new.txt")]
    assert len(copies) == 1 and copies[0].startswith("X (conflicted copy ")
    assert copies[0] in api.tree() and "X" in api.tree(), [
        (e["event"], e.get("action"), e.get("path"), e.get("why") or e.get("reason")) for e in mirror.events(first)
    ]
    second = mirror.sync()
    assert _actions(mirror, second) == []


def test_a_conflict_copy_of_a_250_byte_name_fits(sandbox: Sandbox, mirror: Mirror) -> None:
    api = sandbox.api
    name = "é" * 100 + "x" * 45 + ".txt"  # 249 bytes: accepted as it is
    file_id = api.create(api.root, name, b"version one")
    mirror.sync()
    (mirror.root / name).write_bytes(b"edited locally")
    assert api.update(file_id, b"edited remotely").status in (200, 201, 204)
    first = mirror.sync()
    assert not [e for e in mirror.events(first) if e["event"] == "action_failed"]
    copies = [p for p in mirror.files() if "conflicted copy" in p]
    assert len(copies) == 1 and len(copies[0].encode()) <= 255
    assert mirror.files()[copies[0]] == b"edited locally" and mirror.files()[name] == b"edited remotely"
    assert _actions(mirror, mirror.sync()) == []
