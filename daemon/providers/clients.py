"""The HTTP clients a provider uses: the one it was handed (shared, closed by whoever made it), or the
ones it made for itself, which its ``aclose`` closes."""

from __future__ import annotations

from collections.abc import Callable

from daemon.providers.http import HttpClient


class Clients:
    """``Clients(given)``: ``client(make)`` is ``given`` when there is one, else a client ``make()``
    builds (only then, so a made client's rate limiter is registered only when it is used)."""

    def __init__(self, given: HttpClient | None) -> None:
        self._given = given
        self._made: list[HttpClient] = []

    def client(self, make: Callable[[], HttpClient]) -> HttpClient:
        if self._given is not None:
            return self._given
        made = make()
        self._made.append(made)
        return made

    async def aclose(self) -> None:
        """Close the clients made here, in the order they were made."""
        for made in self._made:
            await made.aclose()
