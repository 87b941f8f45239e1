"""The TOML configuration, read into frozen typed dataclasses.

The daemon runs unattended for months, so a bad config must fail at start with every problem listed
at once, each naming the file, the key and the fix (``ConfigError.issues``). Provider-specific
``[library.remote]`` tables are read by small functions in ``REMOTE_SCHEMAS``, so adding a provider
never touches the core loader. Secrets may come inline, from the environment or from a file (systemd
``LoadCredential``); each is wrapped in :class:`Secret` and registered for log redaction.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pathspec
import structlog

from daemon.logs import register_secret
from daemon.secrets import Secret
from daemon.vocab import Direction

log = structlog.get_logger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")
LIBRARY_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


# ---------------------------------------------------------------------------------------------------
# errors


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


class ConfigError(Exception):
    """The configuration cannot be used. ``issues`` lists every problem found in one pass."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# ---------------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class RemoteConfig:
    """Base of the per-provider ``[library.remote]`` settings."""


@dataclass(frozen=True)
class CoreDataRemote(RemoteConfig):
    """CoreData: tenant URL (no trailing slash), root container id, API user and key."""

    base_url: str
    root: str
    api_user: str
    api_key: Secret


@dataclass(frozen=True)
class CorePlusRemote(RemoteConfig):
    """coreplus: server URL (no trailing slash), app credentials and JWT claims (push-only provider)."""

    base_url: str
    consumer_id: str
    consumer_secret: Secret
    access_token: Secret
    issuer: str = ""
    audience: str = ""
    clock_skew: float = 0.0  # seconds subtracted from the JWT's nbf when our clock runs ahead


@dataclass(frozen=True)
class TimeTapRemote(RemoteConfig):
    """TimeTap: API base (no trailing slash), API key + private key, the business, the uploading user,
    and optionally one folder (``fileLibraryUUID``) as the library root instead of the whole library."""

    api_key: Secret
    private_key: Secret
    business_id: int
    user_name: str
    base_url: str = "https://api.timetap.com/live"
    root_folder: str | None = None


@dataclass(frozen=True)
class ClinikoRemote(RemoteConfig):
    """Cliniko: API key, the User-Agent Cliniko requires, the API base (from the key's shard unless
    given), optionally the patients to mirror, the folder name format and the request budget."""

    api_key: Secret
    user_agent: str
    base_url: str
    patients: tuple[str, ...] = ()
    patient_folder: str = "{last_name}, {first_name} ({id})"
    rate_limit: int = 200
    rate_limit_window: float = 60.0


@dataclass(frozen=True)
class LibraryConfig:
    """One ``[[library]]``: a local folder mirrored with one remote container."""

    name: str
    provider: str
    local_path: Path
    remote: RemoteConfig
    direction: Direction = Direction.TWO_WAY
    max_delete_percent: float = 50.0
    max_delete_count: int = 500
    max_overwrite_percent: float = 50.0
    max_overwrite_count: int = 500
    ignore: tuple[str, ...] = ()
    trash_days: int = 30
    concurrency: int = 4
    poll_interval: float = 30.0
    full_scan_interval: float = 3600.0
    settle: float = 1.0
    local_rescan_interval: float = 3600.0
    propagate_deletes: bool = True


@dataclass(frozen=True)
class Config:
    """The whole file. ``path`` is absolute; every path inside is absolute too."""

    path: Path
    state_dir: Path
    log_level: str
    allow_root: bool
    libraries: tuple[LibraryConfig, ...]
    stop_timeout: float = 30.0

    def library(self, name: str) -> LibraryConfig:
        """The library called ``name``; ``KeyError`` when there is none."""
        for lib in self.libraries:
            if lib.name == name:
                return lib
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------------
# reading one table


class _Context:
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


_MISSING: Any = object()
_T = TypeVar("_T")


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


