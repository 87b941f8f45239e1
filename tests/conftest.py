"""Shared fixtures. Async tests use anyio's pytest plugin on the asyncio backend.

``tests.secrets_watch`` fails any test whose output (captured or printed by a ``libmirror``
subprocess) holds a secret; see its docstring. ``pytester`` is for that plugin's self-test.
"""

from __future__ import annotations

import sys

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
