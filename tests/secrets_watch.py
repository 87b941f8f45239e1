"""Suite-wide secrets watch (issue 7 §5): no secret in any log line of any test run.

A pytest plugin (loaded by ``tests/conftest.py``) plus the registry and scanner it uses.

What counts as a secret
    * Registered values: every credential a test creates. In-process sandboxes register their
      ``remote`` table when the ``RunningSandbox`` is built (``RunningSandbox.__init__`` is wrapped for
      the session, which catches every ``start_sandbox`` whatever module imported it); sandbox
      processes register the ``remote`` of their start-up JSON line (``start_sandbox_process`` does it
      explicitly, and any ``libmirror sandbox`` / ``python -m daemon.sandbox`` stdout read by a test is
      parsed the same way). Only values under keys naming a credential (``key``, ``secret``,
      ``token``, ``password``) of at least ``MIN_LENGTH`` characters are kept, plus their URL-encoded form.
    * Secret-shaped text whatever its origin: JWTs, presigned-URL signatures (``Signature=``,
      ``X-Amz-Signature=``, ``X-Amz-Security-Token=``), ``Authorization:`` headers and ``Bearer`` /
      ``Basic`` / ``JwToken`` / ``apikey`` credentials, and PEM private keys. What the daemon's
      redaction writes instead (``[redacted]``, see ``daemon/logs.py``; ``Secret('***')`` from
      ``daemon/secrets.py``) is not a credential, so redacted output passes.

What is watched
    * pytest's captured stdout, stderr and log of every phase (the ``Captured ... <phase>`` sections
      of the phase's report; nothing is captured under ``-s``).
    * Everything a test reads from a ``libmirror`` subprocess: ``subprocess.Popen`` is replaced for
      the session by a subclass that, for ``libmirror`` / ``python -m daemon...`` commands, tees the
      text read from the stdout/stderr pipes (``readline``, iteration, ``read``) and what
      ``communicate()`` returns (so ``subprocess.run`` too). For ``asyncio.create_subprocess_exec``,
      every chunk the event loop receives from such a process's pipes is recorded, read or not.
      Output a test sends to ``DEVNULL`` or never reads from a sync pipe is not seen; the helpers in
      ``tests/e2e/conftest.py`` and ``tests/service/daemon_proc.py`` drain their stderr for that reason.

How a leak fails the test
    A ``pytest_runtest_makereport`` wrapper scans, for each phase, the phase's captured sections and the
    subprocess output recorded for the test (output of a process belongs to the test that started
    it). Findings from setup are reported on the call phase. A passing report is turned into a
    failure whose ``longrepr`` names each secret's kind, where it was seen and a short excerpt with
    every secret masked; an already failing one gets the same text as an extra section. Captured
    sections are rewritten masked too, so pytest never prints the secret when it shows them. This
    was preferred to an autouse fixture's teardown assertion: fixtures finalise in an order we do
    not control (a sandbox or daemon fixture may still write after ours), an assertion there can
    only mark the teardown, and the fixture cannot see pytest's own captured sections of the call
    phase. Output arriving in teardown (a fixture stopping a daemon) can only fail the teardown
    phase, which pytest shows as an error of that test. Output of a process arriving after its
    test finished is scanned at the end of the session, reported with the test's name and makes
    the run fail.

    ``@pytest.mark.secrets_expected`` exempts a test that must show a secret in its output; prefer
    changing the test so it doesn't (``tests/conftest.py`` lists the ones marked from there). With
    ``-v`` the run ends with a line saying how much output was scanned.
"""

from __future__ import annotations

import asyncio
import asyncio.subprocess
import codecs
import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

import pytest

SECRET_KEY = re.compile(r"key|secret|token|password", re.I)
MIN_LENGTH = 8
MARKER = "secrets_expected"

# What the daemon writes in place of a credential (daemon/logs.py REDACTED, daemon/secrets.py repr).
PLACEHOLDERS = ("[redacted]", "%5bredacted%5d", "<redacted>", "redacted", "***", "secret('***')")

# ---------------------------------------------------------------------------------------------------
# registry

_lock = threading.RLock()
_registry: dict[str, str] = {}  # secret value -> its kind, e.g. "api_key of a coredata sandbox"


