"""deploy/libmirror.service passes `systemd-analyze verify` and scores 2.0 or lower on `security`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "libmirror.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd); .ci/run installs it"
)


def _unit_here(tmp_path: Path) -> Path:
    """The shipped unit, byte for byte (verify checks that ExecStart's binary exists: /usr/bin/env does, on
    any machine, whether or not libmirror is installed there yet)."""
    out = tmp_path / "libmirror.service"
    out.write_text(UNIT.read_text())
    return out


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for needed in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=libmirror",
        "StateDirectory=libmirror",
        "ConfigurationDirectory=libmirror",
        "LoadCredential=",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert needed in text, needed


@needs_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run([ANALYZE, "verify", str(_unit_here(tmp_path))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "libmirror.service" not in result.stderr, result.stderr


@needs_analyze
def test_systemd_analyze_security_score(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    assert float(match.group(1)) <= 2.0, result.stdout
