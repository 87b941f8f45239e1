"""The figures of a library that the state store keeps, so the daemon's gauges start from them and
``status --metrics`` (another process, read-only) can print them: tracked files, files in backoff,
the held gate, and the last successful pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.metrics.families import Metrics
from daemon.state.store import StateStore


@dataclass(frozen=True)
class StoredFigures:
    tracked: int
    in_backoff: int
    gate_held: bool
    last_success: float | None  # Unix time; None before the first pass or poll


def _unix(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


async def read_figures(store: StateStore, lib: int) -> StoredFigures:
    """What the store says about library ``lib`` (reads only). The last successful pass is the later of
    the last completed pass and the last poll, as ``status --check`` counts it."""
    counts = await store.counts(lib)
    status = await store.get_status(lib)
    stamps = [t for t in (_unix(status.get("last_pass")), _unix(status.get("last_poll"))) if t is not None]
    return StoredFigures(
        tracked=counts["synced_files"],
        in_backoff=len(await store.failures(lib)),
        gate_held=bool(status.get("gate")),
        last_success=max(stamps, default=None),
    )


def set_figures(metrics: Metrics, library: str, figures: StoredFigures) -> None:
    metrics.library_gauges(library, tracked=figures.tracked, in_backoff=figures.in_backoff, gate_held=figures.gate_held)
    if figures.last_success is not None:
        metrics.succeeded(library, figures.last_success)