def register(value: object, kind: str) -> bool:
    """Watch for ``value`` (and its URL-encoded form) from now on; False when too short to watch."""
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return False
    with _lock:
        _registry.setdefault(value, kind)
        encoded = quote(value, safe="")
        if encoded != value:
            _registry.setdefault(encoded, f"{kind} (URL-encoded)")
    return True


def register_remote(remote: Mapping[str, Any], origin: str) -> int:
    """Register the credential values of a ``[library.remote]`` table; how many were kept."""
    return sum(register(value, f"{key} of {origin}") for key, value in remote.items() if SECRET_KEY.search(str(key)))


def registered() -> dict[str, str]:
    """A copy of the registry (value -> kind); for tests of the watch itself."""
    with _lock:
        return dict(_registry)


def forget(value: str) -> None:
    """Stop watching ``value`` (self-tests only)."""
    with _lock:
        _registry.pop(value, None)
        _registry.pop(quote(value, safe=""), None)


# ---------------------------------------------------------------------------------------------------
# scanner

_CRED_CHARS = r"[A-Za-z0-9._~+/=:@%-]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_SIGNATURE = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<name>x-amz-signature|x-amz-security-token|signature)=(?P<cred>[^&\s\"'#<>]+)", re.I
)
_AUTHORIZATION = re.compile(
    r"\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:(?:apikey|bearer|basic|jwtoken|token|digest)\s+)?"
    r"(?P<cred>[^\s\"',;}\]]+)",
    re.I,
)
_SCHEME = re.compile(rf"\b(?P<name>bearer|basic|jwtoken|apikey)\s+(?P<cred>{_CRED_CHARS}+)", re.I)
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")


_DOC_PLACEHOLDER = re.compile(r"[A-Z][A-Z_:.-]*")  # "USER:KEY", "API_KEY" in hints and help texts


def _is_placeholder(cred: str) -> bool:
    low = cred.lower().lstrip("[<('\"")
    return (
        cred.lower().startswith(PLACEHOLDERS)
        or low.startswith("redacted")
        or set(cred) <= {"*", "x", "X"}
        or _DOC_PLACEHOLDER.fullmatch(cred.rstrip(".,:;)")) is not None
    )


def _looks_like_credential(cred: str) -> bool:
    """High-entropy enough to be a credential: prose ("basic authentication") is not flagged."""
    cred = cred.rstrip(".,:;)")
    if len(cred) < MIN_LENGTH or _is_placeholder(cred):
        return False
    has_digit = any(c.isdigit() for c in cred)
    has_symbol = any(not c.isalnum() for c in cred)
    mixed_case = any(c.isupper() for c in cred) and any(c.islower() for c in cred)
    return has_digit or has_symbol or (mixed_case and len(cred) >= 16)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


def _spans(text: str) -> list[Span]:
    """Every secret in ``text``, as the character range to mask and its kind."""
    found: list[Span] = []
    with _lock:
        secrets = sorted(_registry.items(), key=lambda item: len(item[0]), reverse=True)
    for value, kind in secrets:
        at = text.find(value)
        while at >= 0:
            found.append(Span(at, at + len(value), f"registered secret: {kind}"))
            at = text.find(value, at + len(value))
    for m in _JWT.finditer(text):
        found.append(Span(m.start(), m.end(), "JWT"))
    for m in _SIGNATURE.finditer(text):
        cred = m.group("cred")
        if len(cred) >= MIN_LENGTH and not _is_placeholder(cred):
            found.append(Span(m.start("cred"), m.end("cred"), f"presigned URL {m.group('name')}= value"))
    for m in _AUTHORIZATION.finditer(text):
        if _looks_like_credential(m.group("cred")):
            found.append(Span(m.start("cred"), m.end("cred"), "Authorization header credential"))
    for m in _SCHEME.finditer(text):
        if _looks_like_credential(m.group("cred")):
            found.append(Span(m.start("cred"), m.end("cred"), f"{m.group('name')} credential"))
    for m in _PEM.finditer(text):
        end = text.find("-----END", m.end())
        found.append(Span(m.start(), len(text) if end < 0 else end, "PEM private key"))
    return found


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and span.start < out[-1].end:
            last = out[-1]
            out[-1] = Span(last.start, max(last.end, span.end), last.kind)
        else:
            out.append(span)
    return out


def _tag(kind: str) -> str:
    return f"«{kind.removeprefix('registered secret: ')}»"


