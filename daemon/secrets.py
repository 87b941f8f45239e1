"""A wrapper that keeps credentials out of reprs, tracebacks and logs.

Config objects are printed, logged and shown in tracebacks; a plain ``str`` field holding an API key
would leak through any of those. ``Secret`` only hands its value out through ``reveal()``, so every
place that really sends the key is easy to find (DESIGN rule 7).
"""

from __future__ import annotations

import hmac


class Secret:
    """A credential. ``str()`` and ``repr()`` never show the value; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: call this only where the credential is put on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)
