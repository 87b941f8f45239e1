"""The loader: the file read, every declared key checked, every problem listed at once."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.config.keys import GENERAL_KEYS, LIBRARY_KEYS, LIBRARY_NAME_RE
from daemon.config.model import Config, ConfigError, Direction, LibraryConfig
from daemon.providers.catalog import PROVIDER_SETTINGS
from daemon.providers.settings import RemoteConfig, read_keys
from daemon.providers.settings_reader import MISSING, ConfigIssue, ReadContext, TableReader, type_name


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the config at ``path``; ``ConfigError`` lists every problem."""
    path = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    env = os.environ if environ is None else environ
    file = str(path)
    try:
        data = path.read_bytes()
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            [ConfigIssue(file, "", "file not found; create it (see config.example.toml) or pass its path")]
        ) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(file, "", "is a folder, not a TOML file; pass the file's path")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, "", f"cannot read ({exc.strerror}); check its permissions")]) from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(file, "", f"is not UTF-8 text (byte {exc.start}); save it as UTF-8")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(file, "", f"TOML syntax error: {exc}")]) from None

    ctx = ReadContext(path, env, mode)
    config = _parse_document(doc, ctx)
    if ctx.issues or config is None:
        raise ConfigError(ctx.issues)
    return config


def _parse_document(doc: Mapping[str, Any], ctx: ReadContext) -> Config | None:
    top = TableReader(doc, "", ctx)
    general = read_keys(top, GENERAL_KEYS)
    libraries = _parse_libraries(top, ctx)
    top.finish()
    _check_paths(general["state_dir"], libraries, ctx)
    if ctx.issues:
        return None
    return Config(path=ctx.path, libraries=tuple(libraries), **general)


def _parse_libraries(top: TableReader, ctx: ReadContext) -> list[LibraryConfig]:
    raw = top.raw("library")
    if raw is MISSING:
        top.error("library", "no [[library]] tables; add at least one (see config.example.toml)")
        return []
    if isinstance(raw, dict):
        top.error("library", "write [[library]] (double brackets, an array of tables), not [library]")
        return []
    if not isinstance(raw, list) or not raw:
        top.error("library", "expected one or more [[library]] tables")
        return []
    libraries: list[LibraryConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            top.error(f"library[{index}]", f"expected a [[library]] table, got {type_name(item)}")
            continue
        name = item.get("name")
        label = name if isinstance(name, str) and LIBRARY_NAME_RE.fullmatch(name) else str(index)
        if isinstance(name, str) and name in seen:
            ctx.error(
                f"library[{index}].name",
                f'"{name}" is already used by library[{seen[name]}]; library names must be unique',
            )
        elif isinstance(name, str):
            seen[name] = index
        lib = _parse_library(TableReader(item, f"library[{label}]", ctx))
        if lib is not None:
            libraries.append(lib)
    return libraries


def _parse_library(p: TableReader) -> LibraryConfig | None:
    values = read_keys(p, LIBRARY_KEYS)
    remote = _parse_remote(p, values["provider"])
    p.finish()
    if remote is None:
        return None
    direction = values.pop("direction")
    return LibraryConfig(
        remote=remote,
        direction=Direction(direction) if direction else Direction.TWO_WAY,
        **values,
    )


def _parse_remote(p: TableReader, provider: str) -> RemoteConfig | None:
    table = p.table("remote")
    if table is None:
        if not p.has("remote"):
            p.error("remote", "missing table; add a [library.remote] section after this [[library]]")
        return None
    spec = PROVIDER_SETTINGS.get(provider)
    if spec is None:  # provider itself already reported
        return None
    reader = p.nested(table, "remote")
    remote = spec.read(reader)
    reader.finish()
    return remote


def _check_paths(state_dir: Path, libraries: list[LibraryConfig], ctx: ReadContext) -> None:
    """Two libraries must not share a folder, and the state must not live inside a synced folder."""
    real = [(lib, Path(os.path.realpath(lib.local_path))) for lib in libraries if lib.local_path != Path()]
    for i, (lib_a, path_a) in enumerate(real):
        for lib_b, path_b in real[i + 1 :]:
            if path_a == path_b:
                problem = f"is the same folder as library[{lib_b.name}].local_path"
            elif path_b.is_relative_to(path_a):
                problem = f"contains library[{lib_b.name}].local_path ({lib_b.local_path})"
            elif path_a.is_relative_to(path_b):
                problem = f"is inside library[{lib_b.name}].local_path ({lib_b.local_path})"
            else:
                continue
            ctx.error(f"library[{lib_a.name}].local_path", f"{problem}; give each library its own folder")
    if state_dir == Path():
        return
    real_state = Path(os.path.realpath(state_dir))
    for lib, path in real:
        # ROOT/.libmirror/ is never synced (the demo keeps its state there)
        if (real_state == path or real_state.is_relative_to(path)) and not real_state.is_relative_to(
            path / ".libmirror"
        ):
            ctx.error(
                "state_dir",
                f"is inside library[{lib.name}].local_path ({lib.local_path}); "
                f"keep the state outside every synced folder",
            )
