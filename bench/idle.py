"""Benchmark 3, idle: a 100,000-file library already in sync, with the daemon running.

Set-up ("adopt"): the sandbox state is built directly (``build_coredata_tree``, dated an hour back, then
one file edited now: see ``touch_one``) and its files are
copied to the local folder byte for byte. The engine then adopts the pair in this process with its
own code: ``observe_remote(full=True)``, ``observe_local()`` (hashes every file), ``plan`` (every path
must come out as RECORD: same digest on both sides) and the executor's ``synced_row`` for each, only
batched into transactions of 5,000 rows instead of one per path. A first `sync --once` does exactly
this but one transaction per path (~3 minutes for 100k on this machine), too slow for `make bench`.
The daemon's start-up pass (full listing + full rescan) then proves the library is in sync: it must
transfer nothing.

Measured, the sandbox in a separate process (``bench.sandbox_ctl``, which counts requests):
- `libmirror run` with poll_interval = 1: after its start-up pass and the watcher's catch-up rescans
  (until it logs ``watcher_catch_up_done``; their CPU, less the idle polls meanwhile, is
  `cpu_ms_per_catch_up_rescan`), N idle polls; requests the sandbox answered per poll, and the daemon's
  CPU time (/proc/PID/stat) per poll; `rss_mb_100k` = its RSS.
- in-process: `LibrarySync.observe_remote(full=False)` CPU time (`cpu_ms_per_observe_remote`) and
  `LibrarySync.observe_local()` wall time on the unchanged tree (`rescan_s`, best of three).
- `find DIR -printf '%s %T@\\n'` (`find_s`, the stat floor, best of three) and one `rclone bisync` between two local
  copies of the tree after its `--resync` (`rclone_bisync_s`).
Usage: python -m bench.idle [FILES] [POLLS]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench.common import (
    RCLONE,
    CtlSandbox,
    Daemon,
    build_coredata_tree,
    export_tree,
    last_json,
    proc_cpu_s,
    proc_rss_mb,
    rnd,
    run_timed,
    write_config,
)

if TYPE_CHECKING:
    from daemon.sync.library import LibrarySync

FILES, FOLDERS, POLLS = 100_000, 1000, 10
RUNS = 3  # the rescan and find are each timed this many times; the best of each is reported (one run wanders)
AGE_S = 3600.0


def touch_one(data_dir: Path) -> None:
    """One file edited now on a library built an hour ago: the server's newest change is recent.

    A changed-since poll asks for ``modified >= newest - overlap`` (120 s for CoreData). Were all
    100k files as new as the newest, every idle poll would fetch all of them again (see the report
    of issue 8); a library at rest has its bulk well before its newest change.
    """
    from daemon.sandbox.coredata_backend import CoreDataBackend

    backend = CoreDataBackend(data_dir)
    try:
        first = next(backend.files())
        backend.set_content(first.id, os.urandom(first.size or 1024))
    finally:
        backend.close()


async def adopt(config_path: Path) -> dict[str, float]:
    """Bring a library whose two sides hold the same bytes into sync with the engine's own steps."""
    from daemon.local import marker
    from daemon.sync.execute import synced_row
    from daemon.sync.plan import plan
    from daemon.vocab import ActionKind

    timings: dict[str, float] = {}
    async with _engine(config_path) as engine:
        marker.ensure_marker(engine.root)  # as the first `sync --once` does: the root is a mirror now
        start = time.perf_counter()
        await engine.observe_remote(full=True)
        timings["adopt_list_s"] = time.perf_counter() - start
        start = time.perf_counter()
        await engine.observe_local()
        timings["adopt_scan_s"] = time.perf_counter() - start
        start = time.perf_counter()
        actions = plan(await engine.store.changed_states(engine.lib), engine.options, now_label="bench")
        others = [a for a in actions if a.kind is not ActionKind.RECORD]
        if others:
            raise RuntimeError(f"{len(others)} paths differ between the two sides, e.g. {others[0]}")
        for i in range(0, len(actions), 5000):
            async with engine.store.batched(engine.lib) as tx:
                for a in actions[i : i + 5000]:
                    assert a.local is not None and a.remote is not None
                    await tx.put_synced(synced_row(a.path, a.local, a.remote))
        timings["adopt_record_s"] = time.perf_counter() - start
    return timings


@asynccontextmanager
async def _engine(config_path: Path) -> AsyncIterator[LibrarySync]:
    """A ``LibrarySync`` on the benchmark's config, in this process (logs at warning level)."""
    import structlog

    from daemon.config import load_config
    from daemon.logs import configure_logging
    from daemon.providers import make_provider
    from daemon.state.store import StateStore
    from daemon.sync.library import LibrarySync

    configure_logging("json", "warning")
    structlog.contextvars.clear_contextvars()
    library = load_config(config_path).libraries[0]
    store = await StateStore.open(load_config(config_path).state_dir)
    provider = make_provider(library.remote)
    try:
        yield LibrarySync(library, store, await store.library_id(library.name), provider)
    finally:
        await provider.aclose()
        await store.close()


