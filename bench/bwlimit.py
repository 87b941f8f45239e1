"""Benchmark: does ``bwlimit`` hold? 50 MiB pushed and pulled under a limit, rate / limit per direction.

One 50 MiB file of random bytes is pushed by `libmirror sync --once` into an empty CoreData sandbox
(separate process, loopback), then pulled into a second, empty folder by a second library of the same
remote, first under a library limit (``bwlimit = "5M"`` in the [[library]]), then under the
daemon-wide one with the two directions apart (general ``bwlimit = "4M:8M"``). The achieved rate is
the file's size over the transfer's ``duration_ms`` in the ``action`` log line (so process start-up,
hashing and listing are left out); the target is rate / limit within 0.9..1.1. The CPU seconds of each
`libmirror` process (from wait4) show that waiting for tokens costs no CPU.
Usage: python -m bench.bwlimit [MIB]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import LIBMIRROR, CtlSandbox, last_json, rnd, write_config

MiB = 1024 * 1024
SIZE_MIB = 50
CASES = (  # (name, library bwlimit, general bwlimit, up limit, down limit) in MiB/s
    ("library", "5M", None, 5.0, 5.0),
    ("daemon", None, "4M:8M", 4.0, 8.0),
)


def sync(config: Path) -> tuple[list[dict[str, Any]], float, float]:
    """`libmirror sync --once` with JSON logs: its log events, wall seconds and CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [LIBMIRROR, "--config", str(config), "--log-format", "json", "sync", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"libmirror sync --once exited with {os.waitstatus_to_exitcode(status)}")
    events = [json.loads(line[line.index("{") :]) for line in lines if "{" in line]
    return events, time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def transfer(events: list[dict[str, Any]], kind: str) -> tuple[int, float]:
    """Bytes and seconds of the one ``kind`` (upload/download) action of a pass."""
    (line,) = [e for e in events if e["event"] == "action" and e["action"].startswith(kind)]
    return int(line["bytes"]), float(line["duration_ms"]) / 1000


def run_case(work: Path, name: str, library: str | None, general: str | None, size: int) -> dict[str, Any]:
    src, dest = work / f"{name}-up", work / f"{name}-down"
    src.mkdir()
    with (src / "big.bin").open("wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    lib_keys: dict[str, Any] = {"bwlimit": library} if library else {}
    top = {"bwlimit": general} if general else {}
    figures: dict[str, Any] = {}
    with CtlSandbox(work / f"{name}-sandbox") as sandbox:
        for direction, mirror, extra in (("up", src, {}), ("down", dest, {"direction": "pull"})):
            state = work / f"{name}-{direction}-state"
            state.mkdir()
            config = write_config(state, sandbox.remote, mirror, concurrency=1, library=lib_keys | extra, top=top)
            events, wall, cpu = sync(config)
            moved, seconds = transfer(events, "upload" if direction == "up" else "download")
            if moved != size:
                raise RuntimeError(f"{direction}: moved {moved} bytes, expected {size}")
            figures[direction] = {"mib_per_s": moved / MiB / seconds, "seconds": seconds, "wall": wall, "cpu": cpu}
    if (dest / "big.bin").read_bytes() != (src / "big.bin").read_bytes():
        raise RuntimeError("the pulled file differs from the pushed one")
    return figures


def main(size_mib: int = SIZE_MIB) -> dict[str, Any]:
    size = size_mib * MiB
    result: dict[str, Any] = {"size_mib": size_mib}
    print(f"bwlimit: {size_mib} MiB pushed then pulled (CoreData sandbox, loopback), one file, concurrency 1")
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-bwlimit-") as tmp:
        for name, library, general, up_limit, down_limit in CASES:
            figures = run_case(Path(tmp), name, library, general, size)
            setting = f'[[library]] bwlimit = "{library}"' if library else f'general bwlimit = "{general}"'
            print(f"  {setting}:")
            for direction, limit in (("up", up_limit), ("down", down_limit)):
                fig = figures[direction]
                ratio = fig["mib_per_s"] / limit
                result[f"{name}_{direction}_ratio"] = rnd(ratio, 3)
                result[f"{name}_{direction}_mib_per_s"] = rnd(fig["mib_per_s"], 2)
                result[f"{name}_{direction}_limit_mib_per_s"] = limit
                result[f"{name}_{direction}_cpu_s"] = rnd(fig["cpu"], 2)
                print(
                    f"    {direction:4} {fig['mib_per_s']:.2f} MiB/s against {limit:g} MiB/s: ratio {ratio:.3f} "
                    f"({'within' if 0.9 <= ratio <= 1.1 else 'NOT within'} 10 %); transfer {fig['seconds']:.1f} s, "
                    f"process {fig['wall']:.1f} s wall, {fig['cpu']:.2f} s CPU"
                )
    ratios = [v for k, v in result.items() if k.endswith("_ratio")]
    result["worst_ratio_error"] = rnd(max(abs(r - 1) for r in ratios), 3)
    print(f"  worst |ratio - 1|: {result['worst_ratio_error']} (target <= 0.1); wall-clock figures on a busy machine")
    last_json(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SIZE_MIB)
