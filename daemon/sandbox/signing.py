"""Presigned blob URLs in the S3 v2 query-string style CoreData's ``/laika/`` store uses.

The signature is HMAC-SHA1 over ``METHOD\\nBLOB\\nEXPIRES`` with a server secret, base64 encoded.
Anyone holding the URL may use it until it expires, without any Authorization header; a URL signed
for GET does not allow PUT and vice versa.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode


class SignatureError(Exception):
    """The presigned URL is expired, tampered with, or incomplete (the store answers 403)."""


class UrlSigner:
    """Signs and verifies presigned URLs for one access key."""

    def __init__(self, secret: str, access_key_id: str) -> None:
        self._secret = secret.encode()
        self.access_key_id = access_key_id

    def signature(self, method: str, blob: str, expires: int) -> str:
        message = f"{method.upper()}\n{blob}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def query(self, method: str, blob: str, ttl_s: float, extra: Mapping[str, str] | None = None) -> str:
        """The query string (without ``?``) of a URL valid for ``ttl_s`` seconds from now."""
        expires = int(time.time() + ttl_s)
        params = dict(extra or {})
        params["AWSAccessKeyId"] = self.access_key_id
        params["Expires"] = str(expires)
        params["Signature"] = self.signature(method, blob, expires)
        return urlencode(params, quote_via=quote)

    def verify(self, method: str, blob: str, query: Mapping[str, str]) -> None:
        """Raise ``SignatureError`` unless ``query`` carries a valid, unexpired signature."""
        try:
            expires = int(query["Expires"])
            given = query["Signature"]
            key = query["AWSAccessKeyId"]
        except (KeyError, ValueError) as exc:
            raise SignatureError("Query-string authentication requires Signature, Expires and AWSAccessKeyId") from exc
        if key != self.access_key_id:
            raise SignatureError("The AWS Access Key Id you provided does not exist in our records.")
        if not hmac.compare_digest(given, self.signature(method, blob, expires)):
            raise SignatureError("The request signature we calculated does not match the signature you provided.")
        if time.time() > expires:
            raise SignatureError("Request has expired")
