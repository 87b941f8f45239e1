"""Benchmark 1, initial pull: the CoreData sandbox (separate process, loopback) into an empty folder.

Two libraries, timed separately: 10,000 files of 1-8 KiB in 100 folders, and 10 files of 16 MiB.
libmirror runs `sync --once` with concurrency 8. References on the same bytes in the same run:
`rclone copy` from `rclone serve http` (loopback, --transfers 8 --checkers 8), and the local floor
`cp -r` + `md5sum`. Usage: python -m bench.initial_pull [SMALL_FILES]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RCLONE,
    CtlSandbox,
    build_coredata_tree,
    export_tree,
    floor_seconds,
    last_json,
    rclone_args,
    rclone_serve,
    rclone_version,
    rnd,
    run_timed,
    sync_once,
    tree_stats,
    write_config,
)

SMALL, FOLDERS, LARGE, LARGE_SIZE = 10_000, 100, 10, 16 * 1024 * 1024
MB = 1024 * 1024


def pull(work: Path, kind: str, expect: tuple[int, int]) -> dict[str, Any]:
    """One library pulled by libmirror into an empty folder; checks that every byte arrived."""
    with CtlSandbox(work / f"sandbox-{kind}") as sandbox:
        mirror = work / f"mirror-{kind}"
        (work / f"lm-{kind}").mkdir()
        config = write_config(work / f"lm-{kind}", sandbox.remote, mirror, concurrency=8)
        run = sync_once(config)
        requests = sandbox.ask("count")["requests"]
    got = tree_stats(mirror)
    if got != expect:
        raise RuntimeError(f"pulled {got} (files, bytes), expected {expect}")
    shutil.rmtree(mirror)
    return {"seconds": run.seconds, "rss": run.peak_rss_mb, "requests": requests}


def rclone_pull(work: Path, kind: str, expect: tuple[int, int]) -> float | None:
    if RCLONE is None:
        return None
    dest = work / f"rclone-{kind}"
    with rclone_serve("http", work / "src" / kind) as url:
        run = run_timed(rclone_args("copy", ":http:", str(dest), "--http-url", url))
    if run.returncode != 0 or tree_stats(dest) != expect:
        raise RuntimeError(f"rclone copy failed ({run.returncode}, {tree_stats(dest)})")
    shutil.rmtree(dest)
    return run.seconds


def main(small: int = SMALL) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-pull-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        build_coredata_tree(work / "sandbox-small", small=small, folders=FOLDERS, large=0, large_size=0)
        build_coredata_tree(work / "sandbox-large", small=0, folders=0, large=LARGE, large_size=LARGE_SIZE, seed=2)
        small_tree = export_tree(work / "sandbox-small", work / "src" / "small")
        large_tree = export_tree(work / "sandbox-large", work / "src" / "large")
        print(f"set-up: {small_tree[0]} small + {large_tree[0]} large files in {time.perf_counter() - start:.1f} s")

        lm_small = pull(work, "small", small_tree)
        lm_large = pull(work, "large", large_tree)
        rc_small = rclone_pull(work, "small", small_tree)
        rc_large = rclone_pull(work, "large", large_tree)
        floor_large = floor_seconds(work / "src" / "large", work / "floor")
        floor_small = floor_seconds(work / "src" / "small", work / "floor")

    large_mb = large_tree[1] / MB
    result: dict[str, Any] = {
        "files_per_s": rnd(small / lm_small["seconds"]),
        "rclone_files_per_s": rnd(small / rc_small) if rc_small else None,
        "floor_files_per_s": rnd(small / floor_small),
        "large_mb_per_s": rnd(large_mb / lm_large["seconds"]),
        "rclone_large_mb_per_s": rnd(large_mb / rc_large) if rc_large else None,
        "floor_mb_per_s": rnd(large_mb / floor_large),
        "peak_rss_mb": rnd(max(lm_small["rss"], lm_large["rss"])),
        "peak_rss_mb_small": rnd(lm_small["rss"]),
        "peak_rss_mb_large": rnd(lm_large["rss"]),
        "small_s": rnd(lm_small["seconds"], 2),
        "large_s": rnd(lm_large["seconds"], 2),
        "requests_small": lm_small["requests"],
        "requests_large": lm_large["requests"],
        "concurrency": 8,
    }
    print(f"initial pull, libmirror sync --once (concurrency 8), rclone: {rclone_version() or 'not installed'}")
    print(
        f"  {small} small files: libmirror {result['files_per_s']} files/s ({result['small_s']} s, "
        f"{lm_small['requests']} requests), rclone {result['rclone_files_per_s']} files/s, "
        f"cp+md5sum floor {result['floor_files_per_s']} files/s"
    )
    print(
        f"  {LARGE} x 16 MiB: libmirror {result['large_mb_per_s']} MB/s ({result['large_s']} s), "
        f"rclone {result['rclone_large_mb_per_s']} MB/s, cp+md5sum floor {result['floor_mb_per_s']} MB/s"
    )
    print(
        f"  peak RSS of libmirror: {result['peak_rss_mb_small']} MB (small), {result['peak_rss_mb_large']} MB (large)"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SMALL)
