"""Benchmark 2, initial push: a folder on disk into an empty CoreData sandbox (separate process, loopback).

The same two trees as the pull (10,000 files of 1-8 KiB in 100 folders; 10 files of 16 MiB), written
straight to disk, pushed by `libmirror sync --once` (concurrency 8) into two empty sandboxes, timed
separately. References in the same run: `rclone copy` to `rclone serve webdav` of an empty folder
(loopback, --transfers 8 --checkers 8; for the small files only the first 20 folders, 2,000 files,
see ``rclone_push``) and the local floor `cp -r` + `md5sum`. A third library holds one file of 1 GiB.
CPU is given as measured and net of a run's fixed cost, as in ``bench.initial_pull``.
Usage: python -m bench.initial_push [SMALL_FILES [HUGE_MIB]]   (HUGE_MIB 0 skips the 1 GiB file)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RCLONE,
    CtlSandbox,
    build_local_tree,
    floor_seconds,
    last_json,
    proc_cpu_s,
    rclone_args,
    rclone_server,
    rclone_version,
    rnd,
    run_timed,
    sync_once,
    tree_stats,
    warm_up,
    write_config,
)
from bench.initial_pull import FOLDERS, HUGE_MIB, LARGE, LARGE_SIZE, MB, SMALL, _per, _rate, in_child

RCLONE_FOLDERS = 20  # the rclone small-file reference pushes the first 20 of the 100 folders


def push(work: Path, kind: str, expect: tuple[int, int]) -> dict[str, Any]:
    """One tree pushed by libmirror into an empty sandbox; checks the sandbox then holds every byte."""
    mirror = work / f"mirror-{kind}"
    subprocess.run(["cp", "-r", str(work / "src" / kind), str(mirror)], check=True)
    with CtlSandbox(work / f"sandbox-{kind}") as sandbox:
        (work / f"lm-{kind}").mkdir()
        config = write_config(work / f"lm-{kind}", sandbox.remote, mirror, concurrency=8)
        before = sandbox.cpu_s()
        run = sync_once(config)
        server_cpu = sandbox.cpu_s() - before
        requests = sandbox.ask("count")["requests"]
        stats = sandbox.ask("stats")
        fixed = sync_once(config)  # nothing left to do: the fixed cost of a run
    if (stats["files"], stats["bytes"]) != expect:
        raise RuntimeError(f"the sandbox holds {stats}, expected {expect} (files, bytes)")
    shutil.rmtree(mirror)
    shutil.rmtree(work / f"sandbox-{kind}")
    return {
        "seconds": run.seconds,
        "rss": run.peak_rss_mb,
        "requests": requests,
        "client_cpu_s": run.cpu_s,
        "server_cpu_s": server_cpu,
        "fixed_cpu_s": fixed.cpu_s,
        "net_cpu_s": max(0.0, run.cpu_s - fixed.cpu_s),
        "pass_s": run.pass_s,
    }


def rclone_push(work: Path, kind: str, folders: int | None = None) -> tuple[float, int, float, float] | None:
    """`rclone copy` of the tree (or of its first ``folders`` folders) to `rclone serve webdav`.

    Returns (seconds, files, client CPU seconds, server CPU seconds). The subset exists for time:
    rclone's webdav backend spaces its calls (about 45 files/s here whatever the file size), so the whole
    10,000 files would cost ~4 minutes of the 15 that `make bench` may take, for the same files/s.
    """
    if RCLONE is None:
        return None
    src, dest = work / "src" / kind, work / f"rclone-{kind}"
    dest.mkdir()
    subset: list[str] = []
    if folders is not None:
        names = sorted(p.name for p in src.iterdir() if p.is_dir())[:folders]
        subset = [arg for name in names for arg in ("--include", f"/{name}/**")]
        expect = (sum(tree_stats(src / n)[0] for n in names), sum(tree_stats(src / n)[1] for n in names))
    else:
        expect = tree_stats(src)
    with rclone_server("webdav", dest) as (url, server):
        before = proc_cpu_s(server.pid)
        run = run_timed(rclone_args("copy", str(src), ":webdav:", "--webdav-url", url, *subset))
        server_cpu = proc_cpu_s(server.pid) - before
    if run.returncode != 0 or tree_stats(dest) != expect:
        raise RuntimeError(f"rclone copy failed ({run.returncode}, {tree_stats(dest)}, expected {expect})")
    shutil.rmtree(dest)
    return run.seconds, expect[0], run.cpu_s, server_cpu


def huge_push(work: Path, huge_mib: int) -> dict[str, Any]:
    """The 1 GiB library pushed by libmirror and by rclone, and the floor; removed before returning."""
    if huge_mib <= 0:
        return {}
    in_child(build_local_tree, work / "src" / "huge", small=0, folders=0, large=1, large_size=huge_mib * MB, seed=3)
    tree = tree_stats(work / "src" / "huge")
    try:
        warm_up(work / "src" / "huge", work / "floor")
        lm = push(work, "huge", tree)
        rc = rclone_push(work, "huge")
        floor = floor_seconds(work / "src" / "huge", work / "floor")
    finally:
        shutil.rmtree(work / "src" / "huge", ignore_errors=True)
    mib = tree[1] / MB
    return {
        "push_huge_mib": rnd(mib),
        "push_huge_mb_per_s": rnd(mib / lm["seconds"]),
        "push_huge_mb_per_s_in_pass": _rate(mib, lm["pass_s"]),
        "rclone_push_huge_mb_per_s": rnd(mib / rc[0]) if rc else None,
        "push_floor_huge_mb_per_s": rnd(mib / floor),
        "push_client_cpu_ms_per_mib_huge": _per(lm["client_cpu_s"], mib),
        "push_client_cpu_ms_per_mib_huge_net": _per(lm["net_cpu_s"], mib),
        "push_rclone_cpu_ms_per_mib_huge": _per(rc[2], mib) if rc else None,
        "push_peak_rss_mb_huge": rnd(lm["rss"]),
    }


def main(small: int = SMALL, huge_mib: int = HUGE_MIB) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-push-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        build_local_tree(work / "src" / "small", small=small, folders=FOLDERS, large=0, large_size=0)
        build_local_tree(work / "src" / "large", small=0, folders=0, large=LARGE, large_size=LARGE_SIZE, seed=2)
        small_tree, large_tree = tree_stats(work / "src" / "small"), tree_stats(work / "src" / "large")
        print(f"set-up: {small_tree[0]} small + {large_tree[0]} large files in {time.perf_counter() - start:.1f} s")

        lm_small = push(work, "small", small_tree)
        warm_up(work / "src" / "large", work / "floor")  # see warm_up: the same for every compared run
        lm_large = push(work, "large", large_tree)
        rc_small = rclone_push(work, "small", folders=RCLONE_FOLDERS)
        rc_large = rclone_push(work, "large")
        floor_large = floor_seconds(work / "src" / "large", work / "floor")
        huge = huge_push(work, huge_mib)

    large_mb = large_tree[1] / MB
    result: dict[str, Any] = {
        "push_files_per_s": rnd(small / lm_small["seconds"]),
        "rclone_push_files_per_s": rnd(rc_small[1] / rc_small[0]) if rc_small else None,
        "rclone_push_files": rc_small[1] if rc_small else None,
        "push_large_mb_per_s": rnd(large_mb / lm_large["seconds"]),
        "push_large_mb_per_s_in_pass": _rate(large_mb, lm_large["pass_s"]),
        "rclone_push_large_mb_per_s": rnd(large_mb / rc_large[0]) if rc_large else None,
        "push_floor_mb_per_s": rnd(large_mb / floor_large),
        "push_peak_rss_mb": rnd(max(lm_small["rss"], lm_large["rss"])),
        "push_peak_rss_mb_small": rnd(lm_small["rss"]),
        "push_peak_rss_mb_large": rnd(lm_large["rss"]),
        "push_small_s": rnd(lm_small["seconds"], 2),
        "push_large_s": rnd(lm_large["seconds"], 2),
        "push_requests_small": lm_small["requests"],
        "push_requests_large": lm_large["requests"],
        "concurrency": 8,
        "push_client_cpu_ms_per_file": _per(lm_small["client_cpu_s"], small),
        "push_client_cpu_ms_per_file_net": _per(lm_small["net_cpu_s"], small),
        "push_client_fixed_cpu_s": rnd(lm_small["fixed_cpu_s"], 2),
        "push_sandbox_cpu_ms_per_file": _per(lm_small["server_cpu_s"], small),
        "push_rclone_cpu_ms_per_file": _per(rc_small[2], rc_small[1]) if rc_small else None,
        "push_rclone_serve_cpu_ms_per_file": _per(rc_small[3], rc_small[1]) if rc_small else None,
        "push_client_cpu_ms_per_mib": _per(lm_large["client_cpu_s"], large_mb),
        "push_client_cpu_ms_per_mib_net": _per(lm_large["net_cpu_s"], large_mb),
        "push_sandbox_cpu_ms_per_mib": _per(lm_large["server_cpu_s"], large_mb),
        "push_rclone_cpu_ms_per_mib": _per(rc_large[2], large_mb) if rc_large else None,
        **huge,
    }
    print(f"initial push, libmirror sync --once (concurrency 8), rclone: {rclone_version() or 'not installed'}")
    print(
        f"  {small} small files: libmirror {result['push_files_per_s']} files/s ({result['push_small_s']} s, "
        f"{lm_small['requests']} requests), rclone (webdav) {result['rclone_push_files_per_s']} files/s "
        f"(on {result['rclone_push_files']} of the files)"
    )
    print(
        f"  {LARGE} x 16 MiB: libmirror {result['push_large_mb_per_s']} MB/s ({result['push_large_s']} s; "
        f"{result['push_large_mb_per_s_in_pass']} MB/s in its pass, without start-up), "
        f"rclone (webdav) {result['rclone_push_large_mb_per_s']} MB/s, "
        f"cp+md5sum floor {result['push_floor_mb_per_s']} MB/s"
    )
    if huge:
        print(
            f"  1 x {huge['push_huge_mib']} MiB: libmirror {huge['push_huge_mb_per_s']} MB/s "
            f"({huge['push_huge_mb_per_s_in_pass']} MB/s in its pass) "
            f"(CPU {huge['push_client_cpu_ms_per_mib_huge']} ms/MiB, {huge['push_client_cpu_ms_per_mib_huge_net']} "
            f"net; peak RSS {huge['push_peak_rss_mb_huge']} MB), rclone (webdav) {huge['rclone_push_huge_mb_per_s']} "
            f"MB/s, cp+md5sum floor {huge['push_floor_huge_mb_per_s']} MB/s"
        )
    print(
        f"  fixed CPU of a run (a second sync --once with nothing to do): {result['push_client_fixed_cpu_s']} s; "
        f"net of it: {result['push_client_cpu_ms_per_file_net']} ms per small file, "
        f"{result['push_client_cpu_ms_per_mib_net']} ms per MiB"
    )
    print(
        f"  CPU per file (small): libmirror {result['push_client_cpu_ms_per_file']} ms, its sandbox "
        f"{result['push_sandbox_cpu_ms_per_file']} ms; rclone {result['push_rclone_cpu_ms_per_file']} ms, "
        f"rclone serve webdav {result['push_rclone_serve_cpu_ms_per_file']} ms"
    )
    print(
        f"  CPU per MiB (large): libmirror {result['push_client_cpu_ms_per_mib']} ms, its sandbox "
        f"{result['push_sandbox_cpu_ms_per_mib']} ms; rclone {result['push_rclone_cpu_ms_per_mib']} ms"
    )
    print(
        f"  peak RSS of libmirror: {result['push_peak_rss_mb_small']} MB (small), "
        f"{result['push_peak_rss_mb_large']} MB (large)"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SMALL, int(sys.argv[2]) if len(sys.argv) > 2 else HUGE_MIB)
