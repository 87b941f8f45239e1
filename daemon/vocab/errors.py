"""Provider failures, shared by every room that raises or handles them (a verified download in
``daemon.local`` raises ``DigestMismatch`` as a provider does)."""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every provider failure. ``retryable`` tells the engine whether to try again later."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ProviderError):
    """Credentials were refused. Nothing in this library can work until the operator fixes them."""


class NotFound(ProviderError):
    """The remote object does not exist (any more)."""


class PreconditionFailed(ProviderError):
    """The remote object changed since we looked (e.g. CoreData's snapshot_id). Re-observe and re-plan."""


class TransientError(ProviderError):
    """Network trouble, 5xx, timeouts, rate limits that outlasted our retries."""

    retryable = True


class InvalidResponse(ProviderError):
    """The server answered something we cannot trust (bad JSON, missing fields, paging loop)."""

    retryable = True


class DigestMismatch(ProviderError):
    """Downloaded bytes did not match the digest or size the listing promised."""

    retryable = True


class Unsupported(ProviderError):
    """The API has no way to do this."""
