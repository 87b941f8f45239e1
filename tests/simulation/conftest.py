"""Simulation options: ``pytest tests/simulation --seed N`` replays one seed on every provider
(add ``-k coredata`` for one provider); ``--sim-seeds K`` runs K seeds per provider instead of the
default list; ``--sim-steps S`` changes the operations per seed."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simulation")
    group.addoption("--seed", type=int, default=None, help="replay one simulation seed")
    group.addoption("--sim-seeds", type=int, default=None, help="simulation seeds per provider")
    group.addoption("--sim-steps", type=int, default=None, help="simulation steps per seed")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: kills real processes; CI runs only a few seeds")
