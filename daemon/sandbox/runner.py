"""Start a sandbox inside the current event loop (tests) or as a blocking process (CLI).

``serve`` prints exactly one JSON line on stdout once the server accepts connections: the contract
other processes (benchmarks, demo scripts) read to find the port and the credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from daemon.sandbox import registry
from daemon.sandbox.faults import FaultInjector, FaultPlan
from daemon.sandbox.middleware import FAULT_HOOKS, FAULT_INJECTOR, FaultHook

log = structlog.get_logger(__name__)


@dataclass
class RunningSandbox:
    """A started sandbox; ``backend`` is its tenant model, for inspection and mutation in tests."""

    provider: str
    base_url: str
    remote: dict[str, Any]
    backend: Any
    _runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def app(self) -> web.Application:
        """The running aiohttp application (raises when stopped)."""
        if self._runner is None:
            raise RuntimeError("the sandbox is not running")
        return self._runner.app

    @property
    def fault_hooks(self) -> list[FaultHook]:
        """Hooks run before every handler; one returning a response answers the request instead."""
        return self.app[FAULT_HOOKS]

    @property
    def faults(self) -> FaultInjector:
        """The seeded fault injector: ``faults.plan = FaultPlan(...)`` to change it, ``faults.counts``."""
        injector = self.app[FAULT_INJECTOR]
        assert isinstance(injector, FaultInjector)
        return injector

    async def stop(self) -> None:
        """Stop serving and close the state files (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            injector = runner.app.get(FAULT_INJECTOR)
            if injector is not None:
                injector.close()  # wake stalled 'slow' requests: cleanup waits for handlers
            await runner.cleanup()
            self.backend.close()

    async def __aenter__(self) -> RunningSandbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


async def start_sandbox(
    provider: str,
    data_dir: Path,
    *,
    port: int = 0,
    seed: int = 0,
    faults: FaultPlan | None = None,
    **options: Any,
) -> RunningSandbox:
    """Serve ``provider``'s sandbox on 127.0.0.1 (port 0 = a free one) with its state in ``data_dir``.

    ``seed`` = N fills a new ``data_dir`` with N sample files derived from N; an existing one is
    left as it is. ``faults`` is the seeded fault plan (``daemon.sandbox.faults``; none by default,
    changeable later through ``RunningSandbox.faults``). Returns once the server accepts connections.
    Unknown provider or option: ``ValueError``; port in use: ``OSError``.
    """
    kind = registry.get(provider)
    try:
        backend = kind.create_backend(Path(data_dir), **options)
    except TypeError as exc:
        raise ValueError(f"bad option for the {provider} sandbox: {exc}") from None
    runner: web.AppRunner | None = None
    try:
        if seed > 0 and backend.is_new:
            kind.seed(backend, seed, seed)
        app = kind.build_app(backend)
        app[FAULT_INJECTOR] = FaultInjector(provider, faults)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = _listening_socket(port)
        await web.SockSite(runner, sock).start()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        backend.close()
        raise
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    log.info("sandbox_started", provider=provider, base_url=base_url, data_dir=str(data_dir))
    return RunningSandbox(provider, base_url, backend.remote_table(base_url), backend, runner)


def _log_to_stderr() -> None:
    """Keep stdout for the one JSON line: unless the host configured structlog, log to stderr."""
    if not structlog.is_configured():
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )


async def _serve(
    provider: str, data_dir: Path, port: int, seed: int, faults: FaultPlan | None, options: dict[str, Any]
) -> int:
    try:
        sandbox = await start_sandbox(provider, data_dir, port=port, seed=seed, faults=faults, **options)
    except (ValueError, OSError) as exc:
        log.error("sandbox_start_failed", provider=provider, error=str(exc))
        print(f"libmirror sandbox: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        line = {"provider": provider, "base_url": sandbox.base_url, "remote": sandbox.remote}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stopping.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await sandbox.stop()
        log.info("sandbox_stopped", provider=provider)
    return 0


def serve(
    provider: str, data_dir: Path, *, port: int, seed: int = 0, faults: FaultPlan | None = None, **options: Any
) -> int:
    """Run the sandbox until SIGINT/SIGTERM; print the start-up JSON line first. Returns the exit code."""
    _log_to_stderr()
    return asyncio.run(_serve(provider, Path(data_dir), port, seed, faults, options))
