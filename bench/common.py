"""Shared pieces of the benchmarks: a sandbox process on a prepared tree, a config, timed runs."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIBMIRROR = str(Path(sys.executable).with_name("libmirror"))


def build_coredata_tree(data_dir: Path, small: int, folders: int, large: int, large_size: int, seed: int = 1) -> None:
    """Fill a new CoreData sandbox state directory directly (much faster than uploading)."""
    from daemon.sandbox.coredata_backend import CoreDataBackend

    rng = random.Random(seed)
    backend = CoreDataBackend(data_dir)
    try:
        with backend.db.batch():
            parents = [backend.add_folder(None, f"folder {i:03d}").id for i in range(folders)]
            for i in range(small):
                size = rng.randint(1024, 8192)
                backend.add_file(parents[i % folders], f"file {i:05d}.txt", rng.randbytes(size))
            for i in range(large):
                backend.add_file(None, f"large {i:02d}.bin", rng.randbytes(large_size))
    finally:
        backend.close()


@dataclass
class SandboxProcess:
    proc: subprocess.Popen[str]
    info: dict[str, Any]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start_sandbox(data_dir: Path, *options: str) -> SandboxProcess:
    proc = subprocess.Popen(
        [LIBMIRROR, "sandbox", "coredata", "--port", "0", "--data", str(data_dir), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return SandboxProcess(proc, json.loads(proc.stdout.readline()))


def write_config(workdir: Path, remote: dict[str, str], mirror: Path, concurrency: int = 8) -> Path:
    lines = [
        f'state_dir = "{workdir / "state"}"',
        "[[library]]",
        'name = "bench"',
        'provider = "coredata"',
        f'local_path = "{mirror}"',
        f"concurrency = {concurrency}",
        "[library.remote]",
        *[f'{k} = "{v}"' for k, v in remote.items()],
    ]
    path = workdir / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@dataclass
class Timed:
    seconds: float
    peak_rss_mb: float
    returncode: int


def run_timed(args: list[str]) -> Timed:
    """Run a command; wall time and the peak RSS of the child (from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return Timed(elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))


def children_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
