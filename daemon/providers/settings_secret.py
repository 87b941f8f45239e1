"""A credential from exactly one of ``NAME`` (inline), ``NAME_env`` or ``NAME_file``; registered for redaction."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import structlog

from daemon.logs import register_secret
from daemon.providers.settings_values import MISSING, expand_vars, type_name
from daemon.secrets import Secret

if TYPE_CHECKING:
    from daemon.providers.settings_reader import TableReader

log = structlog.get_logger("daemon.config")


def read_secret(p: TableReader, name: str) -> Secret:
    """A credential from exactly one of ``name`` (inline), ``name_env`` or ``name_file``."""
    env_key, file_key = f"{name}_env", f"{name}_file"
    sources = {name: p.raw(name), env_key: p.raw(env_key), file_key: p.raw(file_key)}
    present = [k for k, v in sources.items() if v is not MISSING]
    if not present:
        p.error(
            name,
            "required key is missing; add "
            f"exactly one of {env_key} (environment variable), {file_key} (file path) or {name} (inline value)",
        )
        return Secret("")
    if len(present) > 1:
        p.error(present[0], f"{' and '.join(present)} are all set; keep exactly one of them")
        return Secret("")
    source = present[0]
    raw = sources[source]
    if not isinstance(raw, str) or not raw:
        what = "the environment variable's name" if source == env_key else "a string"
        p.error(source, f"expected {what}, got {type_name(raw) if raw != '' else 'an empty string'}")
        return Secret("")
    if source == env_key:
        value = _from_env(p, env_key, file_key, raw)
    elif source == file_key:
        value = _from_file(p, file_key, env_key, raw)
    else:
        value = raw
        _warn_if_readable(p, name)
    if value is None:
        return Secret("")
    register_secret(value)
    return Secret(value)


def _from_env(p: TableReader, env_key: str, file_key: str, var: str) -> str | None:
    value = p.context.environ.get(var)
    if value is None:
        p.error(env_key, f"environment variable {var} is not set; export it or use {file_key}")
        return None
    if not value:
        p.error(env_key, f"environment variable {var} is empty; set it to the key or use {file_key}")
        return None
    return value


def _from_file(p: TableReader, file_key: str, env_key: str, raw: str) -> str | None:
    expanded, unset = expand_vars(raw, p.context.environ)
    if unset:
        p.error(
            file_key,
            f"environment variable {unset} used in the path is not set; set it "
            f"(systemd sets $CREDENTIALS_DIRECTORY with LoadCredential=) or use an absolute path",
        )
        return None
    path = p.context.resolve_path(expanded)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        p.error(file_key, f"file {path} does not exist; create it with the key or use {env_key}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        p.error(file_key, f"cannot read {path} ({reason}); fix its permissions or use {env_key}")
        return None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        p.error(file_key, f"file {path} is empty; write the key into it")
        return None
    return text


def _warn_if_readable(p: TableReader, name: str) -> None:
    mode = p.context.mode
    if mode is None or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    log.warning(
        "config_secret_world_readable",
        path=p.context.file,
        key=p.key(name),
        mode=oct(stat.S_IMODE(mode)),
        fix=f"chmod 600 {p.context.file}, or move the value to {name}_env / {name}_file",
    )
