"""End-to-end fixtures: a real `libmirror sandbox PROVIDER` process and real `libmirror` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from tests import secrets_watch
from tests.coredata_api import CoreDataAPI

LIBMIRROR = str(Path(sys.executable).with_name("libmirror"))

A = TypeVar("A")


@dataclass
class Sandbox(Generic[A]):
    """A running ``libmirror sandbox`` process and a test client (``api``) of its API."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]
    api: A

    @property
    def remote(self) -> dict[str, str]:
        """Its ``[library.remote]`` table, every value as the string a config file quotes."""
        return {k: str(v) for k, v in self.info["remote"].items()}


def start_sandbox_process(
    data: Path, seed: int, *extra: str, provider: str = "coredata"
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A ``libmirror sandbox`` process and its start-up line; its credentials go to the secrets watch,
    and its stderr (its logs) is drained into the watch for as long as it runs."""
    proc = subprocess.Popen(
        [LIBMIRROR, "sandbox", provider, "--port", "0", "--data", str(data), "--seed", str(seed), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    secrets_watch.drain_in_background(proc.stderr, f"libmirror sandbox {provider} stderr")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "sandbox printed nothing"
    info = json.loads(line)
    secrets_watch.register_remote(info["remote"], f"a {provider} sandbox process")
    return proc, info


@contextmanager
def running_sandbox(
    data: Path, seed: int, api: Callable[[dict[str, Any]], A], *extra: str, provider: str = "coredata"
) -> Iterator[Sandbox[A]]:
    """A ``libmirror sandbox`` process of ``provider`` for the ``with`` block, stopped after it."""
    proc, info = start_sandbox_process(data, seed, *extra, provider=provider)
    try:
        yield Sandbox(proc, info, api(info["remote"]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox[CoreDataAPI]]:
    with running_sandbox(tmp_path / "sandbox-data", 12, CoreDataAPI) as running:
        yield running


@dataclass
class Mirror:
    config: Path
    root: Path

    def sync(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [LIBMIRROR, "--config", str(self.config), "--log-format", "json", "sync", "--once", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check is not None:
            assert result.returncode == check, (
                result.returncode,
                result.stdout[-4000:],
                result.stderr[-4000:],
            )
        return result

    def events(self, result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        out = []
        for line in result.stdout.splitlines():
            assert line.startswith("<"), line
            out.append(json.loads(line[line.index(">") + 1 :]))
        return out

    def files(self) -> dict[str, bytes]:
        """Every file under the root, our own .libmirror folder excluded."""
        out: dict[str, bytes] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and ".libmirror" in dirnames:
                dirnames.remove(".libmirror")
            for name in filenames:
                p = Path(dirpath) / name
                out[p.relative_to(self.root).as_posix()] = p.read_bytes()
        return out

    def trash(self) -> dict[str, bytes]:
        base = self.root / ".libmirror" / "trash"
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def write_config(
    tmp_path: Path, remote: dict[str, str], *, provider: str = "coredata", allow_root: bool = True, **library: Any
) -> Mirror:
    """A one-library config; ``allow_root``: the tests may run as root, and every writing command refuses
    root without it."""
    root = tmp_path / "mirror"
    lines = [
        f'state_dir = "{tmp_path / "state"}"',
        f"allow_root = {'true' if allow_root else 'false'}",
        "",
        "[[library]]",
        'name = "board"',
        f'provider = "{provider}"',
    ]
    lines.append(f'local_path = "{root}"')
    for key, value in library.items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines += ["", "[library.remote]"] + [f'{k} = "{v}"' for k, v in remote.items()]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    return Mirror(config, root)


@pytest.fixture
def mirror(tmp_path: Path, sandbox: Sandbox[CoreDataAPI]) -> Mirror:
    return write_config(tmp_path, sandbox.remote)
