"""The daemon's ``GET /metrics`` endpoint (opt-in: ``metrics_listen``).

Served by aiohttp inside the daemon's own event loop rather than prometheus_client's
``start_http_server`` (a thread): aiohttp is already here for the providers, the registry is then only
ever read and written from one thread, a port that cannot be bound fails ``run`` before any library
starts (instead of in a background thread), and the endpoint stops with the service's task group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from daemon.metrics.families import Metrics
from daemon.metrics.listen import ListenAddress

log = structlog.get_logger(__name__)


class MetricsBindError(Exception):
    """``metrics_listen`` cannot be listened on (address in use, not permitted, not an address here)."""


def _app(metrics: Metrics) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        # the format the scraper asks for (Accept), as prometheus_client's own server chooses it
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encode(metrics.registry))
        response.headers["Content-Type"] = content_type
        return response

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


@asynccontextmanager
async def serve_metrics(metrics: Metrics, address: ListenAddress) -> AsyncIterator[None]:
    """Serve ``/metrics`` on ``address`` while the context is open; :class:`MetricsBindError` when the
    address cannot be bound."""
    runner = web.AppRunner(_app(metrics), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise MetricsBindError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        log.info("metrics_listening", address=str(address), path="/metrics")
        yield
    finally:
        await runner.cleanup()