def _mask(text: str, spans: list[Span]) -> str:
    pieces: list[str] = []
    at = 0
    for span in _merged(spans):
        pieces += [text[at : span.start], _tag(span.kind)]
        at = span.end
    pieces.append(text[at:])
    return "".join(pieces)


def mask(text: str) -> str:
    """``text`` with every secret replaced by ``«its kind»``."""
    return _mask(text, _spans(text))


@dataclass(frozen=True)
class Finding:
    kind: str
    where: str
    excerpt: str  # masked
    count: int

    def describe(self) -> str:
        times = f", {self.count} times" if self.count > 1 else ""
        return f"{self.kind} in {self.where}{times}: {self.excerpt}"


def _excerpt(text: str, spans: list[Span], target: Span, width: int = 50) -> str:
    """The masked neighbourhood of ``target`` on its line (masking first, so no half secret shows)."""
    line_start = text.rfind("\n", 0, target.start) + 1
    line_end = text.find("\n", target.end)
    line_end = len(text) if line_end < 0 else line_end
    near = [s for s in _merged(spans) if s.end > line_start and s.start < line_end]
    pieces: list[str] = []
    at, where = line_start, 0
    for span in near:
        pieces.append(text[at : max(at, span.start)])
        if span.start <= target.start < span.end:
            where = sum(len(p) for p in pieces)
        pieces.append(_tag(target.kind if span.start <= target.start < span.end else span.kind))
        at = max(at, span.end)
    pieces.append(text[at:line_end] if at < line_end else "")
    line = "".join(pieces)
    start, end = max(0, where - width), min(len(line), where + len(_tag(target.kind)) + width)
    return ("…" if start else "") + line[start:end].strip() + ("…" if end < len(line) else "")


def scan(text: str, where: str = "output") -> list[Finding]:
    """Every kind of secret in ``text``: one finding per kind, with its first occurrence masked."""
    if not text:
        return []
    spans = _spans(text)
    by_kind: dict[str, list[Span]] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    return [
        Finding(kind, mask(where), _excerpt(text, spans, min(group, key=lambda s: s.start)), len(group))
        for kind, group in by_kind.items()
    ]


# ---------------------------------------------------------------------------------------------------
# what libmirror subprocesses print

_current: str | None = None  # node id of the test running now


@dataclass
class _Chunk:
    owner: str | None
    where: str
    text: str


_pending: list[_Chunk] = []
_streams: list[_Stream] = []
_threads: list[tuple[str | None, threading.Thread]] = []


class _Stream:
    """One pipe of one process: decoded, split into lines, queued for the scan of its owner test."""

    def __init__(self, where: str, *, startup_line: bool = False) -> None:
        self.owner = _current
        self.where = where
        self.startup_line = startup_line  # a sandbox's stdout: its JSON line carries the credentials
        self._buf = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")  # chunks may split a character
        with _lock:
            _streams.append(self)

    def write(self, data: str | bytes | None) -> None:
        if not data:
            return
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        with _lock:
            self._buf += text
            done, newline, rest = self._buf.rpartition("\n")
            if newline:
                self._buf = rest
                self._queue(done + "\n")

    def flush(self) -> None:
        with _lock:
            if self._buf and not (self.startup_line and self._buf.startswith("{")):
                self._queue(self._buf)
                self._buf = ""

    def _queue(self, text: str) -> None:
        if self.startup_line:
            kept = []
            for line in text.splitlines(keepends=True):
                info = _startup_info(line)
                if info is None:
                    kept.append(line)
                else:
                    register_remote(info["remote"], f"a {info.get('provider', '?')} sandbox process")
            text = "".join(kept)
        if text:
            _pending.append(_Chunk(self.owner, self.where, text))


