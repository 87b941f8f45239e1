"""The cost of the Prometheus metrics: a scrape of a running daemon, `status --metrics`, and recording
one HTTP request.

Set-up: a CoreData sandbox with FILES small files, pulled by `libmirror run` (metrics_listen on a free
loopback port, poll_interval = 1) until its start-up pass is done. Measured, CPU time rather than wall
time (the machine is shared):
- `scrape_cpu_ms`: the daemon's CPU time (/proc/PID/stat) per `GET /metrics`, over SCRAPES scrapes back
  to back (includes the idle polls that fall in that time); `scrape_bytes` is the size of one answer.
  Reference: the daemon's CPU per idle poll, measured over the same number of seconds without scrapes.
- `status_metrics_cpu_ms` / `status_json_cpu_ms`: CPU time (os.wait4) of one `libmirror status
  --metrics` and, as the reference, of one `libmirror status --json` on the same store, median of RUNS.
- `record_request_us`: CPU time of one `METRICS.request(...)` call (what the HTTP layer adds to every
  request), in this process over 200,000 calls.
Usage: python -m bench.metrics [FILES] [SCRAPES]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    LIBMIRROR,
    Daemon,
    build_coredata_tree,
    free_port,
    last_json,
    proc_cpu_s,
    rnd,
    start_sandbox,
    write_config,
)

FILES, SCRAPES, RUNS = 2000, 200, 5


def child_cpu_ms(args: list[str]) -> float:
    """User + system CPU milliseconds of one child process (from wait4)."""
    pid = os.spawnv(os.P_NOWAIT, args[0], args)  # stdout is inherited: sent to /dev/null below
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args} exited with {os.waitstatus_to_exitcode(status)}")
    return (usage.ru_utime + usage.ru_stime) * 1000


def quietly_cpu_ms(args: list[str]) -> float:
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        return child_cpu_ms(args)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def record_request_us(calls: int = 200_000) -> float:
    from daemon.metrics.families import Metrics

    metrics = Metrics(with_process=False)
    start = time.process_time()
    for i in range(calls):
        metrics.request("coredata", 200 if i % 10 else 404)
    return (time.process_time() - start) / calls * 1e6


def main(files: int = FILES, scrapes: int = SCRAPES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-metrics-") as tmp:
        work = Path(tmp)
        build_coredata_tree(work / "sandbox", small=files, folders=max(1, files // 100), large=0, large_size=0)
        sandbox = start_sandbox(work / "sandbox")
        port = free_port()
        config = write_config(
            work,
            sandbox.info["remote"],
            work / "mirror",
            library={"poll_interval": 1},
            top={"metrics_listen": f"127.0.0.1:{port}"},
        )
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            with Daemon(config) as daemon:
                daemon.wait_for("pass", timeout=600, pulled=files)
                time.sleep(2)  # the pass's bookkeeping settles
                cpu0, wall0 = proc_cpu_s(daemon.pid), time.perf_counter()
                size = 0
                for _ in range(scrapes):
                    with urllib.request.urlopen(url, timeout=30) as response:
                        size = len(response.read())
                scrape_wall = time.perf_counter() - wall0
                scrape_cpu = proc_cpu_s(daemon.pid) - cpu0
                cpu1 = proc_cpu_s(daemon.pid)
                time.sleep(max(scrape_wall, 5.0))  # the same stretch (at least 5 s) without scrapes
                idle_cpu = proc_cpu_s(daemon.pid) - cpu1
                idle_span = max(scrape_wall, 5.0)
            status = [LIBMIRROR, "--config", str(config)]
            with_metrics = [quietly_cpu_ms([*status, "status", "--metrics"]) for _ in range(RUNS)]
            with_json = [quietly_cpu_ms([*status, "status", "--json"]) for _ in range(RUNS)]
        finally:
            sandbox.stop()
    result = {
        "files": files,
        "scrapes": scrapes,
        "scrape_cpu_ms": rnd(scrape_cpu / scrapes * 1000, 2),
        "scrape_wall_ms": rnd(scrape_wall / scrapes * 1000, 2),
        "scrape_bytes": size,
        "idle_cpu_ms_per_s": rnd(idle_cpu / idle_span * 1000, 2),
        "status_metrics_cpu_ms": rnd(statistics.median(with_metrics)),
        "status_json_cpu_ms": rnd(statistics.median(with_json)),
        "record_request_us": rnd(record_request_us(), 2),
    }
    print(
        f"GET /metrics: {result['scrape_cpu_ms']} ms daemon CPU per scrape ({size} bytes; wall "
        f"{result['scrape_wall_ms']} ms on a busy machine); idle daemon without scrapes: "
        f"{result['idle_cpu_ms_per_s']} ms CPU per second"
    )
    print(
        f"status --metrics: {result['status_metrics_cpu_ms']} ms CPU per run "
        f"(reference status --json: {result['status_json_cpu_ms']} ms), median of {RUNS}"
    )
    print(f"recording one HTTP request: {result['record_request_us']} µs CPU")
    return result


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    last_json(main(*args))
