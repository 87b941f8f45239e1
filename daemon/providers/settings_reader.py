"""Reading one TOML table key by key: typed getters that record every problem and never raise.

A bad config must fail at start with every problem listed at once, each naming the file, the dotted
key and the fix. :class:`TableReader` is the reader every declaration in ``daemon/providers/*_settings``
and the general/library keys of ``daemon.config`` go through; it knows nothing about providers.
Secrets are read by ``settings_secret``, the small pure checks live in ``settings_values``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.providers.settings_secret import read_secret
from daemon.providers.settings_values import MISSING, type_name, url_problem
from daemon.secrets import Secret

__all__ = ["MISSING", "ConfigIssue", "ReadContext", "TableReader", "type_name"]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: the file, the dotted key (``""`` for the whole file) and what to do about it."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.file}: {self.key}: {self.message}"
        return f"{self.file}: {self.message}"


class ReadContext:
    """What every table reader shares: the file, its folder, the environment and the issue list."""

    def __init__(self, path: Path, environ: Mapping[str, str], mode: int | None) -> None:
        self.path = path
        self.file = str(path)
        self.base_dir = path.parent
        self.environ = environ
        self.mode = mode
        self.issues: list[ConfigIssue] = []
        self.warned_readable = False

    def error(self, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, key, message))

    def resolve_path(self, raw: str) -> Path:
        """``~`` expanded, relative paths taken relative to the config file's folder, ``..`` folded."""
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        return Path(os.path.normpath(path))


class TableReader:
    """Reads one TOML table key by key, records every problem and never raises.

    Each getter returns a usable fallback after recording an issue, so reading goes on and the user
    sees all problems at once. ``finish()`` reports the keys nobody asked for.
    """

    def __init__(self, table: Mapping[str, Any], prefix: str, ctx: ReadContext) -> None:
        self._table = table
        self._prefix = prefix
        self._ctx = ctx
        self._known: list[str] = []

    @property
    def environ(self) -> Mapping[str, str]:
        return self._ctx.environ

    def key(self, name: str) -> str:
        """The dotted key as shown in messages."""
        return f"{self._prefix}.{name}" if self._prefix else name

    def error(self, name: str, message: str) -> None:
        self._ctx.error(self.key(name), message)

    def has(self, name: str) -> bool:
        return name in self._table

    def raw(self, name: str) -> Any:
        """The raw value (``MISSING`` when absent); marks the key as known."""
        if name not in self._known:
            self._known.append(name)
        return self._table.get(name, MISSING)

    def _missing(self, name: str, hint: str) -> None:
        fix = f"add {hint}" if hint else f"add {name} = ..."
        self.error(name, f"required key is missing; {fix}")

    def _wrong_type(self, name: str, expected: str, value: object, example: str = "") -> None:
        fix = f", e.g. {name} = {example}" if example else ""
        self.error(name, f"expected {expected}, got {type_name(value)}{fix}")

    def string(self, name: str, default: str | None = None, *, hint: str = "") -> str:
        """A string; required when ``default`` is None. Empty strings are refused."""
        value = self.raw(name)
        if value is MISSING:
            if default is None:
                self._missing(name, hint)
                return ""
            return default
        if not isinstance(value, str):
            self._wrong_type(name, "a string", value, '"..."')
            return default or ""
        if not value.strip():
            self.error(name, f"must not be empty; {('set ' + hint) if hint else 'set a value or remove the key'}")
            return default or ""
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self._wrong_type(name, "true or false", value, str(default).lower())
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(name, "an integer", value, str(default))
            return default
        if not self._in_range(name, value, minimum, maximum):
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
        """An integer or float, returned as float (seconds, percentages)."""
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong_type(name, "a number", value, f"{default:g}")
            return default
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            self.error(name, f"must be a finite number, e.g. {name} = {default:g}")
            return default
        if not self._in_range(name, number, minimum, maximum):
            return default
        return number

    def _in_range(self, name: str, value: float, minimum: float | None, maximum: float | None) -> bool:
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if minimum is not None and maximum is not None:
                bounds = f"between {minimum:g} and {maximum:g}"
            elif minimum is not None:
                bounds = f"at least {minimum:g}"
            else:
                bounds = f"at most {maximum:g}"
            self.error(name, f"is {value:g}; must be {bounds}")
            return False
        return True

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        """One of ``choices``; required when ``default`` is None."""
        options = " | ".join(choices)
        value = self.raw(name)
        if value is MISSING:
            if default is None:
                self._missing(name, f'{name} = "{choices[0]}" (one of {options})')
                return ""
            return default
        if not isinstance(value, str):
            self._wrong_type(name, f"a string (one of {options})", value)
            return default or ""
        if value not in choices:
            close = difflib.get_close_matches(value.lower(), choices, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            self.error(name, f'"{value}" is not one of {options}{hint}')
            return default or ""
        return value

    def path(self, name: str, *, hint: str = "") -> Path:
        """A required path; relative paths are relative to the config file's folder."""
        value = self.string(name, hint=hint)
        return self._ctx.resolve_path(value) if value else Path()

    def string_list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._wrong_type(name, "an array of strings", value, '["*.tmp"]')
            return default
        return tuple(value)

    def table(self, name: str) -> Mapping[str, Any] | None:
        """A sub-table, or None (with an issue when present but not a table)."""
        value = self.raw(name)
        if value is MISSING:
            return None
        if not isinstance(value, dict):
            self._wrong_type(name, "a table", value)
            return None
        return value

    def url(self, name: str, *, hint: str = "") -> str:
        """An http(s) URL without credentials; plain http only for loopback hosts. No trailing slash."""
        value = self.string(name, hint=hint)
        if not value:
            return ""
        problem = url_problem(value)
        if problem:
            self.error(name, problem)
            return ""
        return value.rstrip("/")

    def secret(self, name: str) -> Secret:
        """A credential from exactly one of ``name`` (inline), ``name_env`` or ``name_file``."""
        return read_secret(self, name)

    @property
    def context(self) -> ReadContext:
        return self._ctx

    def nested(self, table: Mapping[str, Any], name: str) -> TableReader:
        """A reader for the sub-table ``name`` of this table (same file, same issue list)."""
        return TableReader(table, self.key(name), self._ctx)

    def finish(self) -> None:
        """Report every key of the table that no getter asked for."""
        for name in self._table:
            if name in self._known:
                continue
            close = difflib.get_close_matches(name, self._known, n=1, cutoff=0.6)
            if close:
                self.error(name, f'unknown key; did you mean "{close[0]}"?')
            else:
                known = ", ".join(self._known)
                self.error(name, f"unknown key; remove it (known keys here: {known})")
