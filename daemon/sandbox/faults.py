"""Seeded fault injection for every sandbox: the failures real servers and networks produce.

One ``FaultInjector`` sits in the shared pipeline middleware of every sandbox app. For each request
(``/_sandbox/`` inspection routes excepted) it draws ONE number from ``random.Random(plan.seed)`` in
request order and maps it onto at most one fault kind, so a run with the same requests in the same
order meets exactly the same faults. Rates are per eligible request (a kind that cannot apply to a
request, e.g. a presigned-URL fault on an API call, takes no share of that draw); their sum must not
exceed 1.

When each kind strikes, relative to the handler (so a fault never corrupts the sandbox's own state):

====================================  ========  ============================================================
kind                                  when      what the client sees
====================================  ========  ============================================================
``500`` ``503``                       before    the provider's own error body with that status
``502``                               before    an HTML page from a "proxy", as load balancers send it
``429``                               before    the provider's own 429 with its headers (``Retry-After`` or
                                                Cliniko's ``X-RateLimit-Reset``)
``reset_before``                      before    the connection is reset (RST) before any byte is answered
``slow``                              before    nothing for ``slow_seconds``; then the handler runs anyway,
                                                as on an overloaded server (a create may exist although
                                                the client timed out)
``reset_mid_body``                    after     status, headers and half the body (half the headers when
                                                there is no body), then RST; the handler completed, so
                                                a POST's object exists
``truncated_body``                    after     a Content-Length larger than the bytes sent, then FIN
``presign_expire_mid_download``       after     half of a presigned download, then RST; that URL answers
                                                403 "Request has expired" from then on
``wrong_digest``                      after     one object of a listing carries a wrong ``digest``
``total_count_drift``                 after     ``meta.total_count`` / ``total_entries`` /
                                                ``paging.totalRows`` off by one
====================================  ========  ============================================================

"after" kinds are counted only when they could be applied (a body long enough to cut, a listing with
a digest or a count). Every injected fault is counted by kind in ``FaultInjector.counts`` and listed
in ``FaultInjector.injected``; ``GET /_sandbox/faults`` shows both, ``POST /_sandbox/faults`` with
``{"enabled": false}`` (or new ``rates``, ``seed``, ``match``, ``slow_seconds``, ``retry_after``, ``limit``)
changes the plan of a running sandbox process.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from aiohttp import web

from daemon.sandbox.middleware import ERROR_RENDERER, json_error

log = structlog.get_logger(__name__)

BEFORE_KINDS = ("500", "502", "503", "429", "reset_before", "slow")
AFTER_KINDS = ("reset_mid_body", "truncated_body", "presign_expire_mid_download", "wrong_digest", "total_count_drift")
KINDS = BEFORE_KINDS + AFTER_KINDS
"""Every fault kind, in the fixed order a draw is mapped onto (plan order never matters)."""

TRANSIENT_KINDS = tuple(k for k in KINDS if k != "slow")
"""What a client must survive by retrying, without waiting for a read timeout."""

INSPECTION_PREFIX = "/_sandbox/"
FAULTS_ROUTE = "/_sandbox/faults"
_SIGNATURE_PARAMS = ("Signature", "X-Amz-Signature")
_MAX_RECORDED = 100_000

Answer = Callable[[], Awaitable[web.StreamResponse]]


# ---- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults, how often, from which seed.

    ``rates`` maps a kind of ``KINDS`` to a probability per eligible request. ``match`` (a regular
    expression searched in the path) and ``methods`` narrow the requests that can be hit; ``limit``
    caps the number of injected faults (``None``: no cap). ``slow_seconds`` is how long ``slow``
    stalls (default: past the 60 s read timeout of ``HttpClient``); ``retry_after`` is the wait a
    429 asks for.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = 65.0
    retry_after: float = 1.0
    match: str | None = None
    methods: frozenset[str] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
        for kind, rate in self.rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate of {kind} must be between 0 and 1, got {rate}")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {sum(self.rates.values()):g}; at most 1 is possible")
        if self.slow_seconds < 0 or self.retry_after < 0:
            raise ValueError("slow_seconds and retry_after must not be negative")
        if self.match is not None:
            re.compile(self.match)

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    @classmethod
    def mix(cls, total: float, kinds: Sequence[str] = TRANSIENT_KINDS, **options: Any) -> FaultPlan:
        """``total`` spread evenly over ``kinds``: ``FaultPlan.mix(0.1, seed=7)`` is a 10% transient mix."""
        return cls(rates={k: total / len(kinds) for k in kinds}, **options)

    def describe(self) -> dict[str, Any]:
        return {
            "rates": dict(self.rates),
            "seed": self.seed,
            "slow_seconds": self.slow_seconds,
            "retry_after": self.retry_after,
            "match": self.match,
            "methods": sorted(self.methods) if self.methods else None,
            "limit": self.limit,
        }


def parse_rate(text: str) -> tuple[str, float]:
    """``"503=0.05"`` → ``("503", 0.05)``; argparse type for ``--fault``."""
    kind, sep, raw = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE with KIND one of {', '.join(KINDS)}; got {text!r}")
    try:
        rate = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the rate in {text!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"the rate in {text!r} must be between 0 and 1")
    return kind, rate


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--fault*`` options of ``libmirror sandbox`` and ``python -m daemon.sandbox``."""
    parser.add_argument(
        "--fault",
        type=parse_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"inject a fault into this share of requests (repeatable); kinds: {', '.join(KINDS)}",
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws (default 0)")
    parser.add_argument(
        "--fault-slow-seconds", type=float, default=65.0, help="how long a 'slow' fault stalls (default 65)"
    )
    parser.add_argument(
        "--fault-retry-after", type=float, default=1.0, help="seconds an injected 429 asks to wait (default 1)"
    )


def plan_from_args(args: argparse.Namespace) -> FaultPlan | None:
    """The plan the ``--fault*`` options describe; None when no fault was asked for."""
    if not args.fault:
        return None
    rates: dict[str, float] = {}
    for kind, rate in args.fault:
        rates[kind] = rate
    return FaultPlan(
        rates=rates, seed=args.fault_seed, slow_seconds=args.fault_slow_seconds, retry_after=args.fault_retry_after
    )


# ---- what differs per provider ----------------------------------------------------------------


def _retry_after_headers(wait: float) -> dict[str, str]:
    return {"Retry-After": f"{wait:g}"}


def _ratelimit_reset_headers(wait: float) -> dict[str, str]:
    """Cliniko: the UNIX second the window resets (as the sandbox's own limiter answers)."""
    return {"X-RateLimit-Reset": str(math.ceil(time.time() + wait))}


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """The provider-specific parts: where its blob store lives and how its 429 looks."""

    blob_prefixes: tuple[str, ...] = ()
    rate_limit_headers: Callable[[float], dict[str, str]] = _retry_after_headers
    rate_limit_message: str = "Too many requests"


PROFILES: dict[str, FaultProfile] = {
    "coredata": FaultProfile(("/laika/",), _retry_after_headers, "Request was throttled."),
    "cliniko": FaultProfile(("/s3/",), _ratelimit_reset_headers, "Too many requests"),
    "timetap": FaultProfile(("/s3/",), _retry_after_headers, "Too many requests"),
    "coreplus": FaultProfile((), _retry_after_headers, "rate limit exceeded"),
}


def profile_for(provider: str) -> FaultProfile:
    return PROFILES.get(provider, FaultProfile())


# ---- cutting a response short -------------------------------------------------------------------


class _CutTransport:
    """Stands in for the connection's transport while one response is written: it passes the status
    line, the headers and the first half of the body (by its Content-Length; without one, half of the
    first body write) and silently swallows the rest, so the handler finishes normally. An answer
    without a body (a 201 or 204 after a create or delete) loses the second half of its headers."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._head = bytearray()
        self._head_done = False
        self._keep: int | None = None
        self._sent = 0
        self.withheld = 0

    def _start_body(self, head: bytes) -> None:
        self._head_done = True
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        bodyless = head[9:12] in (b"204", b"304") or (match is not None and int(match.group(1)) == 0)
        if bodyless:  # nothing to cut but the answer itself: half the headers reach the client
            self._real.write(head[: len(head) // 2])
            self.withheld += len(head) - len(head) // 2
            self._keep = 0
            return
        self._real.write(head)
        if match is not None:
            self._keep = int(match.group(1)) // 2

    def write(self, data: Any) -> None:
        chunk = bytes(data)
        if not self._head_done:
            self._head += chunk
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, chunk = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
            self._head.clear()
            self._start_body(head)
        if not chunk:
            return
        if self._keep is None:
            self._keep = len(chunk) // 2
        room = max(0, self._keep - self._sent)
        if room:
            self._real.write(chunk[:room])
            self._sent += min(room, len(chunk))
        self.withheld += max(0, len(chunk) - room)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(bytes(line) for line in lines))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _rst(transport: Any) -> None:
    """Close with a TCP reset (SO_LINGER 0) rather than an orderly FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def _flushed(transport: Any) -> None:
    """Wait until asyncio handed everything written to the kernel (at most 2 s), plus a moment for
    the peer to read it: a reset discards what the peer has not yet received."""
    for _ in range(400):
        if transport.get_write_buffer_size() == 0 or transport.is_closing():
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)


