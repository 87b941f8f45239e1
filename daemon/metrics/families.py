"""Every metric family the daemon exports, and the methods that update them.

Names and labels follow Prometheus' naming guide: the ``libmirror_`` prefix, base units (seconds,
bytes), ``_total`` on counters (prometheus_client appends it), ``_timestamp_seconds`` for Unix times,
and low-cardinality labels only (library, direction, kind, outcome, provider, status class, reason;
never a path or a remote id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# no ``*_created`` series beside each counter and histogram: they double the series and say little
# here (a counter starts with the process, whose start time process_start_time_seconds gives)
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

PASS_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP status, ``error`` when no response came (connection, timeout)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


@dataclass
class Metrics:
    """Every family, in a registry of its own (tests and ``status --metrics`` build a fresh one)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    with_process: bool = True

    def __post_init__(self) -> None:
        r = self.registry
        if self.with_process:  # process_* (CPU, memory, open fds) and python_info of the daemon
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.files = Counter(
            "libmirror_transferred_files",
            "Files transferred, by library and direction (up: uploaded to the server, down: downloaded).",
            ["library", "direction"],
            registry=r,
        )
        self.bytes = Counter(
            "libmirror_transferred_bytes",
            "Bytes transferred, by library and direction (up, down).",
            ["library", "direction"],
            registry=r,
        )
        self.actions = Counter(
            "libmirror_actions",
            "Actions carried out, by library, kind (upload, download, trash_local...) and outcome "
            "(done, failed, unsupported, replanned).",
            ["library", "kind", "outcome"],
            registry=r,
        )
        self.pass_duration = Histogram(
            "libmirror_pass_duration_seconds",
            "Duration of the sync passes that planned work (idle polls are not passes).",
            ["library"],
            buckets=PASS_BUCKETS_S,
            registry=r,
        )
        self.last_success = Gauge(
            "libmirror_last_successful_pass_timestamp_seconds",
            "Unix time the library last completed a pass or an idle poll (single files that failed in it "
            "show in libmirror_files_in_backoff).",
            ["library"],
            registry=r,
        )
        self.gate_held = Gauge(
            "libmirror_safety_gate_held",
            "1 while a safety gate holds deletes or overwrites of the library back, else 0.",
            ["library"],
            registry=r,
        )
        self.backoff = Gauge(
            "libmirror_files_in_backoff",
            "Paths whose last action failed and that wait for their next attempt.",
            ["library"],
            registry=r,
        )
        self.tracked = Gauge(
            "libmirror_tracked_files",
            "Files both sides agree on (rows of the synced tree).",
            ["library"],
            registry=r,
        )
        self.requests = Counter(
            "libmirror_http_requests",
            "HTTP requests to the providers' APIs and blob stores, by provider and status class "
            "(2xx..5xx; error: no response, e.g. a refused connection or a timeout).",
            ["provider", "status_class"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "libmirror_rate_limit_waits",
            "Requests that waited for a provider's rate limit, by provider and reason (pacing: our own "
            "pacing kept the documented limit; server: the server answered 429).",
            ["provider", "reason"],
            registry=r,
        )

    # -- updates -----------------------------------------------------------------------------------

    def outcomes(self, library: str, counts: Mapping[tuple[str, str], int]) -> None:
        """A pass's actions: ``{(kind, outcome): n}``."""
        for (kind, outcome), n in counts.items():
            self.actions.labels(library, kind, outcome).inc(n)

    def transferred(self, library: str, direction: str, files: int, size: int) -> None:
        self.files.labels(library, direction).inc(files)
        self.bytes.labels(library, direction).inc(size)

    def finished_pass(self, library: str, duration_s: float) -> None:
        self.pass_duration.labels(library).observe(duration_s)

    def succeeded(self, library: str, unix_time: float) -> None:
        self.last_success.labels(library).set(unix_time)

    def library_gauges(self, library: str, *, tracked: int, in_backoff: int, gate_held: bool) -> None:
        self.tracked.labels(library).set(tracked)
        self.backoff.labels(library).set(in_backoff)
        self.gate_held.labels(library).set(1 if gate_held else 0)

    def forget_library(self, library: str) -> None:
        """Drop a removed library's series (a SIGHUP reload that removes it)."""
        for family in (self.files, self.bytes, self.actions, self.pass_duration):
            for labels in _series_of(family, library):
                family.remove(*labels)
        for gauge in (self.last_success, self.gate_held, self.backoff, self.tracked):
            if _series_of(gauge, library):
                gauge.remove(library)

    def request(self, provider: str, status: int | None) -> None:
        self.requests.labels(provider, status_class(status)).inc()

    def rate_limit_wait(self, provider: str, reason: str) -> None:
        self.rate_limit_waits.labels(provider, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _series_of(family: Counter | Gauge | Histogram, library: str) -> set[tuple[str, ...]]:
    """The label values (``library`` first, then the family's other labels) of ``library``'s series."""
    found: set[tuple[str, ...]] = set()
    for metric in family.collect():
        for sample in metric.samples:
            if sample.labels.get("library") == library:
                found.add(tuple(v for k, v in sample.labels.items() if k != "le"))
    return found


METRICS = Metrics()
"""The running process's metrics: every recorder writes here, the daemon's endpoint serves it."""
