"""Benchmark 1, initial pull: the CoreData sandbox (separate process, loopback) into an empty folder.

Three libraries, timed separately: 10,000 files of 1-8 KiB in 100 folders, 10 files of 16 MiB, and
one file of 1 GiB. libmirror runs `sync --once` with concurrency 8. References on the same bytes in
the same run: `rclone copy` from `rclone serve http` (loopback, --transfers 8 --checkers 8), and the
local floor `cp -r` + `md5sum`.

CPU per file and per MiB are given twice: as measured (the whole process, start-up included) and net
of the fixed cost of a run, which a second `sync --once` with nothing to do measures right after
(start-up, the listing, the scan of the tree now in sync): ``*_net`` = (pull - that) / files or MiB.
Usage: python -m bench.initial_pull [SMALL_FILES [HUGE_MIB]]   (HUGE_MIB 0 skips the 1 GiB file)
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    RCLONE,
    CtlSandbox,
    build_coredata_tree,
    export_tree,
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

SMALL, FOLDERS, LARGE, LARGE_SIZE = 10_000, 100, 10, 16 * 1024 * 1024
HUGE_MIB = 1024  # the one large file of the third library
SERVER_CORE, CLIENT_CORE = "0", "1"  # the pinned runs: each side on a core of its own
MB = 1024 * 1024


def pull(work: Path, kind: str, expect: tuple[int, int], pin: bool = False) -> dict[str, Any]:
    """One library pulled by libmirror into an empty folder; checks that every byte arrived. ``pin``:
    the sandbox on core 0, the client on core 1. CPU seconds of each side are measured apart."""
    label = f"{kind}-pinned" if pin else kind
    with CtlSandbox(work / f"sandbox-{kind}", cores=SERVER_CORE if pin else None) as sandbox:
        mirror = work / f"mirror-{label}"
        (work / f"lm-{label}").mkdir()
        config = write_config(work / f"lm-{label}", sandbox.remote, mirror, concurrency=8)
        before = sandbox.cpu_s()
        run = sync_once(config, CLIENT_CORE if pin else None)
        server_cpu = sandbox.cpu_s() - before
        requests = sandbox.ask("count")["requests"]
        fixed = sync_once(config, CLIENT_CORE if pin else None)  # nothing left to do: the fixed cost
    got = tree_stats(mirror)
    if got != expect:
        raise RuntimeError(f"pulled {got} (files, bytes), expected {expect}")
    shutil.rmtree(mirror)
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


def rclone_pull(work: Path, kind: str, expect: tuple[int, int], pin: bool = False) -> dict[str, float] | None:
    """rclone copy from rclone serve http; wall time and both sides' CPU seconds."""
    if RCLONE is None:
        return None
    dest = work / f"rclone-{kind}"
    with rclone_server("http", work / "src" / kind, SERVER_CORE if pin else None) as (url, server):
        before = proc_cpu_s(server.pid)
        run = run_timed(rclone_args("copy", ":http:", str(dest), "--http-url", url), CLIENT_CORE if pin else None)
        server_cpu = proc_cpu_s(server.pid) - before
    if run.returncode != 0 or tree_stats(dest) != expect:
        raise RuntimeError(f"rclone copy failed ({run.returncode}, {tree_stats(dest)})")
    shutil.rmtree(dest)
    return {"seconds": run.seconds, "client_cpu_s": run.cpu_s, "server_cpu_s": server_cpu}


def _per(value: float | None, count: float, scale: float = 1000.0) -> float | None:
    """``value`` seconds per item, in ms (``scale`` 1000), rounded; None stays None."""
    return None if value is None else rnd(value * scale / count, 2)


def _rate(amount: float, seconds: float | None) -> float | None:
    """``amount`` per second, rounded; None without a time."""
    return rnd(amount / seconds) if seconds else None


