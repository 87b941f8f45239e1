"""Shared pieces of the benchmarks: a sandbox process on a prepared tree, a config, timed runs."""

from __future__ import annotations

import json
import os
import queue
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIBMIRROR = str(Path(sys.executable).with_name("libmirror"))


def random_bytes(rng: random.Random, size: int) -> bytes:
    """``size`` random bytes; built in 64 MiB pieces (``randbytes`` overflows from 256 MiB)."""
    piece = 64 * 1024 * 1024
    return b"".join(rng.randbytes(min(piece, size - at)) for at in range(0, size, piece))


def build_coredata_tree(
    data_dir: Path, small: int, folders: int, large: int, large_size: int, seed: int = 1, age_s: float = 0.0
) -> None:
    """Fill a new CoreData sandbox state directory directly (much faster than uploading).

    ``age_s`` > 0 dates every node that many seconds in the past (the server clock's skew), as in a
    library that has been still for a while.
    """
    from daemon.sandbox.coredata_backend import CoreDataBackend

    rng = random.Random(seed)
    backend = CoreDataBackend(data_dir, clock_skew_s=-age_s)
    try:
        with backend.db.batch():
            parents = [backend.add_folder(None, f"folder {i:03d}").id for i in range(folders)]
            for i in range(small):
                size = rng.randint(1024, 8192)
                backend.add_file(parents[i % folders], f"file {i:05d}.txt", rng.randbytes(size))
            for i in range(large):
                backend.add_file(None, f"large {i:02d}.bin", random_bytes(rng, large_size))
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


def write_config(
    workdir: Path,
    remote: dict[str, str],
    mirror: Path,
    concurrency: int = 8,
    *,
    library: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
) -> Path:
    """A one-library CoreData config; ``library``/``top`` add keys (e.g. poll_interval, allow_root)."""
    keys = {"concurrency": concurrency, **(library or {})}
    return write_config_file(workdir, library_block("bench", mirror, remote, keys), top)


