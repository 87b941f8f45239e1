"""Logging set-up: JSON lines for journald, a readable console on a TTY, secrets always redacted.

Under systemd the daemon's stdout goes to journald, which reads a leading ``<N>`` syslog priority to
file the level, so every JSON line starts with one. On a terminal the same events are rendered by
structlog's console renderer. Either way one processor walks every value of every event and replaces
credentials with ``[redacted]`` (DESIGN rule 7): values registered with :func:`register_secret`, values
under credential-like keys, and credential-shaped substrings (auth headers, JWTs, presigned URL
signatures), because error messages from HTTP libraries love to quote URLs and headers.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import quote

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words and numbers

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# syslog priorities as journald reads them from a "<N>" line prefix
_PRIORITY: Mapping[str, int] = {"critical": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}

# ---------------------------------------------------------------------------------------------------
# redaction

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact ``value`` (and its URL-encoded form) wherever it appears in a log event from now on.

    Values shorter than ``MIN_SECRET_LENGTH`` are ignored: redacting "abc" everywhere would mangle
    logs without protecting anything worth protecting.
    """
    global _secrets_re
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget every registered secret (tests; a config reload that drops credentials)."""
    global _secrets_re
    with _secrets_lock:
        _secrets.clear()
        _secrets_re = None


# Keys whose values are credentials, whatever they hold. Matched on the lower-cased key with "-" as "_".
_SENSITIVE_KEY = re.compile(
    r"authorization|api_?key|token|secret|password|passwd|signature|credential|cookie|private_?key"
)
# ...except keys that name where a secret lives (config's api_key_env / api_key_file), not the secret.
_KEY_EXEMPT_SUFFIXES = ("_env", "_file")

_TOKEN_CHARS = r"[A-Za-z0-9._~+/=:@%-]"
_KEYWORD = r"[A-Za-z0-9_-]*(?:authorization|token|secret|password|passwd|api_?key|signature|credential)"

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "key": "value" / 'key': 'value' inside JSON bodies and Python reprs of dicts
    (
        re.compile(rf"""(["'])({_KEYWORD}[A-Za-z0-9_-]*)\1(\s*:\s*)(["'])(?:(?!\4).)*\4""", re.I),
        rf"\1\2\1\3\4{REDACTED}\4",
    ),
    # header lines: "Authorization: apikey user:key", "authorization=Bearer x"
    (re.compile(r"(\bauthorization\s*[:=]\s*)[^\"'\r\n,;}]+", re.I), rf"\1{REDACTED}"),
    # bare auth schemes: "apikey USER:KEY", "Bearer X", "Basic X", "JwToken X"
    (re.compile(rf"\b(apikey|bearer|basic|jwtoken)(\s+){_TOKEN_CHARS}{{6,}}", re.I), rf"\1\2{REDACTED}"),
    # JWTs: base64url header "eyJ..." . payload . signature
    (re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), REDACTED),
    # query parameters of presigned URLs and token endpoints
    (
        re.compile(
            r"(?<![A-Za-z0-9_-])((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature"
            r"|sessiontoken|session_token|access_token|api_key|apikey|awsaccesskeyid|password|token)=)"
            r"[^&\s\"'#<>]+",
            re.I,
        ),
        rf"\1{REDACTED}",
    ),
)


# A word every pattern above needs somewhere in its match: text without any of them is left as it is
# after one scan instead of five (most log values: paths, reasons, names). Must stay a superset.
_TRIGGER_WORDS = r"authoriz|token|secret|passw|api_?key|signature|credential|bearer|basic|jwtoken|eyj|awsaccesskeyid"
_TEXT_TRIGGER = re.compile(_TRIGGER_WORDS, re.I)
# The same words searched in lower-cased ASCII text: eight times quicker than an IGNORECASE search, which
# tries every case of every word at every position (every value of every log line passes here). Other
# text keeps the IGNORECASE search: there "ſ" matches "s" and the Kelvin sign "k", as in the patterns.
_ASCII_TRIGGER = re.compile(_TRIGGER_WORDS)


def _may_hold_a_credential(text: str) -> bool:
    if text.isascii():
        return _ASCII_TRIGGER.search(text.lower()) is not None
    return _TEXT_TRIGGER.search(text) is not None


