"""Benchmark 4, latency: `libmirror run` on a small library; 20 local edits, then 20 remote edits.

The daemon runs against the CoreData sandbox (separate process, ``bench.sandbox_ctl``) with
settle = 1 s and poll_interval = 2 s. Each edit waits until it has arrived before the next starts:
- local edit: new bytes written to a file of the mirror; done when the sandbox holds their MD5.
- remote edit: the sandbox gives a file new bytes (as another user would); done when the local
  file holds them.
Usage: python -m bench.latency [EDITS]
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import CtlSandbox, Daemon, build_coredata_tree, last_json, rnd, write_config

EDITS, SETTLE, POLL_INTERVAL, TIMEOUT = 20, 1.0, 2.0, 30.0
FILES, FOLDERS = 200, 4


def _md5(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _wait(check: Any, timeout: float, interval: float) -> float:
    """Seconds until ``check()`` is true (polled every ``interval``); raises after ``timeout``."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the edit did not arrive")
        time.sleep(interval)
    return time.perf_counter() - start


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(edits: int = EDITS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-latency-") as tmp:
        work = Path(tmp)
        mirror = work / "mirror"
        build_coredata_tree(work / "sandbox", small=FILES, folders=FOLDERS, large=0, large_size=0)
        paths = [f"folder {i % FOLDERS:03d}/file {i:05d}.txt" for i in range(FILES)]
        with CtlSandbox(work / "sandbox") as sandbox:
            config = write_config(
                work,
                sandbox.remote,
                mirror,
                concurrency=8,
                library={"settle": SETTLE, "poll_interval": POLL_INTERVAL},
                top={"allow_root": True},
            )
            with Daemon(config) as daemon:
                daemon.wait_for("pass", timeout=120)  # the start-up pass pulls the library
                if sum(1 for p in paths if (mirror / p).is_file()) != FILES:
                    raise RuntimeError("the start-up pass did not pull the library")
                time.sleep(SETTLE + 0.5)
                to_remote: list[float] = []
                for path in paths[:edits]:
                    data = os.urandom(4096)
                    digest = hashlib.md5(data).hexdigest()
                    (mirror / path).write_bytes(data)
                    to_remote.append(
                        _wait(lambda p=path, d=digest: sandbox.ask(f"digest {p}")["digest"] == d, TIMEOUT, 0.05)
                    )
                to_local: list[float] = []
                for path in paths[FILES - edits :]:
                    digest = sandbox.ask(f"set {path} 4096")["digest"]
                    to_local.append(_wait(lambda p=path, d=digest: _md5(mirror / p) == d, TIMEOUT, 0.02))

    result: dict[str, Any] = {
        "local_to_remote_p50_s": rnd(statistics.median(to_remote), 2),
        "local_to_remote_p95_s": rnd(_p(to_remote, 0.95), 2),
        "remote_to_local_p50_s": rnd(statistics.median(to_local), 2),
        "remote_to_local_p95_s": rnd(_p(to_local, 0.95), 2),
        "settle": SETTLE,
        "poll_interval": POLL_INTERVAL,
        "edits": edits,
    }
    print(f"latency, libmirror run (settle {SETTLE} s, poll_interval {POLL_INTERVAL} s), {edits} edits each way:")
    print(
        f"  local -> remote: p50 {result['local_to_remote_p50_s']} s, p95 {result['local_to_remote_p95_s']} s "
        f"(max {max(to_remote):.2f} s)"
    )
    print(
        f"  remote -> local: p50 {result['remote_to_local_p50_s']} s, p95 {result['remote_to_local_p95_s']} s "
        f"(max {max(to_local):.2f} s)"
    )
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EDITS)
