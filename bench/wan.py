"""Benchmark: pull and push of small files over a 100 ms round trip (issue 15 §3).

Our users' servers are 50-200 ms from the vendors' APIs: there, round trips per file and concurrency
decide the speed, not CPU. A delaying proxy (``bench/delay_proxy.py``, 50 ms each way) sits in front
of the CoreData sandbox and of ``rclone serve http|webdav``; both move the same 2,000 small files
(20 folders). Reported: files/s for libmirror at its default concurrency and for rclone at its
defaults and at ours, the round trips per file (requests plus new connections, from the sandbox's
request count and the proxy's connection count), and the bound concurrency / (round trips per file x
0.1 s). Usage: python -m bench.wan [FILES]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    RCLONE,
    CtlSandbox,
    build_coredata_tree,
    build_local_tree,
    export_tree,
    last_json,
    rclone_server,
    rnd,
    run_timed,
    sync_once,
    tree_stats,
    write_config,
)
from bench.delay_proxy import DelayProxy
from daemon.config import LibraryConfig

FILES, FOLDERS = 2_000, 20
ONE_WAY_S = 0.05
RTT_S = 2 * ONE_WAY_S
DEFAULT_CONCURRENCY = LibraryConfig.__dataclass_fields__["concurrency"].default  # the library key's default


def _config(work: Path, label: str, remote: dict[str, str], mirror: Path) -> Path:
    (work / f"lm-{label}").mkdir()
    return write_config(work / f"lm-{label}", remote, mirror, concurrency=DEFAULT_CONCURRENCY)


def libmirror_run(work: Path, label: str, sandbox: CtlSandbox, mirror: Path) -> dict[str, Any]:
    with DelayProxy(int(sandbox.remote["base_url"].rsplit(":", 1)[1]), ONE_WAY_S) as proxy:
        remote = {**sandbox.remote, "base_url": proxy.url}
        sandbox.ask("clear")
        run = sync_once(_config(work, label, remote, mirror))
        requests = sandbox.ask("count")["requests"]
        connections = proxy.connections
    trips = (requests + connections) / FILES
    return {
        "files_per_s": rnd(FILES / run.seconds),
        "seconds": rnd(run.seconds, 1),
        "round_trips_per_file": rnd(trips, 2),
        "requests": requests,
        "connections": connections,
        "bound_files_per_s": rnd(DEFAULT_CONCURRENCY / (trips * RTT_S)),
    }


def rclone_run(kind: str, served: Path, args: list[str], *, transfers: int | None) -> float | None:
    """Seconds of one rclone copy through the proxy (``transfers`` None: rclone's defaults)."""
    if RCLONE is None:
        return None
    extra = [] if transfers is None else ["--transfers", str(transfers), "--checkers", str(transfers)]
    with (
        rclone_server(kind, served) as (url, _server),
        DelayProxy(int(url.rstrip("/").rsplit(":", 1)[1]), ONE_WAY_S) as proxy,
    ):
        full = [a.replace("{url}", proxy.url + "/") for a in args]
        run = run_timed([RCLONE, *full, *extra, "--config", "/dev/null"])
    if run.returncode != 0:
        raise RuntimeError(f"rclone {' '.join(args[:1])} failed ({run.returncode})")
    return run.seconds


def main(files: int = FILES) -> dict[str, Any]:
    global FILES
    FILES = files
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-wan-") as tmp:
        work = Path(tmp)
        build_coredata_tree(work / "sandbox-pull", small=files, folders=FOLDERS, large=0, large_size=0)
        tree = export_tree(work / "sandbox-pull", work / "src")
        with CtlSandbox(work / "sandbox-pull") as sandbox:
            pull = libmirror_run(work, "pull", sandbox, work / "mirror-pull")
        if tree_stats(work / "mirror-pull") != tree:
            raise RuntimeError("the pull through the proxy did not bring every byte")
        build_local_tree(work / "mirror-push", small=files, folders=FOLDERS, large=0, large_size=0, seed=3)
        with CtlSandbox(work / "sandbox-push") as sandbox:
            push = libmirror_run(work, "push", sandbox, work / "mirror-push")
            stats = sandbox.ask("stats")
        if stats["files"] != files:
            raise RuntimeError(f"the push through the proxy left {stats['files']} files on the server")

        def rclone_pull(transfers: int | None) -> float | None:
            dest = work / "rclone-pull"
            seconds = rclone_run(
                "http", work / "src", ["copy", ":http:", str(dest), "--http-url", "{url}"], transfers=transfers
            )
            shutil.rmtree(dest, ignore_errors=True)
            return seconds

        def rclone_push(transfers: int | None) -> float | None:
            dest = work / "rclone-push"
            dest.mkdir(exist_ok=True)
            seconds = rclone_run(
                "webdav",
                dest,
                ["copy", str(work / "mirror-push"), ":webdav:", "--webdav-url", "{url}"],
                transfers=transfers,
            )
            shutil.rmtree(dest, ignore_errors=True)
            return seconds

        rc = {
            "pull_default": rclone_pull(None),
            "pull_ours": rclone_pull(DEFAULT_CONCURRENCY),
            "push_default": rclone_push(None),
        }

    def per_s(seconds: float | None) -> float | None:
        return rnd(files / seconds) if seconds else None

    result: dict[str, Any] = {
        "files": files,
        "rtt_ms": RTT_S * 1000,
        "concurrency": DEFAULT_CONCURRENCY,
        "files_per_s_100ms": pull["files_per_s"],
        "push_files_per_s_100ms": push["files_per_s"],
        "rclone_files_per_s_100ms": per_s(rc["pull_default"]),
        "rclone_files_per_s_100ms_our_concurrency": per_s(rc["pull_ours"]),
        "rclone_push_files_per_s_100ms": per_s(rc["push_default"]),
        "round_trips_per_file": pull["round_trips_per_file"],
        "push_round_trips_per_file": push["round_trips_per_file"],
        "bound_files_per_s": pull["bound_files_per_s"],
        "push_bound_files_per_s": push["bound_files_per_s"],
        "requests_pull": pull["requests"],
        "connections_pull": pull["connections"],
        "requests_push": push["requests"],
        "connections_push": push["connections"],
    }
    print(
        f"WAN ({RTT_S * 1000:.0f} ms round trip, delaying proxy), {files} small files, "
        f"libmirror concurrency {DEFAULT_CONCURRENCY}"
    )
    print(
        f"  pull: libmirror {pull['files_per_s']} files/s ({pull['round_trips_per_file']} round trips per file: "
        f"{pull['requests']} requests, {pull['connections']} connections; bound {pull['bound_files_per_s']} files/s); "
        f"rclone {result['rclone_files_per_s_100ms']} files/s at its defaults, "
        f"{result['rclone_files_per_s_100ms_our_concurrency']} at ours"
    )
    print(
        f"  push: libmirror {push['files_per_s']} files/s ({push['round_trips_per_file']} round trips per file; "
        f"bound {push['bound_files_per_s']} files/s); rclone (webdav) {result['rclone_push_files_per_s_100ms']} files/s"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else FILES)
