"""Strict validation of coreplus' per-request JWT, as the doc describes the token.

Every rule a real server could apply is applied, so a client that passes here sends what the doc
shows: the ``JwToken `` prefix (one space), an HS256 signature with the consumer secret, ``nbf`` and
``exp`` (at most 60 s apart) around the server's now, the app's ``consumerId`` and ``accessToken``,
``iss``/``aud``, and ``url``/``httpMethod`` equal to the request being made (query string included).
"""

from __future__ import annotations

import hmac
from typing import Any, Protocol

import jwt
from aiohttp import web
from yarl import URL

PREFIX = "JwToken "
MAX_LIFETIME_S = 60


class TokenRejected(Exception):
    """The token is not acceptable; the message says why (sent back to the client)."""


class JwtPolicy(Protocol):
    consumer_id: str
    consumer_secret: str
    access_token: str
    issuer: str
    audience: str
    leeway_s: float


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _port(url: URL) -> int | None:
    return url.explicit_port or url.port


def same_request_url(claimed: str, request: web.Request) -> bool:
    """Scheme and host compare case-insensitively (they are), the path and query byte for byte."""
    try:
        url = URL(claimed, encoded=True)
    except ValueError:
        return False
    actual = request.url
    return (
        url.scheme.lower() == actual.scheme.lower()
        and (url.host or "").lower() == (actual.host or "").lower()
        and _port(url) == _port(actual)
        and url.raw_path_qs == request.rel_url.raw_path_qs
    )


def check_token(request: web.Request, policy: JwtPolicy, now: float) -> dict[str, Any]:
    """The validated claims of ``request``'s token; ``TokenRejected`` otherwise."""
    header = request.headers.get("Authorization")
    if not header:
        raise TokenRejected("Authorization header is missing")
    if not header.startswith(PREFIX) or header[len(PREFIX) :].startswith(" "):
        raise TokenRejected("Authorization must be 'JwToken <token>'")
    token = header[len(PREFIX) :]
    try:
        if jwt.get_unverified_header(token).get("alg") != "HS256":
            raise TokenRejected("token must be signed with HS256")
        claims: dict[str, Any] = jwt.decode(
            token,
            policy.consumer_secret,
            algorithms=["HS256"],
            options={"require": ["nbf", "exp"], "verify_exp": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"invalid token: {exc}") from None
    nbf, exp = claims["nbf"], claims["exp"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (nbf, exp)):
        raise TokenRejected("nbf and exp must be numeric dates")
    if exp - nbf > MAX_LIFETIME_S or exp <= nbf:
        raise TokenRejected(f"exp must be after nbf and at most {MAX_LIFETIME_S} s later")
    if nbf > now + policy.leeway_s:
        raise TokenRejected("token is not yet valid (nbf is in the future)")
    if exp <= now - policy.leeway_s:
        raise TokenRejected("token has expired")
    expected = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "consumerId": policy.consumer_id,
        "accessToken": policy.access_token,
    }
    for claim, value in expected.items():
        given = claims.get(claim)
        if not isinstance(given, str) or not _same(given, value):
            raise TokenRejected(f"claim {claim!r} is wrong or missing")
    if claims.get("httpMethod") != request.method:
        raise TokenRejected("claim 'httpMethod' does not match the request's method")
    url = claims.get("url")
    if not isinstance(url, str) or not same_request_url(url, request):
        raise TokenRejected("claim 'url' does not match the request's URL")
    return claims