async def in_process(config_path: Path, calls: int) -> dict[str, float]:
    """CPU of incremental polls and wall time of a full local rescan, in this process."""
    async with _engine(config_path) as engine:
        await engine.observe_remote(full=False)  # warm-up: connection, imports
        cpu = time.process_time()
        for _ in range(calls):
            await engine.observe_remote(full=False)
        poll_cpu = (time.process_time() - cpu) / calls
        rescans = []
        for _ in range(RUNS):
            wall, cpu = time.perf_counter(), time.process_time()
            changed = await engine.observe_local()
            rescans.append((time.perf_counter() - wall, time.process_time() - cpu, changed))
    rescan_s, rescan_cpu, changed = min(rescans)
    return {"poll_cpu_s": poll_cpu, "rescan_s": rescan_s, "rescan_cpu_s": rescan_cpu, "rescan_changed": changed}


def idle_daemon(config: Path, sandbox: CtlSandbox, polls: int) -> dict[str, Any]:
    with Daemon(config) as daemon:
        started = time.perf_counter()
        first = daemon.wait_for("pass", timeout=600)
        startup_s = time.perf_counter() - started
        if first.get("pushed") or first.get("pulled") or first.get("errors"):
            raise RuntimeError(f"the library was not in sync when the daemon started: {first}")
        # the watcher's catch-up rescans (runner.WATCH_CATCH_UP_S after it starts) are not idle polls:
        # their CPU is counted apart, from the end of the start-up pass to the event that ends them
        cpu0, wall0 = proc_cpu_s(daemon.pid), time.perf_counter()
        caught_up = daemon.wait_for("watcher_catch_up_done", timeout=600)
        catch_up_cpu, catch_up_wall = proc_cpu_s(daemon.pid) - cpu0, time.perf_counter() - wall0
        catch_up_polls = daemon.count_seen("poll", kind="incremental")
        daemon.wait_for("poll", timeout=60, kind="incremental")  # the measured polls start right after one
        sandbox.ask("clear")
        cpu0, wall0 = proc_cpu_s(daemon.pid), time.perf_counter()
        passes = []  # an idle poll that finds nothing runs no pass: its "poll" line is all it logs
        for _ in range(polls):
            passes.append(daemon.wait_for("poll", timeout=60, kind="incremental"))
        cpu = proc_cpu_s(daemon.pid) - cpu0
        wall = time.perf_counter() - wall0
        counted = sandbox.ask("count")
        rss, hwm = proc_rss_mb(daemon.pid), proc_rss_mb(daemon.pid, "VmHWM")
    return {
        "catch_up_rescans": caught_up.get("rescans"),
        "catch_up_cpu_s": catch_up_cpu,
        "catch_up_wall_s": catch_up_wall,
        "catch_up_polls": catch_up_polls,
        "startup_pass_s": startup_s,
        "startup_pass_ms_logged": first.get("duration_ms"),
        "requests": counted["requests"],
        "routes": counted["by_route"],
        "cpu_s": cpu,
        "wall_s": wall,
        "passes_run": sum(1 for p in passes if p.get("changed") or p.get("left")),
        "rss_mb": rss,
        "hwm_mb": hwm,
    }


def bisync(work: Path, mirror: Path) -> dict[str, float | None]:
    if RCLONE is None:
        return {"resync_s": None, "bisync_s": None}
    shutil.rmtree(mirror / ".libmirror", ignore_errors=True)
    other = work / "bisync-copy"
    subprocess.run(["cp", "-r", str(mirror), str(other)], check=True)
    base = [RCLONE, "bisync", str(mirror), str(other), "--workdir", str(work / "bisync-work"), "--config", "/dev/null"]
    resync = run_timed([*base, "--resync"])
    again = run_timed(base)
    if resync.returncode != 0 or again.returncode != 0:
        raise RuntimeError(f"rclone bisync failed ({resync.returncode}, {again.returncode})")
    return {"resync_s": resync.seconds, "bisync_s": again.seconds}


