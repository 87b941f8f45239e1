"""A name mapping is decided once and kept (issue 13 §2, §3), through `libmirror sync --once` against
the CoreData sandbox: the second pass never renames a user's file that nobody renamed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Mirror, Sandbox

ODD_LOCAL_NAMES = [
    "local with\nnewline.txt",
    "Meeting notes: Q3?.txt",
    'quote "this" <now>.txt',
    "star*pipe|back\\slash.txt",
    "trailing dot.",
    "trailing space ",
]


def _stats(root: Path) -> dict[str, tuple[int, int]]:
    """Every local file by path: (inode, mtime_ns)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and ".libmirror" in dirnames:
            dirnames.remove(".libmirror")
        for name in filenames:
            st = os.lstat(Path(dirpath) / name)
            out[(Path(dirpath) / name).relative_to(root).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return out


def _remote(sandbox: Sandbox) -> dict[str, tuple[str, str]]:
    """Every remote file by path: (id, snapshot_id)."""
    return {p: (o["id"], o["snapshot_id"]) for p, o in sandbox.api.tree().items()}


def _actions(mirror: Mirror, result: Any) -> list[tuple[str, str]]:
    return [(e["action"], e["path"]) for e in mirror.events(result) if e["event"] == "action"]


def test_local_names_the_sanitiser_would_change_are_never_renamed(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.root.mkdir(parents=True)
    for name in ODD_LOCAL_NAMES:
        (mirror.root / name).write_bytes(name.encode() + b" contents")
    first = mirror.sync()
    assert sorted(p for a, p in _actions(mirror, first) if a == "upload") == sorted(ODD_LOCAL_NAMES)
    before_local, before_remote = _stats(mirror.root), _remote(sandbox)
    assert set(ODD_LOCAL_NAMES) <= set(before_remote)  # uploaded under the exact local names
    second = mirror.sync()
    assert _actions(mirror, second) == []
    assert _stats(mirror.root) == before_local and _remote(sandbox) == before_remote
    third = mirror.sync()
    assert _actions(mirror, third) == [] and _stats(mirror.root) == before_local


def test_a_remote_case_variant_of_a_local_file_is_named_in_the_first_pass(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    folder = next(p.rpartition("/")[0] for p in sandbox.api.tree() if "/" in p)
    (mirror.root / folder / "HeLlO,wOrLd!.txt").write_bytes(b"the local one")
    folder_id = sandbox.api.folder_paths()[folder]
    sandbox.api.create(folder_id, "hello,WORLD!.txt", b"the remote one")
    first = mirror.sync()
    local_names = {p.name: p.read_bytes() for p in (mirror.root / folder).iterdir()}
    assert local_names["HeLlO,wOrLd!.txt"] == b"the local one"
    assert [n for n, data in local_names.items() if data == b"the remote one"] == [
        n for n in local_names if n.startswith("hello,WORLD! (~")
    ]
    assert ("upload", f"{folder}/HeLlO,wOrLd!.txt") in _actions(mirror, first)
    before_local, before_remote = _stats(mirror.root), _remote(sandbox)
    second = mirror.sync()
    assert _actions(mirror, second) == []
    assert _stats(mirror.root) == before_local and _remote(sandbox) == before_remote