class RemoteParser:
    """Reads one TOML table key by key, records every problem and never raises.

    Each getter returns a usable fallback after recording an issue, so reading goes on and the user
    sees all problems at once. ``finish()`` reports the keys nobody asked for. Provider schemas in
    ``REMOTE_SCHEMAS`` receive one of these for their ``[library.remote]`` table.
    """

    def __init__(self, table: Mapping[str, Any], prefix: str, ctx: _Context) -> None:
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
        """The raw value (``_MISSING`` when absent); marks the key as known."""
        if name not in self._known:
            self._known.append(name)
        return self._table.get(name, _MISSING)

    def _missing(self, name: str, hint: str) -> None:
        fix = f"add {hint}" if hint else f"add {name} = ..."
        self.error(name, f"required key is missing; {fix}")

    def _wrong_type(self, name: str, expected: str, value: object, example: str = "") -> None:
        fix = f", e.g. {name} = {example}" if example else ""
        self.error(name, f"expected {expected}, got {_type_name(value)}{fix}")

    def string(self, name: str, default: str | None = None, *, hint: str = "") -> str:
        """A string; required when ``default`` is None. Empty strings are refused."""
        value = self.raw(name)
        if value is _MISSING:
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
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self._wrong_type(name, "true or false", value, str(default).lower())
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is _MISSING:
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
        if value is _MISSING:
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
        if value is _MISSING:
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
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._wrong_type(name, "an array of strings", value, '["*.tmp"]')
            return default
        return tuple(value)

    def table(self, name: str) -> Mapping[str, Any] | None:
        """A sub-table, or None (with an issue when present but not a table)."""
        value = self.raw(name)
        if value is _MISSING:
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
        problem = _url_problem(value)
        if problem:
            self.error(name, problem)
            return ""
        return value.rstrip("/")

    def secret(self, name: str) -> Secret:
        """A credential from exactly one of ``name`` (inline), ``name_env`` or ``name_file``."""
        env_key, file_key = f"{name}_env", f"{name}_file"
        sources = {name: self.raw(name), env_key: self.raw(env_key), file_key: self.raw(file_key)}
        present = [k for k, v in sources.items() if v is not _MISSING]
        if not present:
            self._missing(
                name,
                f"exactly one of {env_key} (environment variable), {file_key} (file path) or {name} (inline value)",
            )
            return Secret("")
        if len(present) > 1:
            self.error(present[0], f"{' and '.join(present)} are all set; keep exactly one of them")
            return Secret("")
        source = present[0]
        raw = sources[source]
        if not isinstance(raw, str) or not raw:
            what = "the environment variable's name" if source == env_key else "a string"
            self.error(source, f"expected {what}, got {_type_name(raw) if raw != '' else 'an empty string'}")
            return Secret("")
        if source == env_key:
            value = self._secret_from_env(env_key, file_key, raw)
        elif source == file_key:
            value = self._secret_from_file(file_key, env_key, raw)
        else:
            value = raw
            self._warn_if_readable(name)
        if value is None:
            return Secret("")
        register_secret(value)
        return Secret(value)

    def _secret_from_env(self, env_key: str, file_key: str, var: str) -> str | None:
        value = self._ctx.environ.get(var)
        if value is None:
            self.error(env_key, f"environment variable {var} is not set; export it or use {file_key}")
            return None
        if not value:
            self.error(env_key, f"environment variable {var} is empty; set it to the key or use {file_key}")
            return None
        return value

    def _secret_from_file(self, file_key: str, env_key: str, raw: str) -> str | None:
        expanded, unset = _expand_vars(raw, self._ctx.environ)
        if unset:
            self.error(
                file_key,
                f"environment variable {unset} used in the path is not set; set it "
                f"(systemd sets $CREDENTIALS_DIRECTORY with LoadCredential=) or use an absolute path",
            )
            return None
        path = self._ctx.resolve_path(expanded)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.error(file_key, f"file {path} does not exist; create it with the key or use {env_key}")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.error(file_key, f"cannot read {path} ({reason}); fix its permissions or use {env_key}")
            return None
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        if not text:
            self.error(file_key, f"file {path} is empty; write the key into it")
            return None
        return text

    def _warn_if_readable(self, name: str) -> None:
        mode = self._ctx.mode
        if mode is None or not mode & (stat.S_IRGRP | stat.S_IROTH):
            return
        log.warning(
            "config_secret_world_readable",
            path=self._ctx.file,
            key=self.key(name),
            mode=oct(stat.S_IMODE(mode)),
            fix=f"chmod 600 {self._ctx.file}, or move the value to {name}_env / {name}_file",
        )

    def nested(self, table: Mapping[str, Any], name: str) -> RemoteParser:
        """A reader for the sub-table ``name`` of this table (same file, same issue list)."""
        return RemoteParser(table, self.key(name), self._ctx)

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