def _toml(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else (f'"{v}"' if isinstance(v, str | Path) else str(v))


def library_block(name: str, mirror: Path, remote: dict[str, str], keys: dict[str, Any] | None = None) -> list[str]:
    """The config lines of one CoreData library named ``name``, mirrored at ``mirror``."""
    return [
        "[[library]]",
        f'name = "{name}"',
        'provider = "coredata"',
        f'local_path = "{mirror}"',
        *[f"{k} = {_toml(v)}" for k, v in (keys or {}).items()],
        "[library.remote]",
        *[f'{k} = "{v}"' for k, v in remote.items()],
    ]


def write_config_file(workdir: Path, libraries: list[str], top: dict[str, Any] | None = None) -> Path:
    """``workdir/config.toml``: the state under ``workdir``, ``top`` keys, then the ``libraries`` lines."""
    lines = [
        f'state_dir = "{workdir / "state"}"',
        # the benchmarks may run as root, and every writing command refuses root without allow_root
        *[f"{k} = {_toml(v)}" for k, v in ({"allow_root": True} | (top or {})).items()],
        *libraries,
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
    cpu_s: float = 0.0  # user + system CPU of the child, all its threads (from wait4)
    pass_s: float | None = None  # seconds of its sync passes by their own log lines (``sync_once``)


def pinned(args: list[str], cores: str | None) -> list[str]:
    """``args`` run on ``cores`` only (taskset's list, e.g. "1"); unchanged when ``cores`` is None."""
    return args if cores is None else ["taskset", "-c", cores, *args]


def run_timed(args: list[str], cores: str | None = None, output: Path | None = None) -> Timed:
    """Run a command; wall time, peak RSS and CPU time of the child (from wait4). ``output``: a file
    that receives its stdout and stderr (else they are dropped). What earlier steps left unwritten is
    flushed first (``os.sync``), so their writeback is not charged to this run."""
    os.sync()
    start = time.perf_counter()
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 (closed below)
    try:
        target = sink if sink is not None else subprocess.DEVNULL
        proc = subprocess.Popen(pinned(args, cores), stdout=target, stderr=target)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if sink is not None:
            sink.close()
    elapsed = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return Timed(elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), cpu)


def children_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ---- trees on disk ---------------------------------------------------------------------------------


def export_tree(data_dir: Path, dest: Path) -> tuple[int, int]:
    """Copy every file of a sandbox state directory to ``dest`` at its library path: the same bytes.

    The rclone references and the local floor run on this copy, so they move exactly what libmirror
    moves. Returns (files, bytes).
    """
    from daemon.sandbox.coredata_backend import CoreDataBackend

    backend = CoreDataBackend(data_dir)
    files = size = 0
    try:
        prefix = backend.path_of(backend.nodes[backend.root_id]) + "/"
        made: set[Path] = set()
        for node in backend.files():
            full = backend.path_of(node)
            if not full.startswith(prefix):
                continue
            target = dest / full[len(prefix) :]
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            shutil.copyfile(backend.blobs.path(node.blob_name), target)
            files += 1
            size += node.size or 0
    finally:
        backend.close()
    return files, size


def tree_files(root: Path) -> list[Path]:
    """The regular files under ``root``, leaving out libmirror's own ``.libmirror`` folder."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".libmirror"]
        out.extend(Path(dirpath, f) for f in filenames)
    return out


def tree_stats(root: Path) -> tuple[int, int]:
    files = tree_files(root)
    return len(files), sum(f.stat().st_size for f in files)


def floor_seconds(src: Path, scratch: Path) -> float:
    """The local floor: `cp -r` of the tree plus `md5sum` of every copied file (wall seconds)."""
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(scratch)], check=True)
    files = [str(p) for p in tree_files(scratch)]
    for i in range(0, len(files), 1000):
        subprocess.run(["md5sum", *files[i : i + 1000]], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch)
    return elapsed


def warm_up(src: Path, scratch: Path) -> None:
    """Copy ``src`` once and remove the copy, untimed, before the runs that are compared on it.

    On a virtual machine the first write into memory the guest never used costs far more than a write
    into memory it used and freed (measured here: a 1 GiB pull spent 0.9 s of system CPU in a warm run and
    3.9 s in a cold one, almost all of it in the kernel's copy into the page cache). Each compared run
    removes its copy afterwards, so only the first would pay that: this copy pays it for all of them."""
    floor_seconds(src, scratch)


def drop_root_marker(mirror: Path) -> None:
    shutil.rmtree(mirror / ".libmirror", ignore_errors=True)


# ---- rclone ----------------------------------------------------------------------------------------

RCLONE = shutil.which("rclone")


def rclone_version() -> str | None:
    if RCLONE is None:
        return None
    out = subprocess.run([RCLONE, "version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "rclone"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def rclone_serve(kind: str, root: Path) -> Iterator[str]:
    """`rclone serve http|webdav ROOT` on a free loopback port; yields its URL."""
    with rclone_server(kind, root) as (url, _proc):
        yield url


@contextmanager
def rclone_server(kind: str, root: Path, cores: str | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rclone serve http|webdav ROOT` on a free loopback port (on ``cores``); yields its URL and process."""
    assert RCLONE is not None
    port = free_port()
    proc = subprocess.Popen(
        pinned([RCLONE, "serve", kind, str(root), "--addr", f"127.0.0.1:{port}", "--config", "/dev/null"], cores),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"rclone serve {kind} did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rclone_args(*args: str) -> list[str]:
    """An rclone command with the benchmarks' concurrency and no user config."""
    assert RCLONE is not None
    return [RCLONE, *args, "--transfers", "8", "--checkers", "8", "--config", "/dev/null"]


# ---- processes -------------------------------------------------------------------------------------


class CtlSandbox:
    """``bench.sandbox_ctl`` in a child process: a CoreData sandbox we can question (see its docstring)."""

    def __init__(self, data_dir: Path, cores: str | None = None) -> None:
        self.proc = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.sandbox_ctl", str(data_dir)], cores),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox did not start")
        self.info: dict[str, Any] = json.loads(line)

    @property
    def remote(self) -> dict[str, str]:
        return dict(self.info["remote"])

    def cpu_s(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        return proc_cpu_s(self.proc.pid)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> CtlSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def last_json(result: dict[str, Any]) -> None:
    """Print the benchmark's result as its last line (the contract of `make bench`)."""
    print(json.dumps(result), flush=True)


def rnd(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def build_local_tree(dest: Path, small: int, folders: int, large: int, large_size: int, seed: int = 1) -> None:
    """The tree ``build_coredata_tree`` makes, written straight to disk: same names, same bytes."""
    rng = random.Random(seed)
    dirs = [dest / f"folder {i:03d}" for i in range(folders)]
    dest.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        d.mkdir()
    for i in range(small):
        size = rng.randint(1024, 8192)
        (dirs[i % folders] / f"file {i:05d}.txt").write_bytes(rng.randbytes(size))
    for i in range(large):
        (dest / f"large {i:02d}.bin").write_bytes(random_bytes(rng, large_size))


def sync_once(config: Path, cores: str | None = None) -> Timed:
    """`libmirror --config CONFIG sync --once` in a child process: wall time, peak RSS and CPU, and
    ``pass_s``, the time its passes took by their own ``pass`` log lines (the run without the
    interpreter's start-up, the store's opening and the shutdown)."""
    log_path = config.with_name("sync-once.log")
    args = [LIBMIRROR, "--config", str(config), "--log-format", "json", "sync", "--once"]
    run = run_timed(args, cores, output=log_path)
    if run.returncode != 0:
        raise RuntimeError(f"libmirror sync --once exited with {run.returncode} (its log: {log_path})")
    run.pass_s = sum(event["duration_ms"] for event in log_events(log_path, "pass")) / 1000
    return run


def log_events(path: Path, name: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``path`` whose event is ``name`` (journald's ``<N>`` prefix skipped)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            event = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


# ---- the daemon ------------------------------------------------------------------------------------


class Daemon:
    """`libmirror run` in a child process; its JSON log lines are parsed into a queue of events."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [LIBMIRROR, "--config", str(config), "--log-format", "json", "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.pid = self.proc.pid
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # what the last wait_for passed over
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            start = line.find("{")
            if start < 0:
                continue
            try:
                self.events.put(json.loads(line[start:]))
            except ValueError:
                continue

    def wait_for(self, event: str, timeout: float, **fields: Any) -> dict[str, Any]:
        """The next log event named ``event`` (with these field values); earlier ones are dropped (and
        kept for :meth:`count_seen`)."""
        deadline = time.monotonic() + timeout
        self.seen.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError(f"no {event} {fields} from the daemon within {timeout} s")
            try:
                item = self.events.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if item.get("event") == event and all(item.get(k) == v for k, v in fields.items()):
                return item
            self.seen.append(item)

    def count_seen(self, event: str, **fields: Any) -> int:
        """How many ``event`` lines the last :meth:`wait_for` passed over on its way."""
        return sum(1 for e in self.seen if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()))

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