def redact_text(text: str) -> str:
    """``text`` with registered secrets and credential-shaped substrings replaced by ``[redacted]``."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if not _may_hold_a_credential(text):
        return text
    for regex, replacement in _TEXT_PATTERNS:
        text = regex.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=1024)
def _is_sensitive_key(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    if name.endswith(_KEY_EXEMPT_SUFFIXES):
        return False
    return _SENSITIVE_KEY.search(name) is not None


def redact(value: object) -> object:
    """A copy of ``value`` safe to log: nested dicts, lists and tuples walked, strings scrubbed.

    Objects that are not plain JSON scalars are turned into their ``str()`` first, since that is how
    the renderers would show them anyway (URLs, exceptions, paths) and it is the only form we can scrub.
    """
    if type(value) is str:  # first: most values of every log line
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_sensitive_key(k) and _has_content(v) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return redact_text(str(value))


def _has_content(value: object) -> bool:
    return value is not None and not isinstance(value, bool) and value != ""


def redact_processor(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: scrub every key and value of the event (see :func:`redact`)."""
    cleaned = redact(event_dict)
    assert isinstance(cleaned, dict)
    return cleaned


# ---------------------------------------------------------------------------------------------------
# processors and renderers


def _add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """UTC ISO time with milliseconds and a ``Z``; journald has its own clock, this one is for humans."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    event_dict["timestamp"] = now.replace("+00:00", "Z")
    return event_dict


_FIRST_KEYS = ("event", "level", "timestamp")


def _render_json_line(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    """One JSON object prefixed with the syslog priority, fixed keys first for easy reading."""
    priority = _PRIORITY.get(str(event_dict.get("level", "info")), 6)
    ordered: dict[str, Any] = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    ordered.update(event_dict)
    return f"<{priority}>" + json.dumps(ordered, default=str, ensure_ascii=False)


def _encodable_line(line: str) -> str:
    """``line`` with any lone surrogate (a file name whose bytes are not UTF-8) written as a ``\\udcXX``
    escape: a strict UTF-8 stream refuses it, which broke the whole pass that logged it. In a JSON line
    the escape is JSON's own, so the value parses back as it was."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line


class _StdlibToStructlog(logging.Handler):
    """Feeds stdlib ``logging`` records (aiohttp, asyncio, SQLAlchemy) into the structlog pipeline."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            level = max((lv for lv in LEVELS.values() if lv <= record.levelno), default=logging.DEBUG)
            logger.log(
                level,
                "stdlib_log",
                logger=record.name,
                message=record.getMessage(),
                exc_info=record.exc_info if record.exc_info else None,
            )
        except Exception:
            self.handleError(record)


_debug = True  # the configured level lets debug events through (so do structlog's defaults, before it)


def debug_enabled() -> bool:
    """Whether debug events are written: a hot path checks this before it builds a debug event (a
    filtered call still makes a logger and evaluates its arguments)."""
    return _debug


def configure_logging(
    fmt: Literal["json", "console"] | None = None,
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and route stdlib logging at WARNING+) for the whole process.

    ``fmt=None`` picks JSON when ``stream`` (default stdout) is not a terminal, which is the case under
    systemd. Loggers made with ``structlog.get_logger()`` before this call pick up the new settings,
    because loggers are not cached on first use. Safe to call again (tests, reconfiguration).
    """
    global _debug
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    _debug = LEVELS[name] <= logging.DEBUG
    out = stream if stream is not None else sys.stdout
    is_tty = _isatty(out)
    if fmt is None:
        fmt = "console" if is_tty else "json"

    inner: Processor = _render_json_line if fmt == "json" else structlog.dev.ConsoleRenderer(colors=is_tty)

    def renderer(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        return _encodable_line(str(inner(logger, method_name, event_dict)))

    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        _add_timestamp,
        structlog.processors.format_exc_info,  # exceptions become a string field, so they get redacted
        redact_processor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[name]),
        logger_factory=structlog.WriteLoggerFactory(file=out),  # line and newline in one write
        context_class=dict,
        cache_logger_on_first_use=False,
    )
    _route_stdlib(max(LEVELS[name], logging.WARNING))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _route_stdlib(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibToStructlog):
            root.removeHandler(handler)
    handler = _StdlibToStructlog(level=level)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)


def bind_library(name: str) -> None:
    """Tag every following event in this task/context with ``library=name``."""
    structlog.contextvars.bind_contextvars(library=name)


__all__ = [
    "REDACTED",
    "bind_library",
    "clear_secrets",
    "configure_logging",
    "debug_enabled",
    "redact",
    "redact_processor",
    "redact_text",
    "register_secret",
]
