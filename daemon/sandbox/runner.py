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
    """A started sandbox; ``backend`` is its tenant model, for inspection and mutation in tests.

    ``side_origins`` maps each further origin the sandbox serves (Cliniko: ``"s3"``, its presigned
    bucket) to ``http://127.0.0.1:PORT``; those apps share the main app's faults and fault hooks.
    """

    provider: str
    base_url: str
    remote: dict[str, Any]
    backend: Any
    _runner: web.AppRunner | None = field(default=None, repr=False)
    side_origins: dict[str, str] = field(default_factory=dict)
    _side_runners: list[web.AppRunner] = field(default_factory=list, repr=False)

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
        """Stop serving on every origin and close the state files (idempotent)."""
        runner, self._runner = self._runner, None
        sides, self._side_runners = self._side_runners, []
        if runner is not None:
            injector = runner.app.get(FAULT_INJECTOR)
            if injector is not None:
                injector.close()  # wake stalled 'slow' requests: cleanup waits for handlers
            try:
                await _cleanup([runner, *sides])
            finally:
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


def _origin(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _cleanup(runners: list[web.AppRunner]) -> None:
    """Clean up every runner, even when one of them fails; the first failure is raised after."""
    failure: BaseException | None = None
    for runner in runners:
        try:
            await runner.cleanup()
        except BaseException as exc:  # the others must still stop
            failure = failure or exc
    if failure is not None:
        raise failure


async def _serve_app(app: web.Application, sock: socket.socket, runners: list[web.AppRunner]) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    runners.append(runner)
    await runner.setup()
    await web.SockSite(runner, sock).start()


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
    changeable later through ``RunningSandbox.faults``). A provider with side apps (Cliniko's S3
    bucket) serves each on a free port of its own. Returns once every server accepts connections.
    Unknown provider or option: ``ValueError``; port in use: ``OSError``.
    """
    kind = registry.get(provider)
    try:
        backend = kind.create_backend(Path(data_dir), **options)
    except TypeError as exc:
        raise ValueError(f"bad option for the {provider} sandbox: {exc}") from None
    runners: list[web.AppRunner] = []
    socks: list[socket.socket] = []
    try:
        if seed > 0 and backend.is_new:
            kind.seed(backend, seed, seed)
        sock = _listening_socket(port)
        socks.append(sock)
        side_socks: dict[str, socket.socket] = {}
        for name in kind.side_apps:
            side_socks[name] = _listening_socket(0)
            socks.append(side_socks[name])
        side_origins = {name: _origin(s) for name, s in side_socks.items()}
        app = kind.build_app(backend, **side_origins)
        injector = FaultInjector(provider, faults)
        app[FAULT_INJECTOR] = injector
        sides: dict[str, web.Application] = {}
        for name, build_side in kind.side_apps.items():
            side = build_side(backend)
            side[FAULT_INJECTOR] = injector  # one seeded sequence of draws over every origin
            side[FAULT_HOOKS] = app[FAULT_HOOKS]  # the same list: a hook added in a test applies everywhere
            sides[name] = side
        await _serve_app(app, sock, runners)
        for name, side in sides.items():
            await _serve_app(side, side_socks[name], runners)
    except BaseException:
        try:
            await _cleanup(runners)
        finally:
            for s in socks:
                s.close()  # a no-op for the sockets a site already closed
            backend.close()
        raise
    base_url = _origin(sock)
    log.info("sandbox_started", provider=provider, base_url=base_url, data_dir=str(data_dir), **side_origins)
    return RunningSandbox(
        provider,
        base_url,
        backend.remote_table(base_url),
        backend,
        runners[0],
        side_origins,
        runners[1:],
    )


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
