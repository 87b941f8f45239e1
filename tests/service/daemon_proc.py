"""A real `libmirror run` process for the service tests: config writer, log collector, notify socket."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import LIBMIRROR


def library_block(name: str, root: Path, remote: dict[str, str], **extra: Any) -> str:
    lines = ["[[library]]", f'name = "{name}"', 'provider = "coredata"', f'local_path = "{root}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["", "[library.remote]"] + [f'{k} = "{v}"' for k, v in remote.items()]
    return "\n".join(lines) + "\n"


def write_daemon_config(path: Path, state: Path, blocks: list[str], *, stop_timeout: float = 10) -> None:
    text = f'state_dir = "{state}"\nstop_timeout = {stop_timeout}\nallow_root = true\n\n' + "\n".join(blocks)
    path.write_text(text)
    path.chmod(0o600)


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket; collects every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def fields(self) -> list[str]:
        return [line for m in list(self.messages) for line in m.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


class Daemon:
    """``libmirror --config CONFIG --log-format json run`` with stdout parsed line by line."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [LIBMIRROR, "--config", str(config), "--log-format", "json", "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("<") and ">" in line:
                try:
                    self.events.append(json.loads(line[line.index(">") + 1 :]))
                except ValueError:
                    pass

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events[start:]):
                if pred(event):
                    return event
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        err = ""
        if self.proc.poll() is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read()[-3000:]
        raise AssertionError(f"no matching event within {timeout}s; last lines: {self.lines[-15:]} {err}")

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._keep_stderr()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        self._keep_stderr()

    def _keep_stderr(self) -> None:
        """Read what the exited process left on stderr, so the secrets watch sees it even when the test
        doesn't; ``proc.stderr`` is then an in-memory copy the test can still read."""
        pipe = self.proc.stderr
        if pipe is None or isinstance(pipe, io.StringIO) or self.proc.poll() is None:
            return
        text = pipe.read()  # through the watch's tee: recorded for the running test
        pipe.close()
        self.proc.stderr = io.StringIO(text)


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds it took for ``pred`` to hold; AssertionError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pred():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
