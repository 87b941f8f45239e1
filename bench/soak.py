"""Soak: thousands of simulation seeds (issue 7 §2), with counts at the end.

Runs the in-process randomized simulation of ``tests/simulation`` for many seeds over every provider
and prints the figures the closing note of issue 7 asks for: seeds run, operations, passes, actions
executed, faults injected, crashes survived, versions lost (must be 0), duplicates (must be 0). A
failing seed is printed with its replay command; the run goes on. The last line is one JSON object.

Usage: python -m bench.soak [--seeds N] [--first S] [--providers coredata,timetap,...] [--steps K]
Exit code: 0 when every seed held every invariant, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import anyio
import structlog

from tests.simulation.driver import PROVIDERS, SimFailure, run_seed
from tests.simulation.world import Figures


def _quiet() -> None:
    """The engine logs every action; thousands of seeds need only the soak's own lines."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


async def soak(seeds: range, providers: list[str], steps: int) -> tuple[Figures, list[str]]:
    total = Figures()
    failed: list[str] = []
    started = time.monotonic()
    for n, seed in enumerate(seeds, 1):
        for provider in providers:
            with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
                try:
                    figures = await run_seed(provider, seed, Path(tmp) / "sim", steps=steps)
                except SimFailure as exc:
                    failed.append(f"{provider} seed {seed}")
                    print(str(exc).split("\ntrace:")[0], flush=True)
                    figures = exc.figures or Figures(seeds=1, failures=1)
                except Exception as exc:  # the engine raised: a failed seed too, the soak goes on
                    failed.append(f"{provider} seed {seed}: {type(exc).__name__}: {exc}"[:300])
                    print(f"seed {seed} ({provider}) raised {type(exc).__name__}: {exc}"[:1000], flush=True)
                    figures = Figures(seeds=1, failures=1)
                total.add(figures)
        if n % 25 == 0:
            rate = total.seeds / max(1e-9, time.monotonic() - started)
            print(f"  {total.seeds} seeds, {len(failed)} failed, {rate:.1f} seeds/s", flush=True)
    return total, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per provider (default 1000)")
    parser.add_argument("--first", type=int, default=10_000, help="first seed (default 10000: not CI's)")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--steps", type=int, default=16, help="driver steps per seed")
    args = parser.parse_args(argv)
    providers = [p for p in args.providers.split(",") if p]
    unknown = sorted(set(providers) - set(PROVIDERS))
    if unknown:
        parser.error(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
    _quiet()
    started = time.monotonic()
    total, failed = anyio.run(soak, range(args.first, args.first + args.seeds), providers, args.steps)
    elapsed = time.monotonic() - started
    print(
        f"soak: {total.seeds} seeds ({', '.join(providers)}) in {elapsed:.0f} s: {total.operations} operations, "
        f"{total.passes} passes, {total.actions} actions executed, {total.faults} faults injected, "
        f"{total.crashes} crashes survived, {total.mid_pass_edits} edits during a pass, "
        f"{total.watcher_passes} watcher passes without a poll, {total.remote_races} remote changes between "
        f"plan and action, {total.gates_held} passes held by a gate, {total.mass_overwrites} mass overwrites, "
        f"{total.second_writers} second writers refused, "
        f"versions lost {total.versions_lost}, duplicates {total.duplicates}, failed seeds {len(failed)}"
    )
    for line in failed:
        print(f"  failed: {line}")
    result = {
        "benchmark": "soak",
        "seeds": total.seeds,
        "providers": providers,
        "operations": total.operations,
        "passes": total.passes,
        "actions": total.actions,
        "faults": total.faults,
        "crashes": total.crashes,
        "mid_pass_edits": total.mid_pass_edits,
        "gate_confirmations": total.gate_confirmations,
        "watcher_passes": total.watcher_passes,
        "remote_races": total.remote_races,
        "gates_held": total.gates_held,
        "mass_overwrites": total.mass_overwrites,
        "second_writers": total.second_writers,
        "versions_lost": total.versions_lost,
        "duplicates": total.duplicates,
        "failed_seeds": failed,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(result))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
