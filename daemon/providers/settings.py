"""Declaring settings keys once: name, type, default, check and help text, beside their owner.

Each provider declares the keys of its ``[library.remote]`` table in ``<provider>_settings.py`` as a
tuple of :class:`Key` and a :class:`ProviderSettings`; ``daemon.config`` declares the general and
library keys the same way. :func:`read_keys` turns a TOML table into values through a
:class:`TableReader` (so every message names the file, the key and the fix), and :func:`read_settings`
into the provider's frozen settings dataclass. This module imports nothing above ``daemon.providers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from daemon.providers.settings_reader import MISSING, TableReader

REQUIRED: Final[Any] = MISSING
"""The default of a key that must be present."""

#: reads one key's value (for types the standard kinds do not cover); gets the values read so far
KeyReader = Callable[[TableReader, "Key", Mapping[str, Any]], Any]
#: checks (and may normalise) a value after reading; records issues on the reader, returns the value
KeyCheck = Callable[[TableReader, Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class RemoteConfig:
    """Base of the per-provider ``[library.remote]`` settings."""


@dataclass(frozen=True)
class Key:
    """One settings key.

    ``kind`` is the type as the reader sees it: ``string``, ``url``, ``path``, ``secret`` (also read
    from ``<name>_env`` / ``<name>_file``), ``integer``, ``number``, ``boolean``, ``choice``,
    ``strings`` (an array of strings), or any other word when ``read`` does the reading. An optional
    key (``default`` is not ``REQUIRED``) that is absent yields its default without a check. ``hint``
    is the example a message suggests (``name = "..."``); ``help`` is the one-line documentation.
    """

    name: str
    kind: str
    help: str
    default: Any = REQUIRED
    hint: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    check: KeyCheck | None = None
    read: KeyReader | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def spellings(self) -> tuple[str, ...]:
        """The names under which the key may be written (a secret has three)."""
        if self.kind == "secret":
            return (self.name, f"{self.name}_env", f"{self.name}_file")
        return (self.name,)


def _read_standard(p: TableReader, key: Key) -> Any:
    name, default = key.name, key.default
    optional_default = None if key.required else default
    match key.kind:
        case "string":
            return p.string(name, optional_default, hint=key.hint)
        case "url":
            return p.url(name, hint=key.hint)
        case "path":
            return p.path(name, hint=key.hint)
        case "secret":
            return p.secret(name)
        case "integer":
            return p.integer(name, default, minimum=_int_or_none(key.minimum), maximum=_int_or_none(key.maximum))
        case "number":
            return p.number(name, default, minimum=key.minimum, maximum=key.maximum)
        case "boolean":
            return p.boolean(name, default)
        case "choice":
            return p.choice(name, key.choices, optional_default)
        case "strings":
            return p.string_list(name, default)
    raise ValueError(f"key {name!r}: kind {key.kind!r} needs a read function")


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def read_key(p: TableReader, key: Key, values: Mapping[str, Any]) -> Any:
    """The value of ``key`` in ``p``'s table (a usable fallback after recording an issue)."""
    if key.read is not None:
        value = key.read(p, key, values)
    elif not key.required and not p.has(key.name):
        p.raw(key.name)  # known even when absent, so a typo gets a "did you mean"
        return key.default
    else:
        value = _read_standard(p, key)
    if key.check is not None:
        value = key.check(p, value, values)
    return value


def read_keys(p: TableReader, keys: tuple[Key, ...]) -> dict[str, Any]:
    """Every declared key read in declaration order (later keys may depend on earlier values)."""
    values: dict[str, Any] = {}
    for key in keys:
        values[key.name] = read_key(p, key, values)
    return values


_S = TypeVar("_S", bound=RemoteConfig)


@dataclass(frozen=True)
class ProviderSettings:
    """What ``daemon.config`` needs to read one provider's ``[library.remote]`` table."""

    provider: str
    settings: type[RemoteConfig]
    keys: tuple[Key, ...]
    #: the directions the provider's API allows (empty: all) and why; the first is the default
    directions: tuple[str, ...] = ()
    directions_why: str = ""

    def read(self, p: TableReader) -> RemoteConfig:
        return read_settings(self.settings, self.keys, p)


def read_settings(cls: type[_S], keys: tuple[Key, ...], p: TableReader) -> _S:
    """``cls`` built from the declared keys (each key's name is the dataclass field's name)."""
    return cls(**read_keys(p, keys))


__all__ = [
    "REQUIRED",
    "Key",
    "KeyCheck",
    "KeyReader",
    "ProviderSettings",
    "RemoteConfig",
    "read_key",
    "read_keys",
    "read_settings",
]
