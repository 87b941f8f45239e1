"""The randomized end-to-end simulation over every provider (issue 7 §2).

CI runs ``DEFAULT_SEEDS`` seeds per provider (4 providers: more than 200 seeds in all); a failing seed
prints itself, its problems and its trace; ``pytest tests/simulation --seed N -k PROVIDER`` replays it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simulation.driver import PROVIDERS, run_seed

DEFAULT_SEEDS = 50


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    seed = metafunc.config.getoption("--seed", default=None)
    count = metafunc.config.getoption("--sim-seeds", default=None) or DEFAULT_SEEDS
    seeds = [seed] if seed is not None else list(range(1, count + 1))
    metafunc.parametrize("sim_seed", seeds)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.anyio
async def test_simulation(provider: str, sim_seed: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    steps = request.config.getoption("--sim-steps", default=None) or 12
    await run_seed(provider, sim_seed, tmp_path / "sim", steps=steps)
