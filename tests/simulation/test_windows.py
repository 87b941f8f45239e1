"""The simulation with rounds planned in windows of one path and full rescans reading the stored tree a
window at a time (a large library's way, DESIGN rule 8):
the same invariants (nothing lost, no duplicates, both sides equal at the end) hold when a round is
counted, judged by the gates and carried out a window at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.sync import library
from tests.simulation.driver import PROVIDERS, run_seed

SEEDS = range(1, 13)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.anyio
async def test_simulation_in_windows(provider: str, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "WINDOW_PATHS", 1)
    monkeypatch.setattr(library, "WHOLE_TREE_ROWS", 0)  # full rescans read the stored tree in windows too
    await run_seed(provider, 1000 + seed, tmp_path / "sim", steps=12)
