"""Logging: JSON line shape for journald, level filtering, context, stdlib routing, redaction."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import logs
from daemon.logs import (
    _TEXT_PATTERNS,
    REDACTED,
    bind_library,
    clear_secrets,
    configure_logging,
    redact,
    redact_text,
    register_secret,
)
from daemon.secrets import Secret

early_log = structlog.get_logger("tests.early")  # made before configure_logging runs, like module loggers


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "_debug", logs.debug_enabled())  # the level conftest configured, restored after
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_StdlibToStructlog":
            root.removeHandler(handler)
    clear_secrets()


def lines(stream: io.StringIO) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for line in stream.getvalue().splitlines():
        m = re.fullmatch(r"<(\d)>(\{.*\})", line)
        assert m, line
        out.append((int(m.group(1)), json.loads(m.group(2))))
    return out


def test_json_line_shape_and_priorities() -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream)
    log = structlog.get_logger("t")
    log.debug("a_debug", n=1)
    log.info("pass_finished", pushed=3, path=Path("/x/y"))
    log.warning("a_warning")
    log.error("an_error")
    log.critical("a_critical")
    got = lines(stream)
    assert [p for p, _ in got] == [7, 6, 4, 3, 3]
    assert [e["level"] for _, e in got] == ["debug", "info", "warning", "error", "critical"]
    _, event = got[1]
    assert list(event)[:3] == ["event", "level", "timestamp"]
    assert event["event"] == "pass_finished" and event["pushed"] == 3 and event["path"] == "/x/y"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["timestamp"])


def test_level_filtering() -> None:
    stream = io.StringIO()
    configure_logging("json", "warning", stream)
    log = structlog.get_logger("t")
    log.debug("no")
    log.info("no")
    log.warning("yes")
    log.error("yes")
    assert [e["event"] for _, e in lines(stream)] == ["yes", "yes"]


@pytest.mark.parametrize(("level", "debug"), [("debug", True), ("info", False), ("error", False)])
def test_debug_enabled_follows_the_configured_level(level: str, debug: bool) -> None:
    configure_logging("json", level, io.StringIO())
    assert logs.debug_enabled() is debug


def test_invalid_level_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "loud", io.StringIO())


def test_library_from_contextvars() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    log = structlog.get_logger("t")
    log.info("before")
    bind_library("board")
    log.info("inside")
    structlog.contextvars.bind_contextvars(library="other")
    log.info("rebound")
    events = [e for _, e in lines(stream)]
    assert "library" not in events[0]
    assert events[1]["library"] == "board" and events[2]["library"] == "other"


def test_exception_is_a_string_field() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    try:
        raise RuntimeError("GET https://h/f?X-Amz-Signature=deadbeef0123 failed")
    except RuntimeError:
        structlog.get_logger("t").exception("download_failed", path="a.txt")
    ((prio, event),) = lines(stream)
    assert prio == 3 and event["level"] == "error"
    assert isinstance(event["exception"], str)
    assert "RuntimeError" in event["exception"] and "Traceback" in event["exception"]
    assert "deadbeef0123" not in event["exception"]


def test_logger_made_before_configure_follows_config() -> None:
    stream = io.StringIO()
    early_log.info("not_captured_yet_maybe")  # default config: must not break later configuration
    configure_logging("json", "info", stream)
    early_log.info("early_logger_event")
    configure_logging("json", "error", stream)  # reconfiguration is honoured too
    early_log.info("filtered_now")
    assert [e["event"] for _, e in lines(stream)] == ["early_logger_event"]


@pytest.mark.secrets_expected  # pytest's own log capture keeps the raw record fed to the redacting handler
def test_stdlib_logging_routed_at_warning_and_above() -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream)
    configure_logging("json", "debug", stream)  # idempotent: one handler, no duplicate lines
    aiohttp_log = logging.getLogger("aiohttp.client")
    aiohttp_log.info("ignored")
    aiohttp_log.warning("Unclosed session %s", "apikey sync:abcdef123456")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    got = lines(stream)
    assert [p for p, _ in got] == [4, 3]
    warn = got[0][1]
    assert warn["logger"] == "aiohttp.client"
    assert warn["message"] == "Unclosed session apikey [redacted]"
    assert "ValueError: bad" in got[1][1]["exception"]


def test_auto_format_picks_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(None, "info", stream)
    structlog.get_logger("t").info("auto")
    assert stream.getvalue().startswith("<6>{")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_mode_does_not_crash() -> None:
    stream = FakeTTY()
    configure_logging(None, "debug", stream)
    bind_library("board")
    log = structlog.get_logger("t")
    log.info("file_downloaded", path="a/b.txt", bytes=12, headers={"Authorization": "Bearer abcdefgh"})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("boom")
    logging.getLogger("aiohttp").warning("stdlib here")
    text = stream.getvalue()
    assert "file_downloaded" in text and "board" in text and "ZeroDivisionError" in text
    assert "stdlib here" in text
    assert "abcdefgh" not in text and not text.startswith("<")


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("Authorization: apikey sync:S3cr3tKey99", "S3cr3tKey99", "Authorization: [redacted]"),
        ("header apikey sync:S3cr3tKey99 sent", "S3cr3tKey99", "apikey [redacted] sent"),
        ("using apikey S3cr3tKey99", "S3cr3tKey99", "apikey [redacted]"),
        ("Bearer st:api:api:0123456789abcdef", "0123456789abcdef", "Bearer [redacted]"),
        ("auth: Basic c2VjcmV0a2V5Og==", "c2VjcmV0a2V5Og==", "Basic [redacted]"),
        ("sent JwToken abc.def.ghi-long", "abc.def.ghi-long", "JwToken [redacted]"),
        (
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl in header",
            "eyJzdWIiOiIxMjMifQ",
            "token [redacted] in header",
        ),
        (
            "https://s3.example/b/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=abc123",
            "abc123",
            "X-Amz-Algorithm=AWS4&X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]",
        ),
        ("https://h/blob?AWSAccessKeyId=AKIAXX&Expires=9&Signature=zz%2Fyy", "zz%2Fyy", "Expires=9"),
        ("https://h/blob?AWSAccessKeyId=AKIAXXYY&Expires=9", "AKIAXXYY", "AWSAccessKeyId=[redacted]"),
        ("GET /sessionToken?apiKey=KEY123&timestamp=1&signature=md5md5", "md5md5", "timestamp=1"),
        ("GET /sessionToken?apiKey=KEY123&timestamp=1", "KEY123", "apiKey=[redacted]"),
        ("url ?x-amz-credential=cred/2024/us", "cred/2024", "x-amz-credential=[redacted]"),
        ("?sessionToken=st:api:1 done", "st:api:1", "sessionToken=[redacted] done"),
        ("?api_key=k-123 done", "k-123", "api_key=[redacted] done"),
        ('body {"sessionToken": "st:api:api:zzz", "ok": 1}', "st:api:api:zzz", '"ok": 1'),
        ("{'Authorization': 'apikey u:k'}", "u:k", "{'Authorization': '[redacted]'}"),
    ],
)
def test_redact_text_patterns(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert kept in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "file_downloaded path=reports/basic.txt",
        "Basic auth failed",  # too short to be a credential
        "version token changed",
        "https://tenant.coredata.is/api/v2/files/?limit=100&offset=0",
        "eyJ alone",
    ],
)
def test_redact_text_leaves_ordinary_text(text: str) -> None:
    assert redact_text(text) == text


def test_registered_secrets_are_redacted_everywhere() -> None:
    register_secret("abc")  # too short: ignored
    register_secret("p@ss w/rd+secret")
    out = redact(
        {
            "msg": "key p@ss w/rd+secret in text and abc",
            "url": "https://h/?k=p%40ss%20w%2Frd%2Bsecret",  # URL-encoded form too
            "nested": [{"deep": ("x", "p@ss w/rd+secret")}],
        }
    )
    assert out == {
        "msg": "key [redacted] in text and abc",
        "url": "https://h/?k=[redacted]",
        "nested": [{"deep": ["x", "[redacted]"]}],
    }


def test_sensitive_keys_are_redacted_whatever_their_value() -> None:
    out = redact(
        {
            "Authorization": "whatever",
            "headers": {"authorization": "x", "X-Api-Key": "y", "Cookie": "c", "Accept": "json"},
            "api_key": "abc",
            "apiKey": 12345,
            "session_token": "t",
            "client_secret": "s",
            "password": "p",
            "signature": "sig",
            "private_key": "pk",
            "api_key_env": "COREDATA_KEY",  # names where the secret lives: kept
            "api_key_file": "/run/credentials/x",
            "token": None,  # nothing to hide
            "has_token": True,
            "path": "a/b.txt",
        }
    )
    assert isinstance(out, dict)
    for key in ("Authorization", "api_key", "apiKey", "session_token", "client_secret", "password"):
        assert out[key] == REDACTED, key
    assert out["signature"] == out["private_key"] == REDACTED
    assert out["headers"] == {
        "authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "Accept": "json",
    }
    assert out["api_key_env"] == "COREDATA_KEY" and out["api_key_file"] == "/run/credentials/x"
    assert out["token"] is None and out["has_token"] is True and out["path"] == "a/b.txt"


def test_redact_stringifies_unknown_objects() -> None:
    class URL:
        def __str__(self) -> str:
            return "https://h/x?Signature=abcdef"

    assert redact([URL(), 1, 2.5, None, b"Bearer abcdefgh"]) == [
        "https://h/x?Signature=[redacted]",
        1,
        2.5,
        None,
        "Bearer [redacted]",
    ]
    assert redact(Secret("zzzzzzzz")) == "Secret('***')"


def test_redaction_end_to_end_in_json() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    register_secret("tenant-key-0001")
    structlog.get_logger("t").info(
        "request_sent",
        url="https://h/f?X-Amz-Signature=feedface&a=1",
        headers={"Authorization": "apikey sync:tenant-key-0001"},
        note="retry with tenant-key-0001",
    )
    raw = stream.getvalue()
    assert "tenant-key-0001" not in raw and "feedface" not in raw
    ((_, event),) = lines(stream)
    assert event["headers"] == {"Authorization": REDACTED}
    assert event["note"] == "retry with [redacted]"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_name_that_is_not_utf8_is_logged_escaped(fmt: Any) -> None:
    """A path holding bytes that are not UTF-8 (surrogate escapes) must not break a strict UTF-8 stream
    (journald's, a terminal's): it is written escaped, and the JSON line still parses."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    configure_logging(fmt, "info", stream)
    structlog.get_logger("t").warning("odd_name", path="old\udc81\udcfe.txt", nested=["x\udc81"])
    text = raw.getvalue().decode("utf-8")
    assert "\\udc81\\udcfe" in text
    if fmt == "json":
        line = json.loads(text[text.index(">") + 1 :])
        assert line["path"].encode("utf-8", "surrogateescape") == b"old\x81\xfe.txt"  # nothing lost


