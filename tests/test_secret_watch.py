"""Self-test of the suite-wide secrets watch (``tests/secrets_watch.py``, issue 7 §5)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.logs import redact_text
from daemon.sandbox.runner import start_sandbox
from tests import secrets_watch
from tests.e2e.conftest import start_sandbox_process

REPO = Path(__file__).resolve().parents[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JWT = ".".join(
    [_b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), _b64url(b'{"sub":"watch"}'), _b64url(b"sig" * 11)]
)
SECRET = "watch-selftest-Secret-0042"


@pytest.fixture
def registered_secret() -> Iterator[str]:
    assert secrets_watch.register(SECRET, "api_key of the self-test")
    yield SECRET
    secrets_watch.forget(SECRET)


# ---- the scanner ---------------------------------------------------------------------------------


def test_a_registered_secret_is_found_and_masked(registered_secret: str) -> None:
    text = f'<6>{{"event": "request", "url": "https://h/x?k={registered_secret}&page=2"}}\nnext line\n'
    [finding] = secrets_watch.scan(text, "libmirror sync stdout")
    assert finding.kind == "registered secret: api_key of the self-test"
    assert finding.where == "libmirror sync stdout"
    assert registered_secret not in finding.describe()
    assert "«api_key of the self-test»&page=2" in finding.excerpt
    assert secrets_watch.scan(text.replace(registered_secret, "[redacted]")) == []


def test_url_encoded_form_is_registered_and_short_or_public_values_are_not() -> None:
    remote = {"base_url": "http://127.0.0.1:1/a-long-url", "api_key": "k/y+with=chars-01", "token": "short"}
    assert secrets_watch.register_remote(remote, "a test table") == 1
    try:
        known = secrets_watch.registered()
        assert known["k/y+with=chars-01"] == "api_key of a test table"
        assert known["k%2Fy%2Bwith%3Dchars-01"] == "api_key of a test table (URL-encoded)"
        assert "short" not in known and remote["base_url"] not in known
    finally:
        secrets_watch.forget(remote["api_key"])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"token handed out: {JWT} (cached)", "JWT"),
        ("GET https://s3/b/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=0a1b2c3d4e5f6a7b8c9d", "x-amz-signature"),
        ("/files/9?Expires=1&Signature=Zm9vYmFyYmF6cXV4", "Signature"),
        ("headers={'Authorization': 'apikey sync:0123456789abcdef'}", "Authorization"),
        ("Authorization: Basic c3luYzpzM2NyM3Q=", "Authorization"),
        ("retrying with Bearer AbC123dEf456GhI789", "bearer"),
        ("sent JwToken abcdefgh.12345678", "jwtoken"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----", "PEM"),
    ],
)
def test_secret_shaped_text_is_found(text: str, kind: str) -> None:
    findings = secrets_watch.scan(text)
    assert findings and kind.lower() in findings[0].kind.lower(), findings
    assert all("«" in f.excerpt for f in findings)
    leaked = [f.excerpt for f in findings if any(part in f.excerpt for part in ("0123456789", "c3luYzpz", "AbC123"))]
    assert not leaked


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: [redacted]",
        "{'authorization': '[redacted]', 'accept': 'application/json'}",
        "https://s3/o?X-Amz-Signature=[redacted]&X-Amz-Date=20240101",
        "Bearer [redacted] Basic [redacted] JwToken [redacted]",
        "api_key=Secret('***')",
        "the server wants basic authentication; Authorization: required",
        "signature=short",
        "check api_key of this CoreData library (Authorization: apikey USER:KEY)",
    ],
)
def test_redacted_or_harmless_text_is_clean(text: str) -> None:
    assert secrets_watch.scan(text) == []


def test_what_the_daemon_redacts_passes_the_watch() -> None:
    leaky = (
        f"GET https://h/f?Signature=Zm9vYmFyYmF6cXV4&X-Amz-Signature=0a1b2c3d4e5f6a7b8c9d token={JWT}\n"
        "Authorization: apikey sync:0123456789abcdef\nBearer AbC123dEf456GhI789\n"
    )
    assert len(secrets_watch.scan(leaky)) >= 4
    assert secrets_watch.scan(redact_text(leaky)) == []


# ---- registration of the sandboxes' credentials ------------------------------------------------


@pytest.mark.anyio
async def test_in_process_sandbox_credentials_are_registered(tmp_path: Path, anyio_backend: str) -> None:
    running = await start_sandbox("coredata", tmp_path / "sb")
    try:
        assert secrets_watch.registered()[running.remote["api_key"]] == "api_key of a coredata sandbox"
        assert running.remote["base_url"] not in secrets_watch.registered()
    finally:
        await running.stop()


def test_sandbox_process_credentials_are_registered(tmp_path: Path) -> None:
    proc, info = start_sandbox_process(tmp_path / "sb", 1)
    try:
        assert info["remote"]["api_key"] in secrets_watch.registered()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- end to end: a session with leaking tests ----------------------------------------------------

LEAKY_TESTS = f'''
import asyncio
import subprocess

import pytest

from tests import secrets_watch

SECRET = "{SECRET}"
JWT = "{JWT}"


def test_prints_a_registered_secret():
    secrets_watch.register(SECRET, "api_key of an inner sandbox")
    print("config has api_key =", SECRET)


def test_libmirror_subprocess_prints_a_jwt(fake_libmirror):
    done = subprocess.run([fake_libmirror, "sync", "--once", JWT], capture_output=True, text=True)
    assert done.returncode == 0


def test_async_libmirror_subprocess_prints_a_jwt(fake_libmirror):
    async def go():
        proc = await asyncio.create_subprocess_exec(
            fake_libmirror, "run", JWT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await proc.wait()  # nothing read: the watch sees what the pipes received anyway

    asyncio.run(go())


def test_other_programs_are_not_watched():
    subprocess.run(["echo", JWT], capture_output=True, check=True)


def test_redacted_output_passes():
    print("Authorization: [redacted] url=https://h/f?Signature=[redacted]")


@pytest.mark.secrets_expected
def test_marked_may_show_it():
    print(JWT)


@pytest.fixture
def leaks_in_teardown():
    yield
    print("stopping with", SECRET)


def test_teardown_leak(leaks_in_teardown):
    secrets_watch.register(SECRET, "api_key of an inner sandbox")


@pytest.fixture
def leaks_in_setup():
    secrets_watch.register(SECRET, "api_key of an inner sandbox")
    print("starting with", SECRET)


def test_setup_leak_fails_the_call(leaks_in_setup):
    pass


def test_fails_anyway_and_leaks():
    secrets_watch.register(SECRET, "api_key of an inner sandbox")
    print("about to fail with", SECRET)
    assert 1 + 1 == 3
'''

FAKE_LIBMIRROR = """#!/bin/sh
# stands in for libmirror: prints its last argument as a log line
for last; do :; done
echo "<6>{\\"event\\": \\"pass\\", \\"detail\\": \\"$last\\"}"
echo "warning: $last" >&2
"""


def test_a_session_with_leaks_fails_exactly_the_leaking_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = pytester.mkdir("bin")
    fake = bin_dir / "libmirror"
    fake.write_text(FAKE_LIBMIRROR)
    fake.chmod(0o755)
    pytester.makeconftest(f"import pytest\n\n@pytest.fixture\ndef fake_libmirror():\n    return {str(fake)!r}\n")
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    result = pytester.runpytest_subprocess("-p", "tests.secrets_watch", "-p", "no:cacheprovider", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 5, result.stdout.str()[-3000:]
    assert outcomes.get("passed") == 4 and outcomes.get("errors") == 1, outcomes
    out = result.stdout.str()
    for name in (
        "test_prints_a_registered_secret",
        "test_libmirror_subprocess_prints_a_jwt",
        "test_async_libmirror_subprocess_prints_a_jwt",
        "test_setup_leak_fails_the_call",
        "test_fails_anyway_and_leaks",
    ):
        assert f"FAILED test_leaky.py::{name}" in out
    assert "ERROR test_leaky.py::test_teardown_leak" in out
    assert "registered secret: api_key of an inner sandbox in Captured stdout call" in out
    assert "«api_key of an inner sandbox»" in out
    assert "JWT in libmirror sync stdout" in out and "JWT in libmirror sync stderr" in out
    assert "JWT in libmirror run stdout" in out
    assert "in Captured stdout setup" in out  # reported on the call phase
    assert "assert (1 + 1) == 3" in out and "------ secrets watch ------" in out  # a section of its failure
    assert SECRET not in out and JWT not in out  # the report masks, captured sections included
    assert SECRET not in result.stderr.str() and JWT not in result.stderr.str()