def _startup_info(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        info = json.loads(line)
    except ValueError:
        return None
    if isinstance(info, dict) and isinstance(info.get("remote"), dict):
        return info
    return None


def feed(text: str | bytes, where: str) -> None:
    """Queue output for the scan of the running test (for helpers that read pipes themselves)."""
    if text:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        with _lock:
            _pending.append(_Chunk(_current, where, decoded))


def drain_in_background(pipe: IO[Any] | None, where: str = "libmirror stderr") -> threading.Thread | None:
    """Read ``pipe`` to its end in a thread (so the process never blocks on a full pipe), feeding it to
    the watch; the running test's last scan waits for the thread."""
    if pipe is None:
        return None
    direct = not isinstance(pipe, _Tee)  # a tee'd pipe records what is read by itself
    stream = _Stream(where) if direct else None

    def run() -> None:
        try:
            for line in pipe:
                if stream is not None:
                    stream.write(line)
        except (OSError, ValueError):
            pass  # closed under us
        if stream is not None:
            stream.flush()

    thread = threading.Thread(target=run, name=f"drain {where}", daemon=True)
    with _lock:
        _threads.append((_current, thread))
    thread.start()
    return thread


class _Tee:
    """A pipe's file object that records what is read from it; everything else is the real file."""

    def __init__(self, stream: IO[Any], record: _Stream, popen: _WatchedPopen) -> None:
        self._stream = stream
        self._record = record
        self._popen = popen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _seen(self, data: Any) -> Any:
        if not self._popen._in_communicate:
            self._record.write(data)
        return data

    def read(self, *args: Any) -> Any:
        return self._seen(self._stream.read(*args))

    def read1(self, *args: Any) -> Any:
        return self._seen(self._stream.read1(*args))  # type: ignore[attr-defined]

    def readline(self, *args: Any) -> Any:
        return self._seen(self._stream.readline(*args))

    def readlines(self, *args: Any) -> Any:
        lines = self._stream.readlines(*args)
        for line in lines:
            self._seen(line)
        return lines

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self) -> _Tee:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


_SUBCOMMANDS = {"sync", "run", "check-config", "status", "demo", "sandbox"}


def _describe(args: Any) -> tuple[str, bool] | None:
    """``(label, is_sandbox)`` for a ``libmirror`` command line, None for any other program."""
    single = isinstance(args, str | bytes | os.PathLike)
    argv = os.fsdecode(args).split() if single else [os.fsdecode(a) for a in args]
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program == "libmirror":
        sub = next((a for a in argv[1:] if a in _SUBCOMMANDS), "")
        return f"libmirror {sub}".strip(), sub == "sandbox"
    if program.startswith("python") and "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        if module == "daemon" or module.startswith("daemon."):
            return f"python -m {module}", module.startswith("daemon.sandbox")
    return None


class _WatchedPopen(subprocess.Popen[Any]):
    """``subprocess.Popen`` that records what a ``libmirror`` process prints (see the module doc)."""

    _libmirror: tuple[str, bool] | None = None
    _in_communicate = False

    def __init__(self, args: Any, *more: Any, **kwargs: Any) -> None:
        self._libmirror = _describe(args)
        self._streams_by_fd: dict[int, _Stream] = {}
        super().__init__(args, *more, **kwargs)
        if self._libmirror is None:
            return
        label, is_sandbox = self._libmirror
        for fd, name in ((1, "stdout"), (2, "stderr")):
            self._streams_by_fd[fd] = _Stream(f"{label} {name}", startup_line=is_sandbox and fd == 1)
        for name, fd in (("stdout", 1), ("stderr", 2)):
            pipe = getattr(self, name)
            # asyncio's pipes are raw FileIO read with os.read: their data is recorded by the protocol
            if isinstance(pipe, io.TextIOWrapper | io.BufferedReader):
                setattr(self, name, _Tee(pipe, self._streams_by_fd[fd], self))

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        self._in_communicate = True
        try:
            out, err = super().communicate(input, timeout)
        finally:
            self._in_communicate = False
        if self._libmirror is not None:
            self._streams_by_fd[1].write(out)
            self._streams_by_fd[2].write(err)
        return out, err


def _pipe_data_received(original: Callable[..., None]) -> Callable[..., None]:
    def pipe_data_received(self: asyncio.subprocess.SubprocessStreamProtocol, fd: int, data: bytes) -> None:
        transport = getattr(self, "_transport", None)
        proc = transport.get_extra_info("subprocess") if transport is not None else None
        stream = getattr(proc, "_streams_by_fd", {}).get(fd)
        if stream is not None:
            stream.write(data)
        original(self, fd, data)

    return pipe_data_received