_WORDS = (
    "Authorization",
    "token",
    "SECRET",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "signature",
    "credential",
    "Bearer",
    "basic",
    "JwToken",
    "eyJhbGciOi",
    "AWSAccessKeyId",
    "X-Amz-Signature",
    "access_token",
    "folder",
    "file 01.txt",
    "café",
    "ſecret",  # long s: IGNORECASE takes it for "s"
    "ſignature",
    "api_\u212aey",  # Kelvin sign: IGNORECASE takes it for "k"
    "SIGNATURE",
    "a.b",
    "-",
    "_",
)
_GLUE = (" ", "", "=", ": ", '"', "'", "&", "?", ".", "/", "\n", "{", "}", ",")


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_GLUE), st.text("ab1-_ .", max_size=8)), max_size=6))
def test_the_quick_screen_never_skips_a_credential(parts: list[tuple[str, str, str]]) -> None:
    """``redact_text`` leaves text alone when none of the patterns' words is in it: whatever the text,
    it must scrub exactly as running every pattern would."""
    text = "".join(word + glue + tail for word, glue, tail in parts)
    full = text
    for regex, replacement in _TEXT_PATTERNS:
        full = regex.sub(replacement, full)
    assert redact_text(text) == full


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("url?ſignature=abc&b=1", "url?ſignature=[redacted]&b=1"),  # long s: "s" to IGNORECASE
        ('{"ſecret": "hunter22"}', '{"ſecret": "[redacted]"}'),
        ('{"api_\u212aey": "hunter22"}', '{"api_\u212aey": "[redacted]"}'),  # Kelvin sign: "k"
        ("Authorization: Bearer abcdefgh123", "Authorization: [redacted]"),
    ],
)
def test_the_quick_screen_matches_letters_as_the_patterns_do(text: str, scrubbed: str) -> None:
    assert redact_text(text) == scrubbed
