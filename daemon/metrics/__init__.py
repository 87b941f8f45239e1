"""Prometheus metrics: the families (``families``), the address they are served on (``listen``), the
figures kept in the state store (``stored``), the daemon's ``/metrics`` endpoint (``server``) and the
``status --metrics`` text for node_exporter's textfile collector (``textfile``).

Only ``families`` is imported here: the HTTP layer records into it without pulling in a web server.
"""

from __future__ import annotations

from daemon.metrics.families import METRICS, Metrics, status_class

__all__ = ["METRICS", "Metrics", "status_class"]
