"""`libmirror sync` shows its progress on a terminal (files and bytes of the planned total, rate, ETA,
errors) and nothing but the log lines when stdout is not one or the logs are JSON."""

from __future__ import annotations

import os
import pty
import re
import subprocess

from tests.e2e.conftest import LIBMIRROR, Mirror

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FINAL = re.compile(r"\[board\] (\d+)/(\d+) files, ([\d.]+ \w+)/([\d.]+ \w+), [\d.]+ \w+/s, ETA \w+, (\d+) errors")


def _in_terminal(*args: str) -> tuple[int, str]:
    """Run ``libmirror ARGS`` with stdout and stderr on a pseudo-terminal; its exit code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([LIBMIRROR, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=300)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "\n")


def test_a_first_sync_on_a_terminal_ends_with_its_totals(mirror: Mirror) -> None:
    code, out = _in_terminal("--config", str(mirror.config), "sync")
    assert code == 0, out[-3000:]
    files = mirror.files()
    [final] = [m for m in FINAL.finditer(out)][-1:]
    done, total, bytes_done, bytes_total, errors = final.groups()
    assert int(done) == int(total) == len(files) > 0
    assert bytes_done == bytes_total
    assert errors == "0"
    assert "action" in out  # the usual log lines are still there, above the display


def test_piped_stdout_or_json_logs_show_no_progress(mirror: Mirror) -> None:
    piped = subprocess.run(
        [LIBMIRROR, "--config", str(mirror.config), "sync"], capture_output=True, text=True, timeout=300
    )
    assert piped.returncode == 0, piped.stderr[-3000:]
    assert not FINAL.search(piped.stdout + piped.stderr)
    assert all(line.startswith("<") for line in piped.stdout.splitlines())  # JSON lines only

    (mirror.root / "new.txt").write_text("new")
    code, out = _in_terminal("--config", str(mirror.config), "--log-format", "json", "sync")
    assert code == 0, out[-3000:]
    assert not FINAL.search(out)
    assert '"event": "action"' in out or '"event":"action"' in out
