"""Authorization headers and session tokens, the same way for every provider.

Providers add their credentials per request (the HTTP layer never adds any by itself, so a presigned
URL never sees them). Schemes differ per API (``apikey USER:KEY``, Basic, Bearer, a JWT signed per
request); how a header is spelled and how an expired session token is renewed lives here.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import anyio
import structlog

from daemon.providers.http import Response
from daemon.vocab import AuthError

log = structlog.get_logger(__name__)

RENEWAL_ATTEMPTS = 8
"""Tokens one request tries before a 401 is final (each renewal is shared by the requests it refused)."""


def authorization(scheme: str, credentials: str) -> dict[str, str]:
    """``{"Authorization": "<scheme> <credentials>"}``."""
    return {"Authorization": f"{scheme} {credentials}"}


def basic_credentials(user: str, password: str = "") -> str:
    """HTTP Basic credentials: base64 of ``user:password``."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class SessionToken:
    """A session token the API hands out (``fetch``) and expires when it likes: a request refused with
    401 renews it once and is sent again. Requests that see the same 401 at once share one renewal."""

    def __init__(self, fetch: Callable[[], Awaitable[str]], *, provider: str) -> None:
        self._fetch = fetch
        self._provider = provider
        self._token: str | None = None
        self._lock = anyio.Lock()

    async def fresh(self, stale: str | None) -> str:
        """The current token, fetching a new one when there is none or it is ``stale``."""
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            token = await self._fetch()
            if stale is not None:
                log.info("session_token_renewed", provider=self._provider)
            self._token = token
            return token

    async def send(self, request: Callable[[str], Awaitable[Response]]) -> Response:
        """``request(token)``; after a 401, again with the renewed token. Requests sharing a token that
        runs out while they are in flight may each be refused in turn (a renewal another one made may be
        spent before this one uses it), so this tries up to ``RENEWAL_ATTEMPTS`` tokens; credentials the
        API rejects fail at the renewal itself."""
        token = self._token or await self.fresh(None)
        for attempt in range(1, RENEWAL_ATTEMPTS + 1):
            try:
                return await request(token)
            except AuthError as exc:
                if exc.status != 401 or attempt == RENEWAL_ATTEMPTS:
                    raise
            token = await self.fresh(token)
        raise AssertionError("unreachable")
