"""coreplus request signing: a fresh HS256 JWT for every single request (``coreplus-file-upload.txt``).

The token names the exact URL (query string included) and the HTTP method it is valid for, and lives
60 seconds, so it cannot be prepared once and reused: the HTTP layer asks for it per attempt
(``HttpClient.request(headers_factory=...)``), which also keeps retries valid.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from yarl import URL

from daemon.providers.auth import authorization

TOKEN_LIFETIME_S = 60
AUTH_SCHEME = "JwToken"


class JwtSigner:
    """Builds the ``Authorization: JwToken <jwt>`` header of one request.

    ``clock_skew`` (seconds) is subtracted from ``nbf``: a server whose clock runs behind ours would
    otherwise refuse a token that is "not yet valid". ``exp`` stays ``nbf + 60`` as the doc shows.
    """

    def __init__(
        self,
        *,
        consumer_id: str,
        consumer_secret: str,
        access_token: str,
        issuer: str,
        audience: str,
        clock_skew: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer_id = consumer_id
        self._secret = consumer_secret
        self._access_token = access_token
        self.issuer = issuer
        self.audience = audience
        self.clock_skew = clock_skew
        self._clock = clock

    def token(self, method: str, url: URL | str) -> str:
        """The JWT for ``method`` on ``url`` (the URL as sent: scheme, host, path and query)."""
        nbf = int(self._clock() - self.clock_skew)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "nbf": nbf,
            "exp": nbf + TOKEN_LIFETIME_S,
            "consumerId": self.consumer_id,
            "accessToken": self._access_token,
            "url": str(url),
            "httpMethod": method.upper(),
        }
        with warnings.catch_warnings():
            # the consumer secret is the vendor's to choose; PyJWT's length advice would repeat per request
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(claims, self._secret, algorithm="HS256")

    def headers(self, method: str, url: URL) -> dict[str, str]:
        """``HeadersFactory`` for ``HttpClient.request``: called once per attempt."""
        return authorization(AUTH_SCHEME, self.token(method, url))
