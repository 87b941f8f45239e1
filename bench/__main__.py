"""`make bench`: the four benchmarks of issue 8 and the bandwidth limit's (issue 16) in order, each in its
own process, then a summary.

Each benchmark runs as `python -m bench.NAME` so that one failing (or a daemon left behind) cannot
disturb the next, and so its last output line (one JSON object) is the contract we read back. The
summary prints every figure next to its reference and target; the very last line is one JSON object
holding all results.
Usage: python -m bench [NAME ...]   (default: the BENCHMARKS below; `make bench-many` runs many_libraries,
which idles 10 minutes, and `make bench-scale` runs scale: neither is among them)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

BENCHMARKS = ("initial_pull", "initial_push", "idle", "latency", "wan", "plan_scale", "bwlimit")


def run(name: str) -> dict[str, Any] | None:
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{name}"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line
    code = proc.wait()
    print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    if code != 0:
        return None
    try:
        value = json.loads(last)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}x" if isinstance(a, int | float) and isinstance(b, int | float) and b else "n/a"


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def _lin(value: Any, factor: float, add: float = 0.0) -> float | None:
    return value * factor + add if isinstance(value, int | float) else None


def _cmp(a: Any, op: str, b: Any) -> bool | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None
    return a >= b if op == ">=" else a <= b


def summary(results: dict[str, dict[str, Any] | None]) -> list[str]:
    """One line per target of the issue: figure, reference, target, met or not."""
    pull = results.get("initial_pull") or {}
    push = results.get("initial_push") or {}
    idle = results.get("idle") or {}
    lat = results.get("latency") or {}
    bw = results.get("bwlimit") or {}
    floor = pull.get("floor_mb_per_s")
    push_floor = push.get("push_floor_mb_per_s")
    settle = lat.get("settle")
    plan = results.get("plan_scale") or {}
    scale = results.get("scale") or {}
    wan = results.get("wan") or {}
    many = results.get("many_libraries") or {}
    pinned, rclone_pinned = pull.get("files_per_s_pinned"), pull.get("rclone_files_per_s_pinned")
    lines = [
        f"files_per_s {pull.get('files_per_s')} vs rclone {pull.get('rclone_files_per_s')} "
        f"({_ratio(pull.get('files_per_s'), pull.get('rclone_files_per_s'))}); target >= rclone: "
        f"{_check(_cmp(pull.get('files_per_s'), '>=', pull.get('rclone_files_per_s')))}",
        f"large_mb_per_s {pull.get('large_mb_per_s')} vs floor {floor} / rclone {pull.get('rclone_large_mb_per_s')}; "
        f"target >= 0.8 x floor: "
        f"{_check(_cmp(pull.get('large_mb_per_s'), '>=', _lin(floor, 0.8)))}",
        f"peak_rss_mb {pull.get('peak_rss_mb')} (pull), {push.get('push_peak_rss_mb')} (push); target <= 150: "
        f"{_check(_cmp(pull.get('peak_rss_mb'), '<=', 150))} / {_check(_cmp(push.get('push_peak_rss_mb'), '<=', 150))}",
        f"push_files_per_s {push.get('push_files_per_s')} vs rclone {push.get('rclone_push_files_per_s')} "
        f"({_ratio(push.get('push_files_per_s'), push.get('rclone_push_files_per_s'))}); target >= rclone: "
        f"{_check(_cmp(push.get('push_files_per_s'), '>=', push.get('rclone_push_files_per_s')))}",
        f"push_large_mb_per_s {push.get('push_large_mb_per_s')} vs floor {push_floor} / rclone "
        f"{push.get('rclone_push_large_mb_per_s')}; target >= 0.8 x floor: "
        f"{_check(_cmp(push.get('push_large_mb_per_s'), '>=', _lin(push_floor, 0.8)))}",
        f"client_cpu_ms_per_file {pull.get('client_cpu_ms_per_file')} (pull), "
        f"{push.get('push_client_cpu_ms_per_file')} (push) vs rclone {pull.get('rclone_cpu_ms_per_file')} / "
        f"{push.get('push_rclone_cpu_ms_per_file')}; sandbox {pull.get('sandbox_cpu_ms_per_file')} / "
        f"{push.get('push_sandbox_cpu_ms_per_file')}, rclone serve {pull.get('rclone_serve_cpu_ms_per_file')} / "
        f"{push.get('push_rclone_serve_cpu_ms_per_file')}; target <= 0.8: "
        f"{_check(_cmp(pull.get('client_cpu_ms_per_file'), '<=', 0.8))} / "
        f"{_check(_cmp(push.get('push_client_cpu_ms_per_file'), '<=', 0.8))}",
        f"client_cpu_ms_per_file_net {pull.get('client_cpu_ms_per_file_net')} (pull), "
        f"{push.get('push_client_cpu_ms_per_file_net')} (push): net of a run's fixed CPU "
        f"({pull.get('client_fixed_cpu_s')} / {push.get('push_client_fixed_cpu_s')} s: start-up, listing, scan)",
        f"client_cpu_ms_per_mib {pull.get('client_cpu_ms_per_mib')} (pull), {push.get('push_client_cpu_ms_per_mib')} "
        f"(push), net of the fixed CPU {pull.get('client_cpu_ms_per_mib_net')} / "
        f"{push.get('push_client_cpu_ms_per_mib_net')} vs rclone {pull.get('rclone_cpu_ms_per_mib')} / "
        f"{push.get('push_rclone_cpu_ms_per_mib')}; target <= 5 (net): "
        f"{_check(_cmp(pull.get('client_cpu_ms_per_mib_net'), '<=', 5))} / "
        f"{_check(_cmp(push.get('push_client_cpu_ms_per_mib_net'), '<=', 5))}",
        f"1 GiB file: huge_mb_per_s {pull.get('huge_mb_per_s')} (pull) vs floor {pull.get('floor_huge_mb_per_s')} / "
        f"rclone {pull.get('rclone_huge_mb_per_s')}, {push.get('push_huge_mb_per_s')} (push) vs floor "
        f"{push.get('push_floor_huge_mb_per_s')} / rclone {push.get('rclone_push_huge_mb_per_s')}; target >= 0.8 x "
        f"floor: {_check(_cmp(pull.get('huge_mb_per_s'), '>=', _lin(pull.get('floor_huge_mb_per_s'), 0.8)))} / "
        f"{_check(_cmp(push.get('push_huge_mb_per_s'), '>=', _lin(push.get('push_floor_huge_mb_per_s'), 0.8)))}",
        f"in the pass only (a run without its ~0.5 s of interpreter start-up and store opening, which the "
        f"daemon pays once): large_mb_per_s_in_pass {pull.get('large_mb_per_s_in_pass')} (pull), "
        f"{push.get('push_large_mb_per_s_in_pass')} (push); 1 GiB {pull.get('huge_mb_per_s_in_pass')} / "
        f"{push.get('push_huge_mb_per_s_in_pass')}",
        f"1 GiB file: client_cpu_ms_per_mib_huge {pull.get('client_cpu_ms_per_mib_huge')} (pull), "
        f"{push.get('push_client_cpu_ms_per_mib_huge')} (push), start-up included; target <= 5: "
        f"{_check(_cmp(pull.get('client_cpu_ms_per_mib_huge'), '<=', 5))} / "
        f"{_check(_cmp(push.get('push_client_cpu_ms_per_mib_huge'), '<=', 5))}; peak RSS "
        f"{pull.get('peak_rss_mb_huge')} / {push.get('push_peak_rss_mb_huge')} MB vs "
        f"{pull.get('peak_rss_mb_large')} / {push.get('push_peak_rss_mb_large')} MB for 16 MiB files "
        "(target: unchanged)",
        f"files_per_s_pinned {pinned} vs rclone_files_per_s_pinned {rclone_pinned} ({_ratio(pinned, rclone_pinned)})",
        f"requests_per_idle_poll {idle.get('requests_per_idle_poll')}; target 1: "
        f"{_check(None if idle.get('requests_per_idle_poll') is None else idle.get('requests_per_idle_poll') == 1)}",
        f"cpu_ms_per_idle_poll {idle.get('cpu_ms_per_idle_poll')}; target <= 20: "
        f"{_check(_cmp(idle.get('cpu_ms_per_idle_poll'), '<=', 20))}",
        f"rescan_s {idle.get('rescan_s')} vs find_s {idle.get('find_s')} "
        f"({_ratio(idle.get('rescan_s'), idle.get('find_s'))}; CPU {idle.get('rescan_cpu_ratio')} x); target <= 2 x "
        f"find_s: {_check(_cmp(idle.get('rescan_s'), '<=', _lin(idle.get('find_s'), 2)))}",
        f"rss_mb_100k {idle.get('rss_mb_100k')}; target <= 150: {_check(_cmp(idle.get('rss_mb_100k'), '<=', 150))}",
        f"rclone_bisync_s {idle.get('rclone_bisync_s')} (reference: a full-listing pass over the same tree)",
        f"local_to_remote_p95_s {lat.get('local_to_remote_p95_s')} (p50 {lat.get('local_to_remote_p50_s')}, "
        f"settle {settle}); target <= settle + 1: "
        f"{_check(_cmp(lat.get('local_to_remote_p95_s'), '<=', _lin(settle, 1, 1)))}",
        f"remote_to_local_p50_s {lat.get('remote_to_local_p50_s')} (poll_interval {lat.get('poll_interval')})",
        f"files_per_s_100ms {wan.get('files_per_s_100ms')} vs rclone {wan.get('rclone_files_per_s_100ms')} at its "
        f"defaults ({_ratio(wan.get('files_per_s_100ms'), wan.get('rclone_files_per_s_100ms'))}), "
        f"{wan.get('rclone_files_per_s_100ms_our_concurrency')} at ours; target >= 1.5 x rclone: "
        f"{_check(_cmp(wan.get('files_per_s_100ms'), '>=', _lin(wan.get('rclone_files_per_s_100ms'), 1.5)))}",
        f"files_per_s_100ms vs its bound {wan.get('bound_files_per_s')} ({wan.get('round_trips_per_file')} round trips "
        f"per file, concurrency {wan.get('concurrency')}); target >= 0.8 x bound: "
        f"{_check(_cmp(wan.get('files_per_s_100ms'), '>=', _lin(wan.get('bound_files_per_s'), 0.8)))}; push "
        f"{wan.get('push_files_per_s_100ms')} files/s (bound {wan.get('push_bound_files_per_s')}, rclone webdav "
        f"{wan.get('rclone_push_files_per_s_100ms')})",
        f"plan_s_1m {plan.get('plan_s_1m')} vs plan_s_100k {plan.get('plan_s_100k')} "
        f"({_ratio(plan.get('plan_s_1m'), plan.get('plan_s_100k'))}); target <= 12x: "
        f"{_check(_cmp(plan.get('plan_s_1m'), '<=', _lin(plan.get('plan_s_100k'), 12)))}",
        f"rss_mb_200_libraries {many.get('rss_mb_200_libraries')} ({many.get('libraries')} libraries idle "
        f"{many.get('window_s')} s); target <= 150: {_check(_cmp(many.get('rss_mb_200_libraries'), '<=', 150))}",
        f"cpu_s_per_idle_hour_per_library {many.get('cpu_s_per_idle_hour_per_library')} (requests per library per "
        f"poll {many.get('requests_per_library_per_poll')}); target <= 2: "
        f"{_check(_cmp(many.get('cpu_s_per_idle_hour_per_library'), '<=', 2))}",
        f"peak_rss_mb_1m {scale.get('peak_rss_mb_1m')} vs peak_rss_mb_100k {scale.get('peak_rss_mb_100k')} "
        f"({_ratio(scale.get('peak_rss_mb_1m'), scale.get('peak_rss_mb_100k'))}); target <= 200: "
        f"{_check(_cmp(scale.get('peak_rss_mb_1m'), '<=', 200))}, <= 1.25x: "
        f"{_check(_cmp(scale.get('peak_rss_mb_1m'), '<=', _lin(scale.get('peak_rss_mb_100k'), 1.25)))} "
        "(`make bench-scale`)",
        f"bwlimit rate/limit up {bw.get('library_up_ratio')} down {bw.get('library_down_ratio')} (library), "
        f"up {bw.get('daemon_up_ratio')} down {bw.get('daemon_down_ratio')} (daemon-wide); target within 10 %: "
        f"{_check(_cmp(bw.get('worst_ratio_error'), '<=', 0.1))}",
    ]
    return lines


def main(names: list[str]) -> int:
    started = time.perf_counter()
    results = {name: run(name) for name in names}
    print(f"== summary ({time.perf_counter() - started:.0f} s in all)")
    for line in summary(results):
        print("  " + line)
    print(json.dumps(results))
    return 0 if all(r is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(BENCHMARKS)))
