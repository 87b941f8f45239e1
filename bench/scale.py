"""Memory at a million files (issue 15): the daemon's peak RSS over the life of a large library.

Set-up, straight into the sandbox's store and onto disk (no uploads): FILES empty files, 1,000 per
folder, on both sides (one shared empty blob on the server, dated an hour back). Then four phases,
each a real `libmirror` process whose peak RSS (wait4's ru_maxrss, or /proc VmHWM for the daemon), wall
and CPU time are measured:

1. ``adopt``: `sync --once` on the two equal sides: every path is recorded as synced, nothing moves.
2. ``pull``: FILES / 10 new small files appear on the server (new folders, dated half an hour back,
   written while the sandbox is stopped); `sync --once` pulls them.
3. ``idle``: `libmirror run` (poll_interval 1): its start-up pass (full listing, full rescan), then
   IDLE_POLLS idle polls.
4. ``rescan``: `sync --once` again, nothing changed: a full listing and a full local rescan.

``peak_rss_mb_<size>`` is the largest peak of the four phases; targets: ``peak_rss_mb_1m`` <= 200 MB and
<= 1.25 x ``peak_rss_mb_100k`` (memory independent of library size, DESIGN rule 8).
The set-up runs in child processes (``--setup``, ``--grow``): a child's ru_maxrss starts from its
parent's high-water mark (Linux carries it over fork and exec), so the measuring process stays small.
Usage: python -m bench.scale [FILES ...]   (default: 100000 1000000)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import LIBMIRROR, CtlSandbox, Daemon, last_json, proc_cpu_s, proc_rss_mb, rnd, write_config

PER_FOLDER = 1000
AGE_S = 3600.0  # the library's bulk: an hour old
GROW_AGE_S = 1800.0  # the new remote files: half an hour old (one file is then touched now, see ``grow``)
IDLE_POLLS = 3
SIZES = (100_000, 1_000_000)


@dataclass
class Phase:
    name: str
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    passed: dict[str, Any] = field(default_factory=dict)  # the process's "pass" log line


def _label(files: int) -> str:
    return f"{files // 1_000_000}m" if files >= 1_000_000 and files % 1_000_000 == 0 else f"{files // 1000}k"


# ---- set-up ----------------------------------------------------------------------------------------


def build_remote(data_dir: Path, files: int) -> None:
    """``files`` empty files in folders of PER_FOLDER, written as rows of the sandbox's store at once."""
    from daemon.sandbox.blobs import new_blob_name
    from daemon.sandbox.clock import format_timestamp
    from daemon.sandbox.coredata_backend import CoreDataBackend
    from daemon.sandbox.coredata_model import Node

    backend = CoreDataBackend(data_dir, clock_skew_s=-AGE_S)
    try:
        blob = backend.blobs.write_bytes(new_blob_name(), b"")
        with backend.db.batch():
            folders = [backend.add_folder(None, f"folder {i:04d}").id for i in range(-(-files // PER_FOLDER))]
        start = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=AGE_S - 1)

        def nodes() -> Any:
            for i in range(files):
                stamp = format_timestamp(start + timedelta(microseconds=i))
                yield Node(
                    id=str(uuid.UUID(int=i + 1)),
                    kind="file",
                    title=f"file {i:07d}",
                    parent=folders[i // PER_FOLDER],
                    created=stamp,
                    modified=stamp,
                    filename=f"file {i:07d}.txt",
                    blob_name=blob.name,
                    digest=blob.digest,
                    size=0,
                    mime_type="text/plain",
                    snapshot_id=str(uuid.UUID(int=(1 << 64) + i)),
                    version=1,
                )

        backend.db.save_nodes(nodes())
    finally:
        backend.close()


def build_local(mirror: Path, files: int) -> None:
    """The same tree on disk: empty files, created with the fewest system calls Python offers."""
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for f in range(-(-files // PER_FOLDER)):
        folder = mirror / f"folder {f:04d}"
        folder.mkdir(parents=True)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(f * PER_FOLDER, min(files, (f + 1) * PER_FOLDER)):
                os.close(os.open(f"file {i:07d}.txt", flags, 0o644, dir_fd=dir_fd))
        finally:
            os.close(dir_fd)


def grow(data_dir: Path, files: int) -> None:
    """``files`` new small files on the server (sandbox stopped), in new folders; then one of them is
    edited now, so that the server's newest change is recent and an idle changed-since poll is small."""
    from daemon.sandbox.coredata_backend import CoreDataBackend

    backend = CoreDataBackend(data_dir, clock_skew_s=-GROW_AGE_S)
    try:
        with backend.db.batch():
            folders = [backend.add_folder(None, f"incoming {i:04d}").id for i in range(-(-files // PER_FOLDER))]
            last = None
            for i in range(files):
                last = backend.add_file(folders[i // PER_FOLDER], f"new {i:07d}.txt", f"new file {i}\n".encode())
    finally:
        backend.close()
    assert last is not None
    backend = CoreDataBackend(data_dir)
    try:
        backend.set_content(last.id, b"edited now\n")
    finally:
        backend.close()


# ---- phases ----------------------------------------------------------------------------------------


def _pass_line(log: Path) -> dict[str, Any]:
    """The last "pass" event of a JSON log file."""
    found: dict[str, Any] = {}
    with log.open() as lines:
        for line in lines:
            if '"pass"' not in line:
                continue
            start = line.find("{")
            try:
                event = json.loads(line[start:])
            except ValueError:
                continue
            if event.get("event") == "pass":
                found = event
    return found


def sync_phase(name: str, config: Path, work: Path) -> Phase:
    """`libmirror sync --once` as a child process: wall, CPU and peak RSS from wait4, its pass line."""
    log = work / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [LIBMIRROR, "--config", str(config), "--log-format", "json", "sync", "--once"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"{name}: libmirror sync --once exited with {code}: {tail}")
    return Phase(name, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, _pass_line(log))


def idle_phase(config: Path, polls: int) -> Phase:
    """`libmirror run`: its start-up pass, then ``polls`` idle polls; the peak RSS is its VmHWM."""
    start = time.perf_counter()
    with Daemon(config) as daemon:
        first = daemon.wait_for("pass", timeout=3600)
        for _ in range(polls):
            daemon.wait_for("poll", timeout=120, kind="incremental")
        peak, cpu = proc_rss_mb(daemon.pid, "VmHWM"), proc_cpu_s(daemon.pid)
    return Phase("idle", time.perf_counter() - start, cpu, peak, first)


def _check(phase: Phase, **expected: int) -> None:
    """The phase's pass did what it should (else the figures mean nothing); prints its figures."""
    p = phase
    print(f"  {p.name:>6}: {p.seconds:7.1f} s wall, {p.cpu_s:7.1f} s CPU, peak RSS {p.peak_rss_mb:6.1f} MB", flush=True)
    for key, want in expected.items():
        got = phase.passed.get(key)
        if got != want:
            raise RuntimeError(f"{phase.name}: expected {key}={want}, the pass logged {phase.passed}")


def one_size(files: int) -> dict[str, Any]:
    new = files // 10
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-scale-") as tmp:
        work = Path(tmp)
        mirror, data = work / "mirror", work / "sandbox"
        start = time.perf_counter()
        _child("--setup", data, mirror, files)
        setup_s = time.perf_counter() - start
        print(f"{files} files: set-up {setup_s:.0f} s (server store and disk)", flush=True)
        library = {"poll_interval": 1, "full_scan_interval": 86400, "local_rescan_interval": 86400}
        phases: list[Phase] = []
        with CtlSandbox(data) as sandbox:
            config = write_config(work, sandbox.remote, mirror, library=library)
            phases.append(sync_phase("adopt", config, work))
        _check(phases[-1], pushed=0, pulled=0, errors=0)
        start = time.perf_counter()
        _child("--grow", data, new)
        print(f"  {new} new remote files written in {time.perf_counter() - start:.0f} s", flush=True)
        with CtlSandbox(data) as sandbox:
            config = write_config(work, sandbox.remote, mirror, library=library)
            phases.append(sync_phase("pull", config, work))
            _check(phases[-1], pulled=new, pushed=0, errors=0)
            phases.append(idle_phase(config, IDLE_POLLS))
            _check(phases[-1], pulled=0, pushed=0, errors=0)
            phases.append(sync_phase("rescan", config, work))
            _check(phases[-1], pulled=0, pushed=0, errors=0)
    label = _label(files)
    result: dict[str, Any] = {f"setup_s_{label}": rnd(setup_s)}
    for p in phases:
        result[f"{p.name}_s_{label}"] = rnd(p.seconds)
        result[f"{p.name}_cpu_s_{label}"] = rnd(p.cpu_s)
        result[f"{p.name}_rss_mb_{label}"] = rnd(p.peak_rss_mb)
    result[f"peak_rss_mb_{label}"] = rnd(max(p.peak_rss_mb for p in phases))
    return result


def _child(*args: Path | int | str) -> None:
    """A set-up step in its own process (see the module's docstring)."""
    subprocess.run([sys.executable, "-m", "bench.scale", *map(str, args)], check=True)


def main(sizes: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for files in sizes:
        result.update(one_size(files))
    small, large = result.get("peak_rss_mb_100k"), result.get("peak_rss_mb_1m")
    if small and large:
        result["peak_rss_ratio_1m_100k"] = rnd(large / small, 2)
        print(
            f"peak_rss_mb_1m {large} (target <= 200: {'met' if large <= 200 else 'NOT met'}), "
            f"{result['peak_rss_ratio_1m_100k']}x peak_rss_mb_100k {small} "
            f"(target <= 1.25x: {'met' if large <= 1.25 * small else 'NOT met'})"
        )
    last_json(result)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--setup"]:
        build_remote(Path(sys.argv[2]), int(sys.argv[4]))
        build_local(Path(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1:2] == ["--grow"]:
        grow(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main([int(a) for a in sys.argv[1:]] or list(SIZES))
