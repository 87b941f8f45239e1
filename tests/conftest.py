"""Shared fixtures. Async tests use anyio's pytest plugin on the asyncio backend.

``tests.secrets_watch`` fails any test whose output (captured or printed by a ``libmirror``
subprocess) holds a secret; see its docstring. ``pytester`` is for that plugin's self-test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.logs import configure_logging

pytest_plugins = ["pytester", "tests.secrets_watch"]


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at that moment (pytest swaps it per test to capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False


def pytest_configure(config: pytest.Config) -> None:
    # In-process engines and sandboxes log through the product's own pipeline (redaction included),
    # as in production, instead of structlog's defaults (whose rich tracebacks print local variables).
    configure_logging("console", "debug", stream=_CurrentStdout())  # type: ignore[arg-type]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SandboxStarter = Callable[..., dict[str, Any]]


@pytest.fixture
def sandbox_procs(tmp_path: Path) -> Iterator[SandboxStarter]:
    """``start(name, seed, *args, provider="coredata")`` runs a real ``libmirror sandbox`` process with its
    data in ``tmp_path/name`` and returns its start-up JSON; every process is stopped at teardown."""
    from tests.e2e.conftest import start_sandbox_process

    procs: list[subprocess.Popen[str]] = []

    def start(name: str, seed: int, *args: str, provider: str = "coredata") -> dict[str, Any]:
        proc, info = start_sandbox_process(tmp_path / name, seed, *args, provider=provider)
        procs.append(proc)
        return info

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
