"""Fixtures shared by the local-disk tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.local.marker import ensure_marker


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A library root with its ``.libmirror`` marker (what every write into a library requires)."""
    r = tmp_path / "lib"
    r.mkdir()
    ensure_marker(r)
    return r