def drain(owner: str | None, *, final: bool = False) -> list[tuple[str, str]]:
    """``(where, text)`` of the subprocess output recorded for ``owner`` (and for no test) so far."""
    with _lock:
        threads = [t for o, t in _threads if o == owner] if final else []
    for thread in threads:
        thread.join(timeout=5)
    with _lock:
        if final:
            _threads[:] = [(o, t) for o, t in _threads if o != owner and t.is_alive()]
        for stream in list(_streams):
            if stream.owner in (owner, None):
                stream.flush()
                if final and stream.owner == owner:
                    _streams.remove(stream)
        mine = [c for c in _pending if c.owner in (owner, None)]
        _pending[:] = [c for c in _pending if c.owner not in (owner, None)]
    joined: dict[str, list[str]] = {}
    for chunk in mine:
        joined.setdefault(chunk.where, []).append(chunk.text)
    return [(where, "".join(parts)) for where, parts in joined.items()]


# ---------------------------------------------------------------------------------------------------
# pytest plugin

_undo: list[Callable[[], None]] = []
_late: list[str] = []  # findings in output that arrived after its test ended
_scanned = {"captured": 0, "subprocess": 0}  # characters scanned, for the -v summary line
_FINDINGS = pytest.StashKey[list[Finding]]()


def _install() -> None:
    from daemon.sandbox.runner import RunningSandbox

    original_init = RunningSandbox.__init__

    def init(self: RunningSandbox, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        register_remote(self.remote, f"a {self.provider} sandbox")

    original_popen = subprocess.Popen
    protocol = asyncio.subprocess.SubprocessStreamProtocol
    original_received = protocol.pipe_data_received
    RunningSandbox.__init__ = init  # type: ignore[method-assign]
    subprocess.Popen = _WatchedPopen  # type: ignore[misc]
    protocol.pipe_data_received = _pipe_data_received(original_received)  # type: ignore[method-assign]

    def undo() -> None:
        RunningSandbox.__init__ = original_init  # type: ignore[method-assign]
        subprocess.Popen = original_popen  # type: ignore[misc]
        protocol.pipe_data_received = original_received  # type: ignore[method-assign]

    _undo.append(undo)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: this test must show a secret in its output; the secrets watch does not fail it",
    )
    if not _undo:
        _install()


def pytest_unconfigure(config: pytest.Config) -> None:
    while _undo:
        _undo.pop()()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _current
    _current = nodeid


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _current
    _current = None


def _scan_report(item: pytest.Item, report: pytest.TestReport) -> list[Finding]:
    findings: list[Finding] = []
    for i, (title, content) in enumerate(report.sections):
        if not title.startswith("Captured "):
            continue
        if title.endswith(f" {report.when}"):  # earlier phases' sections were scanned with their phase
            _scanned["captured"] += len(content)
            findings += scan(content, title)
        masked = mask(content)  # every phase's: a failing call report shows the setup's output too
        if masked != content:
            report.sections[i] = (title, masked)
    for where, text in drain(item.nodeid, final=report.when == "teardown"):
        _scanned["subprocess"] += len(text)
        findings += scan(text, where)
    return findings


def _message(findings: list[Finding]) -> str:
    lines = [f"secrets watch: a secret in this test's output, {len(findings)} finding(s) (issue 7 §5)"]
    lines += [f"  - {f.describe()}" for f in findings]
    lines.append(f"(masked above; if showing it is the point of the test, mark it @pytest.mark.{MARKER})")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    findings = item.stash.get(_FINDINGS, []) + _scan_report(item, report)
    item.stash[_FINDINGS] = []
    if not findings or item.get_closest_marker(MARKER) is not None:
        return report
    if report.when == "setup" and report.passed:
        item.stash[_FINDINGS] = findings  # reported with the call phase, which then runs
        return report
    message = _message(findings)
    if report.failed:
        addsection = getattr(report.longrepr, "addsection", None)  # a traceback's repr
        if callable(addsection):
            addsection("secrets watch", message)
        else:
            report.sections.append(("secrets watch", message))
    else:
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        report.outcome = "failed"
        report.longrepr = message
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    with _lock:
        owners = {c.owner for c in _pending} | {s.owner for s in _streams}
    for owner in owners:
        for where, text in drain(owner, final=True):
            for finding in scan(text, where):
                _late.append(f"{owner or 'no test'}: {finding.describe()}")
    if _late:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.get_verbosity() > 0:
        terminalreporter.line(
            f"secrets watch: {len(_registry)} registered secret forms; scanned {_scanned['captured']} characters"
            f" of captured output and {_scanned['subprocess']} of libmirror subprocess output"
        )
    if _late:
        terminalreporter.section("secrets watch: secrets in output that arrived after its test ended")
        for line in _late:
            terminalreporter.line(line)
