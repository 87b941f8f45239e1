"""Shared fixtures. Async tests use anyio's pytest plugin on the asyncio backend.

``tests.secrets_watch`` fails any test whose output (captured or printed by a ``libmirror``
subprocess) holds a secret; see its docstring. ``pytester`` is for that plugin's self-test.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester", "tests.secrets_watch"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