def _url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"{value!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not host:
        return f'{value!r} is not an http(s) URL; write it like "https://tenant.example.com"'
    if parts.username is not None or parts.password is not None:
        return "must not contain user or password; put credentials in the api_* keys"
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query string or fragment"
    if parts.scheme == "http" and not _is_loopback(host):
        return f"plain http is only allowed for 127.0.0.1, localhost or ::1 (got {host}); use https:// for real servers"
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand_vars(text: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``$VAR`` / ``${VAR}`` replaced from ``environ``; returns the first unset name, if any."""
    unset: list[str] = []

    def repl(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(2)
        if var not in environ:
            unset.append(var)
            return match.group(0)
        return environ[var]

    expanded = _VAR_RE.sub(repl, text)
    return expanded, (unset[0] if unset else None)


# ---------------------------------------------------------------------------------------------------
# provider schemas


def parse_coredata_remote(p: RemoteParser) -> CoreDataRemote:
    """``[library.remote]`` for CoreData."""
    return CoreDataRemote(
        base_url=p.url("base_url", hint='base_url = "https://tenant.coredata.is"'),
        root=p.string("root", hint='root = "<id of a space, project or folder>"'),
        api_user=p.string("api_user", hint='api_user = "<API user name>"'),
        api_key=p.secret("api_key"),
    )


def _claim(p: RemoteParser, name: str) -> str:
    """An optional JWT claim value; unlike ``p.string`` an empty string is allowed (the vendor's
    sample code sends empty ``iss``/``aud``)."""
    value = p.raw(name)
    if value is _MISSING:
        return ""
    if not isinstance(value, str):
        p.error(name, f'expected a string, got {_type_name(value)}, e.g. {name} = "..."')
        return ""
    return value


def parse_coreplus_remote(p: RemoteParser) -> CorePlusRemote:
    """``[library.remote]`` for coreplus (``ALLOWED_DIRECTIONS`` makes its direction push, also when omitted)."""
    return CorePlusRemote(
        base_url=p.url("base_url", hint='base_url = "https://<your server>" (without /API/...)'),
        consumer_id=p.string("consumer_id", hint='consumer_id = "<consumerId of the app>"'),
        consumer_secret=p.secret("consumer_secret"),
        access_token=p.secret("access_token"),
        issuer=_claim(p, "issuer"),
        audience=_claim(p, "audience"),
        clock_skew=p.number("clock_skew", 0.0, minimum=0, maximum=3600),
    )


def parse_timetap_remote(p: RemoteParser) -> TimeTapRemote:
    """``[library.remote]`` for TimeTap. ``business_id`` may be written as a number or a digit string."""
    raw_id = p.raw("business_id")
    business_id = 0
    if raw_id is _MISSING:
        p.error("business_id", "required key is missing; add business_id = <your TimeTap business id>")
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool) and raw_id > 0:
        business_id = raw_id
    elif isinstance(raw_id, str) and raw_id.strip().isdigit() and int(raw_id) > 0:
        business_id = int(raw_id)
    else:
        p.error("business_id", f"expected a positive whole number, got {raw_id!r}; e.g. business_id = 12345")
    for optional in ("base_url", "root_folder"):
        p.raw(optional)  # known even when absent, so a typo gets a "did you mean"
    root_folder = None
    if p.has("root_folder"):
        root_folder = p.string("root_folder", hint='root_folder = "<fileLibraryUUID of a folder>"') or None
    return TimeTapRemote(
        api_key=p.secret("api_key"),
        private_key=p.secret("private_key"),
        business_id=business_id,
        user_name=p.string("user_name", hint='user_name = "<TimeTap user the uploads are made as>"'),
        base_url=(
            p.url("base_url", hint='base_url = "https://api.timetap.com/live"')
            if p.has("base_url")
            else TimeTapRemote.base_url
        ),
        root_folder=root_folder,
    )


CLINIKO_FOLDER_FIELDS = ("id", "first_name", "last_name", "preferred_first_name", "title")
_CLINIKO_USER_AGENT = re.compile(r"\S.*\([^()\s@]+@[^()\s@]+\.[^()\s@]+\)")
_CLINIKO_SHARD = re.compile(r"-([a-z]{2,3}[0-9]+)$")


def cliniko_base_url(api_key: str) -> str:
    """``https://api.SHARD.cliniko.com/v1``; the shard is the key's ``-xx9`` suffix, au1 without one."""
    match = _CLINIKO_SHARD.search(api_key)
    return f"https://api.{match.group(1) if match else 'au1'}.cliniko.com/v1"


def _cliniko_folder_format(p: RemoteParser) -> str:
    fmt = p.string("patient_folder", ClinikoRemote.patient_folder)
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(fmt) if field is not None]
    except ValueError as exc:
        p.error("patient_folder", f'is not a valid format ({exc}); e.g. patient_folder = "{{last_name}} ({{id}})"')
        return ClinikoRemote.patient_folder
    unknown = [n for n in names if n not in CLINIKO_FOLDER_FIELDS]
    if unknown:
        known = ", ".join("{" + f + "}" for f in CLINIKO_FOLDER_FIELDS)
        p.error("patient_folder", f"unknown field {{{unknown[0]}}}; use {known}")
    elif "id" not in names:
        p.error("patient_folder", "must contain {id}: local folders are matched to patients by their id")
    return fmt


