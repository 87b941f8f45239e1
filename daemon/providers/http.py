"""The HTTP layer every provider shares: one session, retries, pacing, streaming, error mapping.

Why one layer: retry/backoff, rate limits and the mapping of HTTP failures onto
``daemon.providers.base`` errors must behave the same for every provider, and secrets must never reach
a log. Providers add their own auth headers per call; this client never adds an ``Authorization``
header by itself and never follows redirects unless asked, so a presigned URL (which must be fetched
without our credentials) is always fetched by an explicit, separate request.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import structlog
from yarl import URL

from daemon.bandwidth import Throttle, current_throttle
from daemon.logs import debug_enabled
from daemon.metrics.families import METRICS
from daemon.providers.base import Sink
from daemon.providers.throttled_body import throttled
from daemon.vocab import AuthError, InvalidResponse, NotFound, PreconditionFailed, ProviderError, TransientError

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A request that may have been carried out although it failed (a create) is only retried when the
# server surely did nothing: it was rate limited, unavailable, or we never got a connection.
UNSAFE_RETRY_STATUSES = frozenset({429, 503})
NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
DEFAULT_CHUNK = 256 * 1024
MIN_CHUNK = 64 * 1024
MAX_CHUNK = 1024 * 1024

BodyFactory = Callable[[], AbstractContextManager[Any]]
"""Opens a fresh request body for one attempt (a file, a FormData holding an open file...) and closes
it afterwards. Streams cannot be replayed, so every retry calls the factory again."""

RetryAfterHook = Callable[[Mapping[str, str], float], float | None]
"""Provider hook: given the response headers and the current epoch time, seconds to wait or None."""

HeadersFactory = Callable[[str, URL], Mapping[str, str]]
"""Provider hook: headers for one attempt of ``method`` on the exact target URL (query included), called
anew for every attempt, so per-request tokens (coreplus' JWT) are fresh on retries too."""


def _user_agent() -> str:
    try:
        return f"libmirror/{package_version('libmirror')}"
    except PackageNotFoundError:  # running from a source tree without metadata
        return "libmirror/0"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n sleeps uniform(0, min(cap, base * 2**n))."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0  # a server asking for longer than this is treated as down

    def backoff(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class RateLimiter:
    """Token bucket: at most ``rate`` requests per ``per`` seconds, bursts up to ``rate``.

    The bucket state is updated synchronously (no await between reading and writing it), so it needs
    no lock and can be shared by clients running in different event loops (tests) or tasks.
    """

    def __init__(self, rate: float, per: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.rate = rate
        self.per = per
        self._clock = clock
        self._per_second = rate / per
        self._tokens = float(rate)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token now; return how long the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(float(self.rate), self._tokens + (now - self._last) * self._per_second)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._per_second

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await anyio.sleep(delay)


_LIMITERS: dict[str, RateLimiter] = {}


def budget_key(provider: str, secret: str) -> str:
    """Registry key for a provider account without keeping the secret itself around."""
    return f"{provider}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


MAX_CONNECTIONS_PER_HOST = 32
"""Keep-alive connections per host: as many as the most concurrent library may use (``concurrency``'s
maximum), so the library's own worker pool decides how many requests are in flight. Four used to cap
every library at four requests in flight whatever its concurrency: at a 100 ms round trip, 20 files/s."""


def shared_rate_limiter(key: str, rate: float, per: float = 1.0) -> RateLimiter:
    """The one limiter for ``key``: libraries using the same account share one request budget."""
    limiter = _LIMITERS.get(key)
    if limiter is None or limiter.rate != rate or limiter.per != per:
        limiter = _LIMITERS[key] = RateLimiter(rate, per)
    return limiter


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; None when absent/garbage."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact_url(url: URL | str) -> str:
    """Scheme, host and path only: query strings carry signatures and keys."""
    u = url if isinstance(url, URL) else URL(url, encoded=True)
    return str(u.with_query(None).with_fragment(None).with_user(None))


class Response:
    """The answer to one request. Without ``stream`` the body is already read into ``body``; with
    ``stream`` the caller reads it through ``iter_chunks`` and must ``release()`` (or use ``async with``)."""

    def __init__(self, raw: aiohttp.ClientResponse, body: bytes | None, throttle: Throttle | None = None) -> None:
        self._raw = raw
        self._throttle = throttle
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers
        self.url = raw.url
        self.body = body

    def json(self) -> Any:
        """Parse the body as JSON; anything else (an HTML error page, garbage) is InvalidResponse."""
        if self.body is None:
            raise RuntimeError("json() on a streamed response")
        ctype = self.headers.get("Content-Type", "")
        if "html" in ctype.lower():
            raise InvalidResponse(f"expected JSON from {redact_url(self.url)}, got {ctype}", status=self.status)
        try:
            return parse_json(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidResponse(f"unparseable JSON from {redact_url(self.url)}: {exc}", status=self.status) from None

    async def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        size = max(MIN_CHUNK, min(MAX_CHUNK, chunk_size))
        try:
            async for chunk in self._raw.content.iter_chunked(size):
                if self._throttle is not None:  # the one place every streamed download passes (bwlimit)
                    await self._throttle.received(len(chunk))
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"transfer from {redact_url(self.url)} broke: {exc!r}") from exc

    async def stream_to(self, sink: Sink, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Feed the body into ``sink`` chunk by chunk; returns the byte count. Memory stays flat."""
        total = 0
        async for chunk in self.iter_chunks(chunk_size):
            total += len(chunk)
            await sink(chunk)
        return total

    def release(self) -> None:
        self._raw.release()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def parse_json(body: bytes) -> Any:
    """``json.loads``, with lone UTF-16 surrogates (``"\\udc81"``: the JSON grammar admits them, Unicode
    text cannot hold them) read as U+FFFD, like undecodable text anywhere else. A server name holding
    one stopped every pass of its library: no UTF-8 encoder (the state store, a log line, a file name)
    takes it."""
    data = jsonlib.loads(body)
    if b"\\ud" in body or b"\\uD" in body:  # only a \\uD800-\\uDFFF escape can make one
        data = _no_lone_surrogates(data)
    return data


def _no_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
        return value
    if isinstance(value, list):
        return [_no_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_lone_surrogates(k): _no_lone_surrogates(v) for k, v in value.items()}
    return value


def _error_message(body: bytes | None) -> str:
    """A short server-side reason: tastypie's error_message, or the start of the body."""
    if not body:
        return ""
    try:
        data = parse_json(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("error_message", "message", "error", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return jsonlib.dumps(data)[:200]


class HttpClient:
    """One aiohttp session with pooled keep-alive connections, created lazily in the running loop."""

    def __init__(
        self,
        *,
        user_agent: str | None = None,
        limit_per_host: int = MAX_CONNECTIONS_PER_HOST,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        retry_after_hook: RetryAfterHook | None = None,
        auth_hint: str = "check the API credentials in the library's [remote] settings",
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
        provider: str = "unknown",
    ) -> None:
        self.provider = provider  # the ``provider`` label of the request metrics
        self.user_agent = user_agent or _user_agent()
        self.limit_per_host = limit_per_host
        self.rate_limiter = rate_limiter
        self.retry = retry or RetryPolicy()
        self.retry_after_hook = retry_after_hook
        self.auth_hint = auth_hint
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.limit_per_host, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self.user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies could carry state across hosts
                auto_decompress=True,
                # 1 MiB socket reads (aiohttp's default is 64 KiB): large downloads run about 20 % faster;
                # at most 2 MiB buffered per connection, so memory stays bounded whatever the file size
                read_bufsize=1 << 20,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        body: BodyFactory | None = None,
        json: Any = None,
        expect: Collection[int],
        allow_redirects: bool = False,
        retry: bool = True,
        stream: bool = False,
        idempotent: bool | None = None,
        headers_factory: HeadersFactory | None = None,
    ) -> Response:
        """Send one request, retrying transient failures, and return a response whose status is in
        ``expect``. Any other status raises the matching ``ProviderError`` subclass.

        ``data`` must be replayable (bytes, str, a dict of form fields); a streamed body is passed as
        ``body``, a factory opening it anew for each attempt. ``url`` given as ``str`` is taken as
        already encoded (so presigned signatures are sent byte for byte).

        ``idempotent`` (default: not POST/PATCH) decides what is retried: a non-idempotent request is
        retried only after 429/503 or a failed connect, so a create is never carried out twice.

        ``headers_factory(method, url)`` is called once per attempt (after pacing) and its headers are
        added to ``headers``: for auth schemes that sign each request with a short-lived token.
        """
        if idempotent is None:
            idempotent = method.upper() not in NON_IDEMPOTENT
        retry_statuses = RETRY_STATUSES if idempotent else UNSAFE_RETRY_STATUSES
        target = url if isinstance(url, URL) else URL(url, encoded=True)
        if params:
            target = target.update_query(params)
        attempts = self.retry.attempts if retry else 1
        last_problem = ""
        throttle = current_throttle()  # the bandwidth limits of the library this request works for
        for attempt in range(attempts):
            if self.rate_limiter is not None:
                pause = self.rate_limiter.reserve()
                if pause > 0:
                    METRICS.rate_limit_wait(self.provider, "pacing")
                    await anyio.sleep(pause)
            started = time.monotonic()
            wait: float | None = None
            limited = False  # the server answered 429: the wait below is a rate-limit wait
            try:
                sent = dict(headers) if headers else {}
                if headers_factory is not None:
                    sent.update(headers_factory(method.upper(), target))
                opener = body() if body is not None else nullcontext(data)
                with opener as payload:
                    if body is not None and throttle is not None:  # every streamed upload passes here
                        payload = throttled(payload, throttle)
                    raw = await self._get_session().request(
                        method,
                        target,
                        headers=sent or None,
                        data=payload,
                        json=json,
                        allow_redirects=allow_redirects,
                    )
                    try:
                        content = None if stream and raw.status in expect else await raw.read()
                    except BaseException:
                        raw.release()
                        raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                METRICS.request(self.provider, None)
                if not idempotent and not isinstance(exc, aiohttp.ClientConnectorError):
                    attempts = attempt + 1  # it may have reached the server: do not send it again
                if debug_enabled():
                    log.debug(
                        "http_request",
                        method=method,
                        url=redact_url(target),
                        error=type(exc).__name__,
                        duration_ms=round((time.monotonic() - started) * 1000),
                        attempt=attempt + 1,
                    )
            else:
                if debug_enabled():
                    log.debug(
                        "http_request",
                        method=method,
                        url=redact_url(target),
                        status=raw.status,
                        duration_ms=round((time.monotonic() - started) * 1000),
                        attempt=attempt + 1,
                    )
                METRICS.request(self.provider, raw.status)
                response = Response(raw, content, throttle)
                if raw.status in expect:
                    return response
                raw.release()
                if raw.status not in RETRY_STATUSES:
                    raise self._error_for(method, target, raw.status, content)
                last_problem = f"HTTP {raw.status} {_error_message(content)}".strip()
                if raw.status not in retry_statuses:
                    attempts = attempt + 1
                wait = self._server_wait(raw.headers)
                limited = raw.status == 429
            if attempt + 1 >= attempts:
                break
            delay = self.retry.backoff(attempt) if wait is None else wait
            if delay > self.retry.max_retry_after:
                break
            if limited:
                METRICS.rate_limit_wait(self.provider, "server")
            log.debug("http_retry", method=method, url=redact_url(target), delay_s=round(delay, 3))
            await anyio.sleep(delay)
        raise TransientError(f"{method} {redact_url(target)} failed after {attempts} attempt(s): {last_problem}")

    def _server_wait(self, headers: Mapping[str, str]) -> float | None:
        wait = parse_retry_after(headers.get("Retry-After"))
        if wait is None and self.retry_after_hook is not None:
            wait = self.retry_after_hook(headers, time.time())
        return wait

    def _error_for(self, method: str, url: URL, status: int, body: bytes | None) -> ProviderError:
        where = f"{method} {redact_url(url)}"
        reason = _error_message(body)
        detail = f": {reason}" if reason else ""
        if status in (401, 403):
            return AuthError(
                f"{where} refused our credentials (HTTP {status}){detail}; {self.auth_hint}", status=status
            )
        if status == 404:
            return NotFound(f"{where}: not found{detail}", status=status)
        if status in (409, 412):
            return PreconditionFailed(f"{where}: the remote object changed (HTTP {status}){detail}", status=status)
        return ProviderError(f"{where}: HTTP {status}{detail}", status=status)