def in_child(build: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Run ``build`` in a forked child: the GiB it holds in memory must not raise this process's RSS,
    which every `libmirror` it starts would inherit as its own peak (Linux keeps ru_maxrss across exec)."""
    child = multiprocessing.get_context("fork").Process(target=build, args=args, kwargs=kwargs)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"building the tree failed (exit {child.exitcode})")


def huge_pull(work: Path, huge_mib: int) -> dict[str, Any]:
    """The 1 GiB library: libmirror, rclone and the floor on the same file; its sandbox and copies are
    removed before returning (a GiB each)."""
    if huge_mib <= 0:
        return {}
    in_child(build_coredata_tree, work / "sandbox-huge", small=0, folders=0, large=1, large_size=huge_mib * MB, seed=3)
    tree = export_tree(work / "sandbox-huge", work / "src" / "huge")
    try:
        warm_up(work / "src" / "huge", work / "floor")
        lm = pull(work, "huge", tree)
        rc = rclone_pull(work, "huge", tree)
        floor = floor_seconds(work / "src" / "huge", work / "floor")
    finally:
        shutil.rmtree(work / "sandbox-huge", ignore_errors=True)
        shutil.rmtree(work / "src" / "huge", ignore_errors=True)
    mib = tree[1] / MB
    return {
        "huge_mib": rnd(mib),
        "huge_mb_per_s": rnd(mib / lm["seconds"]),
        "huge_mb_per_s_in_pass": _rate(mib, lm["pass_s"]),
        "rclone_huge_mb_per_s": rnd(mib / rc["seconds"]) if rc else None,
        "floor_huge_mb_per_s": rnd(mib / floor),
        "client_cpu_ms_per_mib_huge": _per(lm["client_cpu_s"], mib),
        "client_cpu_ms_per_mib_huge_net": _per(lm["net_cpu_s"], mib),
        "rclone_cpu_ms_per_mib_huge": _per(rc["client_cpu_s"], mib) if rc else None,
        "peak_rss_mb_huge": rnd(lm["rss"]),
    }


def main(small: int = SMALL, huge_mib: int = HUGE_MIB) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-pull-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        build_coredata_tree(work / "sandbox-small", small=small, folders=FOLDERS, large=0, large_size=0)
        build_coredata_tree(work / "sandbox-large", small=0, folders=0, large=LARGE, large_size=LARGE_SIZE, seed=2)
        small_tree = export_tree(work / "sandbox-small", work / "src" / "small")
        large_tree = export_tree(work / "sandbox-large", work / "src" / "large")
        print(f"set-up: {small_tree[0]} small + {large_tree[0]} large files in {time.perf_counter() - start:.1f} s")

        lm_small = pull(work, "small", small_tree)
        warm_up(work / "src" / "large", work / "floor")  # see warm_up: the same for every compared run
        lm_large = pull(work, "large", large_tree)
        rc_small = rclone_pull(work, "small", small_tree)
        rc_large = rclone_pull(work, "large", large_tree)
        lm_pinned = pull(work, "small", small_tree, pin=True)
        rc_pinned = rclone_pull(work, "small", small_tree, pin=True)
        floor_large = floor_seconds(work / "src" / "large", work / "floor")
        floor_small = floor_seconds(work / "src" / "small", work / "floor")
        huge = huge_pull(work, huge_mib)

    large_mb = large_tree[1] / MB
    result: dict[str, Any] = {
        "files_per_s": rnd(small / lm_small["seconds"]),
        "rclone_files_per_s": rnd(small / rc_small["seconds"]) if rc_small else None,
        "floor_files_per_s": rnd(small / floor_small),
        "large_mb_per_s": rnd(large_mb / lm_large["seconds"]),
        "large_mb_per_s_in_pass": _rate(large_mb, lm_large["pass_s"]),
        "rclone_large_mb_per_s": rnd(large_mb / rc_large["seconds"]) if rc_large else None,
        "floor_mb_per_s": rnd(large_mb / floor_large),
        "peak_rss_mb": rnd(max(lm_small["rss"], lm_large["rss"])),
        "peak_rss_mb_small": rnd(lm_small["rss"]),
        "peak_rss_mb_large": rnd(lm_large["rss"]),
        "small_s": rnd(lm_small["seconds"], 2),
        "large_s": rnd(lm_large["seconds"], 2),
        "requests_small": lm_small["requests"],
        "requests_large": lm_large["requests"],
        "concurrency": 8,
        # CPU of each program apart (user + system, every thread): a slow sandbox cannot hide a slow client
        "client_cpu_ms_per_file": _per(lm_small["client_cpu_s"], small),
        "client_cpu_ms_per_file_net": _per(lm_small["net_cpu_s"], small),
        "client_fixed_cpu_s": rnd(lm_small["fixed_cpu_s"], 2),
        "sandbox_cpu_ms_per_file": _per(lm_small["server_cpu_s"], small),
        "rclone_cpu_ms_per_file": _per(rc_small["client_cpu_s"], small) if rc_small else None,
        "rclone_serve_cpu_ms_per_file": _per(rc_small["server_cpu_s"], small) if rc_small else None,
        "client_cpu_ms_per_mib": _per(lm_large["client_cpu_s"], large_mb),
        "client_cpu_ms_per_mib_net": _per(lm_large["net_cpu_s"], large_mb),
        "sandbox_cpu_ms_per_mib": _per(lm_large["server_cpu_s"], large_mb),
        "rclone_cpu_ms_per_mib": _per(rc_large["client_cpu_s"], large_mb) if rc_large else None,
        "rclone_serve_cpu_ms_per_mib": _per(rc_large["server_cpu_s"], large_mb) if rc_large else None,
        "files_per_s_pinned": rnd(small / lm_pinned["seconds"]),
        "rclone_files_per_s_pinned": rnd(small / rc_pinned["seconds"]) if rc_pinned else None,
        **huge,
    }
    print(f"initial pull, libmirror sync --once (concurrency 8), rclone: {rclone_version() or 'not installed'}")
    print(
        f"  {small} small files: libmirror {result['files_per_s']} files/s ({result['small_s']} s, "
        f"{lm_small['requests']} requests), rclone {result['rclone_files_per_s']} files/s, "
        f"cp+md5sum floor {result['floor_files_per_s']} files/s"
    )
    print(
        f"  {LARGE} x 16 MiB: libmirror {result['large_mb_per_s']} MB/s ({result['large_s']} s; "
        f"{result['large_mb_per_s_in_pass']} MB/s in its pass, without start-up), "
        f"rclone {result['rclone_large_mb_per_s']} MB/s, cp+md5sum floor {result['floor_mb_per_s']} MB/s"
    )
    if huge:
        print(
            f"  1 x {huge['huge_mib']} MiB: libmirror {huge['huge_mb_per_s']} MB/s "
            f"({huge['huge_mb_per_s_in_pass']} MB/s in its pass; CPU {huge['client_cpu_ms_per_mib_huge']} ms/MiB, "
            f"{huge['client_cpu_ms_per_mib_huge_net']} net; "
            f"peak RSS {huge['peak_rss_mb_huge']} MB), rclone "
            f"{huge['rclone_huge_mb_per_s']} MB/s ({huge['rclone_cpu_ms_per_mib_huge']} ms/MiB), cp+md5sum floor "
            f"{huge['floor_huge_mb_per_s']} MB/s"
        )
    print(
        f"  fixed CPU of a run (start-up, listing, scan; a second sync --once with nothing to do): "
        f"{result['client_fixed_cpu_s']} s; net of it: {result['client_cpu_ms_per_file_net']} ms per small file, "
        f"{result['client_cpu_ms_per_mib_net']} ms per MiB"
    )
    print(
        f"  CPU per file (small): libmirror {result['client_cpu_ms_per_file']} ms, its sandbox "
        f"{result['sandbox_cpu_ms_per_file']} ms; rclone {result['rclone_cpu_ms_per_file']} ms, rclone serve "
        f"{result['rclone_serve_cpu_ms_per_file']} ms"
    )
    print(
        f"  CPU per MiB (large): libmirror {result['client_cpu_ms_per_mib']} ms, its sandbox "
        f"{result['sandbox_cpu_ms_per_mib']} ms; rclone {result['rclone_cpu_ms_per_mib']} ms, rclone serve "
        f"{result['rclone_serve_cpu_ms_per_mib']} ms"
    )
    print(
        f"  pinned (server core {SERVER_CORE}, client core {CLIENT_CORE}): libmirror {result['files_per_s_pinned']} "
        f"files/s, rclone {result['rclone_files_per_s_pinned']} files/s"
    )
    print(
        f"  peak RSS of libmirror: {result['peak_rss_mb_small']} MB (small), {result['peak_rss_mb_large']} MB (large)"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SMALL, int(sys.argv[2]) if len(sys.argv) > 2 else HUGE_MIB)
