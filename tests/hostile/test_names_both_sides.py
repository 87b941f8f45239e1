"""Every hostile name on both sides at once (issue 13, "Done when"): the first `sync --once` exits 0 or
reports each unsyncable name once; the second changes nothing anywhere (same inodes, mtimes, remote
ids and versions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.sandbox.runner import RunningSandbox
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once
from tests.hostile.test_remote_names import HOSTILE, SKIPPED, plant

pytestmark = pytest.mark.anyio

NOT_UTF8 = b"\x19\x81\xfe.txt"  # a name copied from an old system: not valid UTF-8


def _local_names() -> list[str]:
    """The fixture names a Linux folder can hold as they are (no '/', no NUL, not '.' or '..', at most
    255 bytes)."""
    return sorted(
        {n for n in HOSTILE if "/" not in n and "\x00" not in n and n not in (".", "..") and len(n.encode()) <= 255}
    )


def _local_state(root: Path) -> dict[bytes, tuple[int, int, bytes]]:
    out: dict[bytes, tuple[int, int, bytes]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        if dirpath == base and b".libmirror" in dirnames:
            dirnames.remove(b".libmirror")
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, base)] = (st.st_ino, st.st_mtime_ns, fh.read())
    return out


def _remote_state(sb: RunningSandbox) -> dict[str, tuple[str | None, str, str]]:
    return {n.id: (n.parent, n.filename, n.snapshot_id) for n in list(sb.backend.nodes.values()) if n.kind == "file"}


async def test_every_hostile_name_on_both_sides_syncs_once_then_stays(coredata: RunningSandbox, mirror: Mirror) -> None:
    for i, name in enumerate(HOSTILE + SKIPPED):
        plant(coredata, None, name, f"remote {i}: {name!r}".encode())
    mirror.root.mkdir(parents=True)
    sub = mirror.root / "local side"
    sub.mkdir()
    for i, name in enumerate(_local_names()):
        (sub / name).write_bytes(f"local {i}: {name!r}".encode())
    (mirror.root / os.fsdecode(NOT_UTF8)).write_bytes(b"a name from an old disk")

    first = await sync_once(mirror)
    assert first.code == 0, (first.stderr[-3000:], first.events[-8:])
    skipped = first.named("remote_name_skipped") + first.named("name_not_utf8")
    assert len(skipped) == len(SKIPPED) + 1, skipped  # each unsyncable name reported once
    local, remote = _local_state(mirror.root), _remote_state(coredata)

    second = await sync_once(mirror)
    assert second.code == 0, second.stderr[-3000:]
    assert [e for e in second.events if e.get("event") == "action"] == []
    assert _local_state(mirror.root) == local
    assert _remote_state(coredata) == remote
