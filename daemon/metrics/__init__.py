"""Prometheus metrics: the families and the process's registry (``families``), the address they are
served on (``listen``), the figures kept in the state store (``stored``), the daemon's ``/metrics``
endpoint (``server``) and the ``status --metrics`` text for node_exporter's textfile collector
(``textfile``).

Nothing is imported here: the config reads ``listen`` without loading prometheus_client (every command
reads the config; only ``run`` and ``status --metrics`` need the library).
"""
