"""Downloads put in place in batches (daemon/local/commit_batch.py): each keeps its own outcome, every
file is in place before its folder is fsynced, and each folder is fsynced once per batch, before any
caller gets its row back (so the state store can never record a file a crash could take back)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import pytest

from daemon.local import commit_batch
from daemon.local.atomic import DownloadTarget, LocalChanged, open_download
from daemon.local.commit_batch import CommitBatcher
from daemon.vocab import DigestMismatch, LocalRow

pytestmark = pytest.mark.anyio


def _tmp_files(root: Path) -> list[str]:
    return [p.name for p in (root / ".libmirror" / "tmp").iterdir()]


async def _filled(root: Path, rel: str, data: bytes) -> DownloadTarget:
    target = open_download(root, rel)
    await target.write(data)
    return target


async def _commit_all(
    batcher: CommitBatcher, jobs: list[tuple[DownloadTarget, int, str]]
) -> list[LocalRow | BaseException]:
    """Commit every job at once, as concurrent downloads finishing together do."""
    results: list[LocalRow | BaseException] = [ValueError("not run")] * len(jobs)

    async def one(i: int, target: DownloadTarget, size: int, md5: str) -> None:
        try:
            results[i] = await batcher.commit(target, size, md5, None)
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i, (target, size, md5) in enumerate(jobs):
            tg.start_soon(one, i, target, size, md5)
    return results


async def test_one_bad_download_fails_alone(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    real = commit_batch._finish_all

    def counted(jobs: list[commit_batch._Job]) -> None:
        batches.append(len(jobs))
        real(jobs)

    monkeypatch.setattr(commit_batch, "_finish_all", counted)
    (root / "taken.txt").write_bytes(b"someone's file")
    jobs = []
    for i in range(6):
        data = f"file {i}".encode()
        jobs.append((await _filled(root, f"f/{i}.txt", data), len(data), hashlib.md5(data).hexdigest()))
    bad = b"bytes that are not the listed version"
    jobs.append((await _filled(root, "f/bad.txt", bad), len(bad), hashlib.md5(b"the listed version").hexdigest()))
    jobs.append((await _filled(root, "taken.txt", b"ours"), 4, hashlib.md5(b"ours").hexdigest()))

    results = await _commit_all(CommitBatcher(), jobs)

    assert sum(batches) == len(jobs) and len(batches) < len(jobs)  # finished together, put in place together
    for i in range(6):
        row = results[i]
        assert isinstance(row, LocalRow) and row.path == f"f/{i}.txt"
        assert (root / f"f/{i}.txt").read_bytes() == f"file {i}".encode()
    assert isinstance(results[6], DigestMismatch) and not (root / "f/bad.txt").exists()
    assert isinstance(results[7], LocalChanged)
    assert (root / "taken.txt").read_bytes() == b"someone's file"  # never overwritten
    assert _tmp_files(root) == []  # the failed ones' temp files are gone too


async def test_each_folder_fsynced_once_per_batch_after_its_files_are_in_place(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[tuple[Path, list[str]]]] = []
    real = commit_batch._finish_all

    def counted(jobs: list[commit_batch._Job]) -> None:
        batches.append([])
        real(jobs)

    def fsync_dir(folder: Path) -> None:
        batches[-1].append((folder, sorted(os.listdir(folder))))

    monkeypatch.setattr(commit_batch, "_finish_all", counted)
    monkeypatch.setattr(commit_batch, "fsync_dir", fsync_dir)
    jobs = []
    for folder in ("a", "b"):
        for i in range(3):
            data = f"{folder}{i}".encode()
            jobs.append((await _filled(root, f"{folder}/{i}.txt", data), len(data), hashlib.md5(data).hexdigest()))

    results = await _commit_all(CommitBatcher(), jobs)

    assert all(isinstance(r, LocalRow) for r in results)
    assert len(batches) < len(jobs)
    done: set[str] = set()
    for synced in batches:
        folders = [folder for folder, _ in synced]
        assert len(folders) == len(set(folders))  # each folder once per batch
        for folder, names in synced:
            assert set(names) >= {n for n in ("0.txt", "1.txt", "2.txt") if f"{folder.name}/{n}" in done}
        done |= {f"{folder.name}/{n}" for folder, names in synced for n in names}
    assert done == {f"{f}/{i}.txt" for f in ("a", "b") for i in range(3)}  # every rename before an fsync


async def test_a_lone_download_is_not_held_back(root: Path) -> None:
    data = b"alone"
    target = await _filled(root, "one.txt", data)
    with anyio.fail_after(10):
        row = await CommitBatcher().commit(target, len(data), hashlib.md5(data).hexdigest(), None)
    assert row.size == len(data) and (root / "one.txt").read_bytes() == data
    with pytest.raises(RuntimeError):
        await CommitBatcher().commit(target, len(data), None, None)  # placed already: never twice
