"""The one request pipeline every sandbox shares: access log, fault hooks, error bodies.

Every request passes through ``pipeline_middleware``. Seeded fault injection
(``daemon.sandbox.faults``) sits in ``app[FAULT_INJECTOR]`` and wraps the whole answer, so it can act
before the handler (an error status, a reset, a stall) or after it completed (a body cut short, a
listing altered); tests add ad-hoc hooks in ``app[FAULT_HOOKS]`` that may answer a request before the
handler does. Handlers signal failures by raising ``ApiError``; each provider decides how an error
body looks (``ERROR_RENDERER``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from aiohttp import web

from daemon.sandbox.access_log import RequestLog, RequestRecord

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultHook = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
ErrorRenderer = Callable[[web.Request, int, str], web.StreamResponse]
Answer = Callable[[], Awaitable[web.StreamResponse]]


class FaultInjection(Protocol):
    """What the pipeline needs of a fault injector (``daemon.sandbox.faults.FaultInjector``)."""

    async def __call__(self, request: web.Request, answer: Answer) -> web.StreamResponse: ...

    def close(self) -> None: ...


REQUEST_LOG = web.AppKey("request_log", RequestLog)
FAULT_HOOKS = web.AppKey("fault_hooks", list[FaultHook])
ERROR_RENDERER: web.AppKey[ErrorRenderer] = web.AppKey("error_renderer")
FAULT_INJECTOR: web.AppKey[FaultInjection] = web.AppKey("fault_injector")


class ApiError(Exception):
    """A failure answered with ``status`` and a provider-shaped body carrying ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    """Default error body: tastypie's ``{"error_message": ...}``."""
    return web.json_response({"error_message": message}, status=status)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    render = request.app.get(ERROR_RENDERER, json_error)
    for hook in request.app.get(FAULT_HOOKS, []):
        injected = await hook(request)
        if injected is not None:
            return injected
    try:
        return await handler(request)
    except ApiError as exc:
        return render(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render(request, exc.status, exc.reason)


@web.middleware
async def pipeline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer the request and record (method, path, query, status) in the app's request log."""
    status = 500
    try:
        injector = request.app.get(FAULT_INJECTOR)
        if injector is None:
            response = await _answer(request, handler)
        else:
            response = await injector(request, lambda: _answer(request, handler))
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("sandbox_handler_failed", method=request.method, path=request.path)
        render = request.app.get(ERROR_RENDERER, json_error)
        return render(request, 500, "internal sandbox error")
    finally:
        requests = request.app.get(REQUEST_LOG)
        if requests is not None:
            requests.record(RequestRecord(request.method, request.path, request.query_string, status))
