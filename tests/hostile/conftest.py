"""Hostile-input fixtures: an in-process sandbox (so tests can plant what its API would refuse, or
answer with broken bodies through its fault hooks) and real ``libmirror`` processes driving it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.sandbox.runner import RunningSandbox, start_sandbox
from tests.e2e.conftest import LIBMIRROR, Mirror, write_config


@dataclass
class Run:
    code: int
    events: list[dict[str, Any]]
    stderr: str

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    @property
    def passes(self) -> list[dict[str, Any]]:
        return self.named("pass")


async def libmirror(config: Path, *args: str, limit_s: float = 120) -> Run:
    """``libmirror --config CONFIG ARGS`` as a real process, without blocking the sandbox's loop."""
    proc = await asyncio.create_subprocess_exec(
        LIBMIRROR,
        "--config",
        str(config),
        "--log-format",
        "json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    events = []
    for line in out.decode().splitlines():
        if line.startswith("<"):
            events.append(json.loads(line[line.index(">") + 1 :]))
    assert proc.returncode is not None
    return Run(proc.returncode, events, err.decode())


async def sync_once(mirror: Mirror, *args: str) -> Run:
    return await libmirror(mirror.config, "sync", "--once", *args)


@pytest.fixture
async def coredata(tmp_path: Path, anyio_backend: str) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("coredata", tmp_path / "sandbox-data")
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def mirror(tmp_path: Path, coredata: RunningSandbox) -> Mirror:
    return write_config(tmp_path, coredata.remote)


def tree_outside(base: Path, *inside: Path) -> set[str]:
    """Every path under ``base`` except those under ``inside``: what must not change."""
    skip = [p.resolve() for p in inside]
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath).resolve()
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in skip]
        out.update(str(here / n) for n in filenames + dirnames)
    return out
