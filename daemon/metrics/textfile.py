"""``libmirror status --metrics``: the families that the state store can answer, in Prometheus' text
format, for node_exporter's textfile collector.

Read-only and offline, like ``status``: it opens the store read-only (beside a running daemon), takes
no lock and builds no provider. What only a live daemon counts (transfers, actions, pass durations,
HTTP requests, rate-limit waits) is left out: those families are served by ``metrics_listen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import generate_latest

from daemon.metrics.families import Metrics
from daemon.metrics.stored import read_figures, set_figures
from daemon.state.store import StateStore

TEXTFILE_FAMILIES = (
    "libmirror_tracked_files",
    "libmirror_files_in_backoff",
    "libmirror_safety_gate_held",
    "libmirror_last_successful_pass_timestamp_seconds",
)


async def textfile_metrics(state_dir: Path, libraries: Sequence[str]) -> bytes:
    """The exposition of ``libraries`` (their names in the config) from the store in ``state_dir``. A
    library the store has not seen yet (or no store at all) shows no series. Errors opening or reading
    the store propagate (the caller reports them as ``status`` does)."""
    metrics = Metrics(with_process=False)
    store = await StateStore.open_readonly(state_dir)
    if store is not None:
        try:
            for name in libraries:
                lib = await store.find_library(name)
                if lib is not None:
                    set_figures(metrics, name, await read_figures(store, lib))
        finally:
            await store.close()
    # only the families the store answers: the counters and the histogram would read as 0 here
    return generate_latest(metrics.registry.restricted_registry(TEXTFILE_FAMILIES))