def main(files: int = FILES, polls: int = POLLS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-idle-") as tmp:
        work = Path(tmp)
        mirror = work / "mirror"
        start = time.perf_counter()
        build_coredata_tree(work / "sandbox", small=files, folders=FOLDERS, large=0, large_size=0, age_s=AGE_S)
        touch_one(work / "sandbox")
        exported = export_tree(work / "sandbox", mirror)
        print(
            f"set-up: {exported[0]} files ({exported[1] // 2**20} MiB) on both sides "
            f"in {time.perf_counter() - start:.1f} s"
        )
        with CtlSandbox(work / "sandbox") as sandbox:
            config = write_config(
                work,
                sandbox.remote,
                mirror,
                concurrency=8,
                library={"poll_interval": 1, "full_scan_interval": 86400, "local_rescan_interval": 86400},
                top={"allow_root": True},
            )
            adopted = anyio.run(adopt, config)
            print(
                "  adopt in-process: full listing {adopt_list_s:.1f} s, full scan with hashing "
                "{adopt_scan_s:.1f} s, plan + record {adopt_record_s:.1f} s".format(**adopted)
            )
            daemon = idle_daemon(config, sandbox, polls)
            inproc = anyio.run(in_process, config, polls)
        finds = [run_timed(["find", str(mirror), "-printf", "%s %T@\\n"]) for _ in range(RUNS)]
        find = min(finds, key=lambda r: r.seconds)
        rclone = bisync(work, mirror)

    poll_cpu_s = daemon["cpu_s"] / polls
    # the catch-up window also held idle polls: their CPU (as measured after it) is taken out
    rescan_cpu_s = max(0.0, daemon["catch_up_cpu_s"] - daemon["catch_up_polls"] * poll_cpu_s)
    result: dict[str, Any] = {
        "requests_per_idle_poll": rnd(daemon["requests"] / polls, 2),
        "cpu_ms_per_idle_poll": rnd(1000 * poll_cpu_s),
        "cpu_ms_per_catch_up_rescan": rnd(1000 * rescan_cpu_s / max(1, daemon["catch_up_rescans"] or 1)),
        "rescan_s": rnd(inproc["rescan_s"], 2),
        "find_s": rnd(find.seconds, 2),
        "find_cpu_s": rnd(find.cpu_s, 2),
        # on a shared machine wall times wander with the load; CPU time against CPU time does much less
        "rescan_cpu_ratio": rnd(inproc["rescan_cpu_s"] / find.cpu_s, 2) if find.cpu_s else None,
        "rss_mb_100k": rnd(daemon["rss_mb"]),
        "rclone_bisync_s": rnd(rclone["bisync_s"], 2),
        "files": files,
        "idle_polls": polls,
        "poll_interval": 1,
        "idle_passes_run": daemon["passes_run"],
        "cpu_ms_per_observe_remote": rnd(1000 * inproc["poll_cpu_s"]),
        "rescan_cpu_s": rnd(inproc["rescan_cpu_s"], 2),
        "rescan_changed_rows": inproc["rescan_changed"],
        "catch_up_rescans": daemon["catch_up_rescans"],
        "catch_up_cpu_s": rnd(daemon["catch_up_cpu_s"], 2),
        "catch_up_wall_s": rnd(daemon["catch_up_wall_s"], 1),
        "catch_up_polls": daemon["catch_up_polls"],
        "daemon_startup_pass_s": rnd(daemon["startup_pass_s"], 1),
        "daemon_peak_rss_mb": rnd(daemon["hwm_mb"]),
        "adopt_list_s": rnd(adopted["adopt_list_s"], 1),
        "adopt_scan_s": rnd(adopted["adopt_scan_s"], 1),
        "adopt_record_s": rnd(adopted["adopt_record_s"], 1),
        "rclone_resync_s": rnd(rclone["resync_s"], 2),
    }
    print(f"idle, {files} files in sync, libmirror run with poll_interval 1, {polls} idle polls:")
    print(f"  requests per idle poll: {result['requests_per_idle_poll']} ({daemon['routes']})")
    print(
        f"  daemon CPU per idle poll: {result['cpu_ms_per_idle_poll']} ms ("
        f"{result['idle_passes_run']} of the polls found a change); in-process observe_remote(full=False): "
        f"{result['cpu_ms_per_observe_remote']} ms CPU"
    )
    print(
        f"  watcher catch-up rescans after the start-up pass: {result['catch_up_rescans']} in "
        f"{result['catch_up_wall_s']} s, {result['catch_up_cpu_s']} s CPU with {result['catch_up_polls']} idle polls "
        f"({result['cpu_ms_per_catch_up_rescan']} ms CPU per rescan without them); not in the idle figures"
    )
    print(
        f"  full local rescan, nothing changed: {result['rescan_s']} s ({result['rescan_cpu_s']} s CPU, "
        f"{inproc['rescan_changed']} rows changed); find -printf: {result['find_s']} s ({result['find_cpu_s']} s CPU; "
        f"CPU ratio {result['rescan_cpu_ratio']})"
    )
    print(
        f"  daemon RSS while idle: {result['rss_mb_100k']} MB (peak {result['daemon_peak_rss_mb']} MB, "
        f"start-up pass {result['daemon_startup_pass_s']} s)"
    )
    print(
        f"  rclone bisync of two local copies: {result['rclone_bisync_s']} s "
        f"(after --resync {result['rclone_resync_s']} s)"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