def parse_cliniko_remote(p: RemoteParser) -> ClinikoRemote:
    """``[library.remote]`` for Cliniko."""
    api_key = p.secret("api_key")
    user_agent = p.string("user_agent", hint='user_agent = "Practice Mirror (it@practice.example)"')
    if user_agent and not _CLINIKO_USER_AGENT.fullmatch(user_agent.strip()):
        p.error(
            "user_agent",
            f'{user_agent!r} is not "NAME (EMAIL)"; Cliniko requires a name and a contact email, '
            'e.g. user_agent = "Practice Mirror (it@practice.example)"',
        )
    if p.has("base_url"):
        base_url = p.url("base_url", hint='base_url = "https://api.au1.cliniko.com/v1"')
    else:
        base_url = cliniko_base_url(api_key.reveal())
    patients: list[str] = []
    raw = p.raw("patients")
    if raw is not _MISSING:
        items = raw if isinstance(raw, list) else None
        for item in items or []:
            if isinstance(item, int) and not isinstance(item, bool) and item > 0:
                patients.append(str(item))
            elif isinstance(item, str) and item.strip().isdigit():
                patients.append(item.strip())
            else:
                items = None
                break
        if items is None:
            p.error("patients", f"expected an array of patient ids, got {raw!r}; e.g. patients = [1234, 5678]")
            patients = []
    return ClinikoRemote(
        api_key=api_key,
        user_agent=user_agent.strip(),
        base_url=base_url,
        patients=tuple(dict.fromkeys(patients)),
        patient_folder=_cliniko_folder_format(p),
        rate_limit=p.integer("rate_limit", 200, minimum=1),
        rate_limit_window=p.number("rate_limit_window", 60.0, minimum=0.1),
    )


RemoteSchema = Callable[[RemoteParser], RemoteConfig]

# provider name → reader of its [library.remote] table. Later providers add themselves here.
REMOTE_SCHEMAS: dict[str, RemoteSchema] = {
    "coredata": parse_coredata_remote,
    "timetap": parse_timetap_remote,
    "coreplus": parse_coreplus_remote,
    "cliniko": parse_cliniko_remote,
}

# provider → (the directions its API allows, why). Providers not listed allow every direction; for a
# listed one, an omitted ``direction`` means the first allowed one (coreplus: push).
ALLOWED_DIRECTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "coreplus": (("push",), "the coreplus API documents only uploads (no listing, download, update or delete)"),
}


# ---------------------------------------------------------------------------------------------------
# the loader


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

    ctx = _Context(path, env, mode)
    config = _parse_document(doc, ctx)
    if ctx.issues or config is None:
        raise ConfigError(ctx.issues)
    return config


def _parse_document(doc: Mapping[str, Any], ctx: _Context) -> Config | None:
    top = RemoteParser(doc, "", ctx)
    state_dir = top.path("state_dir", hint='state_dir = "/var/lib/libmirror"')
    log_level = top.choice("log_level", LOG_LEVELS, "info")
    allow_root = top.boolean("allow_root", False)
    stop_timeout = top.number("stop_timeout", 30.0, minimum=0)
    libraries = _parse_libraries(top, ctx)
    top.finish()
    _check_paths(state_dir, libraries, ctx)
    if ctx.issues:
        return None
    return Config(
        path=ctx.path,
        state_dir=state_dir,
        log_level=log_level,
        allow_root=allow_root,
        libraries=tuple(libraries),
        stop_timeout=stop_timeout,
    )