# ---- the injector ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InjectedFault:
    index: int  # the request's number among those that were drawn for
    method: str
    path: str  # never the query: it may carry a signature
    kind: str


class FaultInjector:
    """Decides and carries out the faults of one sandbox app (see the module docstring)."""

    def __init__(self, provider: str, plan: FaultPlan | None = None) -> None:
        self.provider = provider
        self.profile = profile_for(provider)
        self.counts: Counter[str] = Counter()
        self.injected: list[InjectedFault] = []
        self.enabled = True
        self.drawn = 0  # requests a number was drawn for
        self._expired: set[str] = set()
        self._closing = asyncio.Event()
        self._plan = FaultPlan()
        self._rng = random.Random(0)
        self._pattern: re.Pattern[str] | None = None
        self.plan = plan or FaultPlan()

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """A new plan restarts the draws from its seed."""
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._pattern = re.compile(plan.match) if plan.match else None

    def close(self) -> None:
        """Wake stalled ``slow`` requests so the server can stop without waiting for them."""
        self._closing.set()

    def summary(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "enabled": self.enabled,
            "plan": self.plan.describe(),
            "drawn": self.drawn,
            "counts": dict(self.counts),
            "total": sum(self.counts.values()),
        }

    # -- decisions --

    def _presigned(self, request: web.Request) -> bool:
        return any(p in request.query for p in _SIGNATURE_PARAMS)

    def _blob_route(self, request: web.Request) -> bool:
        return self._presigned(request) or request.path.startswith(self.profile.blob_prefixes)

    def _eligible(self, kind: str, request: web.Request) -> bool:
        if kind == "presign_expire_mid_download":
            return request.method == "GET" and self._presigned(request)
        if kind in ("429", "wrong_digest", "total_count_drift"):
            return not self._blob_route(request) and (kind == "429" or request.method == "GET")
        return True

    def _draw(self, request: web.Request) -> str | None:
        plan = self._plan
        if not self.enabled or not plan.active:
            return None
        if plan.limit is not None and sum(self.counts.values()) >= plan.limit:
            return None
        if plan.methods is not None and request.method not in plan.methods:
            return None
        if self._pattern is not None and not self._pattern.search(request.path):
            return None
        eligible = [(k, plan.rates.get(k, 0.0)) for k in KINDS if plan.rates.get(k, 0.0) > 0]
        eligible = [(k, r) for k, r in eligible if self._eligible(k, request)]
        if not eligible:
            return None
        self.drawn += 1
        point = self._rng.random()
        for kind, rate in eligible:
            if point < rate:
                return kind
            point -= rate
        return None

    def _record(self, request: web.Request, kind: str) -> None:
        self.counts[kind] += 1
        if len(self.injected) < _MAX_RECORDED:
            self.injected.append(InjectedFault(self.drawn, request.method, request.path, kind))
        log.debug("fault_injected", kind=kind, method=request.method, path=request.path)

    # -- the middleware entry --

    async def __call__(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        """Answer ``request``: through ``answer()`` (the hooks and the handler), maybe with a fault."""
        if request.path.startswith(INSPECTION_PREFIX):
            if request.path == FAULTS_ROUTE:
                return await self._inspect(request)
            return await answer()
        if self._presigned(request) and self._url_key(request) in self._expired:
            render = request.app.get(ERROR_RENDERER, json_error)
            return render(request, 403, "Request has expired")
        kind = self._draw(request)
        if kind is None:
            return await answer()
        if kind in BEFORE_KINDS:
            return await self._before(request, kind, answer)
        if kind in ("wrong_digest", "total_count_drift"):
            return await self._rewrite(request, kind, answer)
        return await self._cut(request, kind, answer)

    def _url_key(self, request: web.Request) -> str:
        return f"{request.method} {request.rel_url.raw_path}?{request.rel_url.raw_query_string}"

    async def _before(self, request: web.Request, kind: str, answer: Answer) -> web.StreamResponse:
        self._record(request, kind)
        render = request.app.get(ERROR_RENDERER, json_error)
        if kind in ("500", "503"):
            message = "Internal server error" if kind == "500" else "Service temporarily unavailable"
            return render(request, int(kind), message)
        if kind == "502":
            page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return web.Response(status=502, text=page, content_type="text/html")
        if kind == "429":
            response = render(request, 429, self.profile.rate_limit_message)
            response.headers.update(self.profile.rate_limit_headers(self._plan.retry_after))
            return response
        if kind == "reset_before":
            transport = request.transport
            if transport is not None:
                _rst(transport)
            return web.Response(status=500, text="connection reset by the fault injector")
        assert kind == "slow"
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=self._plan.slow_seconds)
        except TimeoutError:
            pass
        return await answer()

    async def _rewrite(self, request: web.Request, kind: str, answer: Answer) -> web.StreamResponse:
        response = await answer()
        if not isinstance(response, web.Response) or response.status != 200:
            return response
        if response.content_type != "application/json":
            return response
        raw = response.body
        if not isinstance(raw, bytes):
            return response
        try:
            data = json.loads(raw)
        except ValueError:
            return response
        changed = _spoil_digest(data) if kind == "wrong_digest" else _drift_count(data)
        if changed:
            response.body = json.dumps(data).encode()
            self._record(request, kind)
        return response

    async def _cut(self, request: web.Request, kind: str, answer: Answer) -> web.StreamResponse:
        protocol: Any = request.protocol
        real = protocol.transport
        if real is None:
            return await answer()
        cutter = _CutTransport(real)
        protocol.transport = cutter
        try:
            response = await answer()
            if not response.prepared:
                await response.prepare(request)
                await response.write_eof()
        finally:
            if protocol.transport is cutter:
                protocol.transport = real
        if not cutter.withheld or real.is_closing():
            return response
        self._record(request, kind)
        if kind == "truncated_body":
            real.close()  # orderly FIN after what was sent: fewer bytes than Content-Length promised
            return response
        if kind == "presign_expire_mid_download":
            self._expired.add(self._url_key(request))
        await _flushed(real)
        _rst(real)
        return response

    async def _inspect(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return web.json_response({"error": "expected a JSON object"}, status=400)
            try:
                if {"rates", "seed", "match", "slow_seconds", "retry_after", "limit"} & set(body):
                    limit = body.get("limit", self._plan.limit)
                    self.plan = replace(
                        self._plan,
                        rates=dict(body.get("rates", self._plan.rates)),
                        seed=int(body.get("seed", self._plan.seed)),
                        match=body.get("match", self._plan.match),
                        slow_seconds=float(body.get("slow_seconds", self._plan.slow_seconds)),
                        retry_after=float(body.get("retry_after", self._plan.retry_after)),
                        limit=None if limit is None else int(limit),
                    )
            except (TypeError, ValueError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            if "enabled" in body:
                self.enabled = bool(body["enabled"])
        return web.json_response(self.summary())


def _wrong(digest: str) -> str:
    return hashlib.md5(f"libmirror-fault:{digest}".encode()).hexdigest()


def _spoil_digest(data: Any) -> bool:
    """One listing object (the first with a digest) gets a wrong one."""
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, list):
        return False
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("digest"), str) and obj["digest"]:
            obj["digest"] = _wrong(obj["digest"])
            return True
    return False


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _drift_count(data: Any) -> bool:
    """tastypie's ``meta.total_count``, Cliniko's ``total_entries`` or coreplus's ``paging.totalRows``
    (its client list) grows by one."""
    if not isinstance(data, dict):
        return False
    meta = data.get("meta")
    if isinstance(meta, dict) and _count(meta.get("total_count")):
        meta["total_count"] += 1
        return True
    if _count(data.get("total_entries")):
        data["total_entries"] += 1
        return True
    paging = data.get("paging")
    if isinstance(paging, dict) and _count(paging.get("totalRows")):
        paging["totalRows"] += 1
        return True
    return False
