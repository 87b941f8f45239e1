"""Hostile remote names (DESIGN rule 6): each one is sanitised to a safe local name or skipped with one
log line, distinct remote entries never share a local path, and nothing is written outside the root."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest

from daemon.local.names import MAX_NAME_BYTES
from daemon.sandbox.coredata_model import Node
from daemon.sandbox.runner import RunningSandbox
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once, tree_outside

pytestmark = pytest.mark.anyio

HOSTILE = [
    "../../x.txt",
    "/etc/absolute.txt",
    "a/b.txt",
    "a\\b.txt",
    "bell\x07esc\x1b.txt",
    "tab\tnew\nline.txt",
    "y" * 300 + ".txt",
    "é" * 200 + ".txt",  # 400 bytes of UTF-8
    "CON",
    "nul.txt",
    "com1.log",
    "trailing dots...",
    "trailing spaces   ",
    "café.txt",  # NFC
    "cafe\u0301.txt",  # the same name in NFD
    "Report.txt",
    "report.txt",  # equal after case folding
    "dup.txt",
    "dup.txt",  # a true duplicate in one folder
    ".libmirror",  # would shadow our own state folder
    "nul\x00byte.txt",  # the API refuses NUL: planted behind its back
]
SKIPPED = ["..", "."]  # nothing usable is left after sanitising


def plant(sb: RunningSandbox, parent: str | None, name: str, data: bytes) -> Node:
    """Create a file as the backend helper does, then give it a name the API itself would refuse."""
    node: Node = sb.backend.add_file(parent, "placeholder.bin", data)
    node.filename = name
    sb.backend._save(node)
    return node


def _safe(name: str) -> bool:
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    return (
        len(name.encode()) <= MAX_NAME_BYTES
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in '/\\<>:"|?*' for c in name)
        and name not in ("", ".", "..")
        and not name.endswith((".", " "))
        and stem not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
        and unicodedata.is_normalized("NFC", name)
    )


async def test_hostile_remote_names_stay_inside_the_root(
    tmp_path: Path, coredata: RunningSandbox, mirror: Mirror
) -> None:
    contents: dict[str, bytes] = {}
    for i, name in enumerate(HOSTILE + SKIPPED):
        data = f"content {i}: {name!r}".encode()
        plant(coredata, None, name, data)
        contents[name + f"#{i}"] = data
    evil = coredata.backend.add_folder(None, "placeholder")
    evil.title = "../../evil-folder"
    coredata.backend._save(evil)
    plant(coredata, evil.id, "../inside-evil.txt", b"inside the evil folder")
    inside = (mirror.root, tmp_path / "state", tmp_path / "sandbox-data")
    before = tree_outside(tmp_path, *inside)

    first = await sync_once(mirror)
    assert first.code == 0, (first.stderr[-3000:], first.events[-5:])

    assert tree_outside(tmp_path, *inside) == before  # nothing written next to the root or above it
    assert not (tmp_path / "x.txt").exists() and not (tmp_path.parent / "x.txt").exists()
    local = mirror.files()
    for rel in local:
        assert all(_safe(part) for part in rel.split("/")), rel
    # every usable entry arrived, each under its own name (duplicates and case/NFC twins kept apart)
    expected = sorted(d for k, d in contents.items() if k.rsplit("#", 1)[0] not in SKIPPED)
    got = sorted(data for rel, data in local.items() if rel.count("/") == 0)
    assert got == expected
    assert [rel for rel in local if "/" in rel] == [next(r for r in local if r.endswith("inside-evil.txt"))]
    assert local[next(r for r in local if "/" in r)] == b"inside the evil folder"
    assert len({r.casefold() for r in local}) == len(local)

    skipped = first.named("remote_name_skipped")
    assert sorted(e["raw_name"] for e in skipped) == sorted(SKIPPED)  # one line each

    again = await sync_once(mirror)
    assert again.code == 0
    assert [(p["pulled"], p["pushed"], p["deleted"], p["moved"]) for p in again.passes] == [(0, 0, 0, 0)]
    assert mirror.files() == local  # names are stable across passes


async def test_duplicate_names_get_stable_distinct_names(coredata: RunningSandbox, mirror: Mirror) -> None:
    a = plant(coredata, None, "same.txt", b"first")
    plant(coredata, None, "same.txt", b"second")
    run = await sync_once(mirror)
    assert run.code == 0
    names = sorted(mirror.files())
    assert len(names) == 2 and "same.txt" in names
    other = next(n for n in names if n != "same.txt")
    assert other.startswith("same (~") and other.endswith(").txt")
    # the suffix comes from the remote id, so it cannot move from one entry to the other
    first_owner = mirror.files()["same.txt"]
    tag = hashlib.sha1(a.id.encode()).hexdigest()[:6]
    assert (first_owner == b"first") != (other == f"same (~{tag}).txt")