def _parse_libraries(top: RemoteParser, ctx: _Context) -> list[LibraryConfig]:
    raw = top.raw("library")
    if raw is _MISSING:
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
            top.error(f"library[{index}]", f"expected a [[library]] table, got {_type_name(item)}")
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
        lib = _parse_library(RemoteParser(item, f"library[{label}]", ctx))
        if lib is not None:
            libraries.append(lib)
    return libraries


def _parse_library(p: RemoteParser) -> LibraryConfig | None:
    name = p.string("name", hint='name = "board" (letters, digits, "_", "." and "-")')
    if name and not LIBRARY_NAME_RE.fullmatch(name):
        p.error("name", f'"{name}" may only contain letters, digits, "_", "." and "-"')
    provider = p.choice("provider", tuple(REMOTE_SCHEMAS))
    local_path = p.path("local_path", hint='local_path = "/srv/mirror/board"')
    allowed, why = ALLOWED_DIRECTIONS.get(provider, ((), ""))
    default_direction = allowed[0] if allowed else Direction.TWO_WAY.value  # coreplus: push
    direction = p.choice("direction", tuple(d.value for d in Direction), default_direction)
    if direction and allowed and direction not in allowed:
        p.error(
            "direction",
            f'is "{direction}", but a {provider} library must be direction = "{allowed[0]}" '
            f"(or leave direction out): {why}",
        )
    max_delete_percent = p.number("max_delete_percent", 50.0, minimum=0, maximum=100)
    max_delete_count = p.integer("max_delete_count", 500, minimum=0)
    max_overwrite_percent = p.number("max_overwrite_percent", 50.0, minimum=0, maximum=100)
    max_overwrite_count = p.integer("max_overwrite_count", 500, minimum=0)
    ignore = p.string_list("ignore")
    for pattern in ignore:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except Exception as exc:  # pathspec's error classes moved between versions
            p.error("ignore", f"pattern {pattern!r} is not a valid gitignore pattern ({exc})")
    trash_days = p.integer("trash_days", 30, minimum=0)
    concurrency = p.integer("concurrency", 4, minimum=1, maximum=32)
    poll_interval = p.number("poll_interval", 30.0, minimum=1)
    full_scan_interval = p.number("full_scan_interval", 3600.0, minimum=1)
    settle = p.number("settle", 1.0, minimum=0)
    local_rescan_interval = p.number("local_rescan_interval", 3600.0, minimum=1)
    propagate_deletes = p.boolean("propagate_deletes", True)
    remote = _parse_remote(p, provider)
    p.finish()
    if remote is None:
        return None
    return LibraryConfig(
        name=name,
        provider=provider,
        local_path=local_path,
        remote=remote,
        direction=Direction(direction) if direction else Direction.TWO_WAY,
        max_delete_percent=max_delete_percent,
        max_delete_count=max_delete_count,
        max_overwrite_percent=max_overwrite_percent,
        max_overwrite_count=max_overwrite_count,
        ignore=ignore,
        trash_days=trash_days,
        concurrency=concurrency,
        poll_interval=poll_interval,
        full_scan_interval=full_scan_interval,
        settle=settle,
        local_rescan_interval=local_rescan_interval,
        propagate_deletes=propagate_deletes,
    )


def _parse_remote(p: RemoteParser, provider: str) -> RemoteConfig | None:
    table = p.table("remote")
    if table is None:
        if not p.has("remote"):
            p.error("remote", "missing table; add a [library.remote] section after this [[library]]")
        return None
    schema = REMOTE_SCHEMAS.get(provider)
    if schema is None:  # provider itself already reported
        return None
    reader = p.nested(table, "remote")
    remote = schema(reader)
    reader.finish()
    return remote


def _check_paths(state_dir: Path, libraries: list[LibraryConfig], ctx: _Context) -> None:
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


__all__ = [
    "ALLOWED_DIRECTIONS",
    "REMOTE_SCHEMAS",
    "ClinikoRemote",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "CoreDataRemote",
    "CorePlusRemote",
    "LibraryConfig",
    "RemoteConfig",
    "RemoteParser",
    "RemoteSchema",
    "Secret",
    "TimeTapRemote",
    "load_config",
]
