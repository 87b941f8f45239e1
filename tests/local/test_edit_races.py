"""A user edit that lands in the instant between our rename and our record must not be hidden.

The row the executor records for a file it moved or downloaded pairs a stat with a digest. If that stat
were taken after the rename, an edit made right then (same size, same inode) would be recorded with the
old digest, and the stat fast path would never hash the file again: the edit would never be pushed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.local import atomic, ops
from daemon.local.checks import row_from_stat
from daemon.local.ignore import IgnoreMatcher
from daemon.local.scan import observe_paths
from daemon.vocab import LocalRow

pytestmark = pytest.mark.anyio


class Known:
    def __init__(self, rows: dict[str, LocalRow]) -> None:
        self.rows = rows

    async def children(self, dir_path: str) -> dict[str, LocalRow]:
        prefix = f"{dir_path}/" if dir_path else ""
        return {
            p[len(prefix) :]: r for p, r in self.rows.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]
        }


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def edit_right_after_rename(monkeypatch: pytest.MonkeyPatch, module: object, data: bytes) -> None:
    real = module.rename_noreplace  # type: ignore[attr-defined]

    def rename_then_edit(src: Path, dst: Path, src_stat: os.stat_result | None = None) -> None:
        real(src, dst, src_stat)
        with open(dst, "r+b") as fh:  # same inode, same size: only the mtime can tell
            fh.write(data)

    monkeypatch.setattr(module, "rename_noreplace", rename_then_edit)


async def rescanned(root: Path, row: LocalRow) -> LocalRow:
    [seen] = await observe_paths(root, [row.path], IgnoreMatcher([]), Known({row.path: row}))
    assert isinstance(seen, LocalRow)
    return seen


async def test_an_edit_during_a_local_move_is_seen_by_the_next_scan(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "a.txt").write_bytes(b"original")
    before = row_from_stat("a.txt", os.lstat(root / "a.txt"), md5(b"original"))
    edit_right_after_rename(monkeypatch, ops, b"EDITED!!")
    row = ops.move_local(root, "a.txt", "b.txt", before)
    assert (root / "b.txt").read_bytes() == b"EDITED!!"
    assert (await rescanned(root, row)).digest == md5(b"EDITED!!")


async def test_an_edit_right_after_a_download_is_placed_is_seen_by_the_next_scan(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_right_after_rename(monkeypatch, atomic, b"EDITED!!")
    target = atomic.open_download(root, "d.txt")
    await target.write(b"download")
    row = await target.commit(expected_size=8, expected_md5=md5(b"download"), replace=None)
    assert row.digest == md5(b"download")
    assert (root / "d.txt").read_bytes() == b"EDITED!!"
    assert (await rescanned(root, row)).digest == md5(b"EDITED!!")


async def test_an_undisturbed_move_and_download_need_no_rehash(root: Path) -> None:
    (root / "a.txt").write_bytes(b"original")
    before = row_from_stat("a.txt", os.lstat(root / "a.txt"), md5(b"original"))
    moved = ops.move_local(root, "a.txt", "b.txt", before)
    target = atomic.open_download(root, "d.txt")
    await target.write(b"download")
    placed = await target.commit(expected_size=8, expected_md5=md5(b"download"), replace=None)
    for row in (moved, placed):  # the stat fast path holds: same size, mtime and inode on disk
        st = os.lstat(root / row.path)
        assert (row.size, row.mtime_ns, row.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
