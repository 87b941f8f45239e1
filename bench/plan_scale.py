"""Planner linearity (issue 15 §2): the pure planner's time for N changed paths, in the shapes that
once grew faster than linearly (many folders each renamed remotely; many folders each deleted remotely
with their files), at 100k and 1M paths. Prints plan_s_100k, plan_s_1m and their ratio (target <= 12).

Usage: python -m bench.plan_scale [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from bench.common import last_json, rnd
from daemon.sync.plan import plan
from daemon.vocab import LocalRow, PathState, PlanOptions, RemoteRow, SyncedRow

FILES_PER_FOLDER = 20


def _file(path: str, i: int) -> tuple[LocalRow, RemoteRow, SyncedRow]:
    digest = f"{i:032x}"
    return (
        LocalRow(path, size=10, mtime_ns=i, inode=10_000_000 + i, digest=digest),
        RemoteRow(path, f"f{i}", parent_id="p", size=10, digest=digest, version="v1"),
        SyncedRow(path, digest=digest, size=10, remote_id=f"f{i}", remote_version="v1", local_inode=10_000_000 + i),
    )


def renamed_folders(paths: int) -> list[PathState]:
    """Folders renamed on the server (A → A-renamed), each holding 20 files: a local rename per folder."""
    states: list[PathState] = []
    folders = paths // (2 * (FILES_PER_FOLDER + 1))
    for f in range(folders):
        old, new = f"dir {f:07d}", f"dir {f:07d} renamed"
        states.append(
            PathState(
                old, LocalRow(old, is_dir=True, inode=f + 1), None, SyncedRow(old, is_dir=True, remote_id=f"d{f}")
            )
        )
        states.append(PathState(new, None, RemoteRow(new, f"d{f}", is_dir=True, parent_id="root"), None))
        for n in range(FILES_PER_FOLDER):
            i = f * FILES_PER_FOLDER + n
            loc, rem, syn = _file(f"{old}/file {n:02d}", i)
            states.append(PathState(loc.path, loc, None, syn))
            moved = RemoteRow(f"{new}/file {n:02d}", rem.remote_id, parent_id=f"d{f}", size=10, digest=rem.digest)
            states.append(PathState(moved.path, None, moved, None))
    return sorted(states, key=lambda s: s.path)


def deleted_folders(paths: int) -> list[PathState]:
    """Folders deleted on the server with their files: trash each file, then remove each folder."""
    states: list[PathState] = []
    folders = paths // (FILES_PER_FOLDER + 1)
    for f in range(folders):
        folder = f"gone {f:07d}"
        states.append(PathState(folder, LocalRow(folder, is_dir=True), None, SyncedRow(folder, is_dir=True)))
        for n in range(FILES_PER_FOLDER):
            loc, _rem, syn = _file(f"{folder}/file {n:02d}", f * FILES_PER_FOLDER + n)
            states.append(PathState(loc.path, loc, None, syn))
    return states


def timed(states: list[PathState]) -> float:
    gc.collect()
    started = time.process_time()
    plan(states, PlanOptions(can_move_remote=True, can_move_remote_dir=True), now_label="2026-12-05 120000")
    return time.process_time() - started


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    result: dict[str, Any] = {}
    for shape in (renamed_folders, deleted_folders):
        for size in sizes:
            states = shape(size)
            seconds = timed(states)
            label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}m"
            result[f"plan_s_{label}_{shape.__name__}"] = rnd(seconds, 2)
            print(f"{shape.__name__}: {len(states)} changed paths planned in {seconds:.2f} s CPU", flush=True)
            del states
    for name in ("renamed_folders", "deleted_folders"):
        small, large = result.get(f"plan_s_100k_{name}"), result.get(f"plan_s_1m_{name}")
        if small and large:
            result[f"plan_ratio_1m_100k_{name}"] = rnd(large / small, 1)
    for label in ("100k", "1m"):
        figures = [v for k, v in result.items() if k.startswith(f"plan_s_{label}_")]
        if figures:
            result[f"plan_s_{label}"] = max(figures)
    last_json(result)
    return result


if __name__ == "__main__":
    main()
