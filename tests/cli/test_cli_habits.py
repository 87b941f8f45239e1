"""The habits operators expect of a command: --version, argparse errors instead of tracebacks, exit codes in
every --help, `sync` without --once, and the example configuration printed by the installed package."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from daemon.exit_codes import EPILOGS
from tests.conftest import SandboxStarter
from tests.e2e.conftest import LIBMIRROR, write_config

REPO = Path(__file__).resolve().parents[2]
COMMANDS = (
    "sync",
    "run",
    "release-gate",
    "pause",
    "resume",
    "check-config",
    "status",
    "example-config",
    "demo",
    "sandbox",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIBMIRROR, *args], capture_output=True, text=True, timeout=120)


def test_version_comes_from_the_package_metadata() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"libmirror {version('libmirror')}"
    assert re.fullmatch(r"libmirror \d+\.\d+\.\d+\S*", result.stdout.strip())


def test_a_bad_log_level_is_an_argparse_error_not_a_traceback(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "none.toml"), "--log-level", "foo", "status")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "argument --log-level: invalid choice: 'foo'" in result.stderr
    assert "'debug', 'info', 'warning', 'error'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_lists_its_exit_codes_in_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "exit codes" in result.stdout
    assert EPILOGS[command].splitlines()[1].strip() in result.stdout  # the first code, as written
    readme = (REPO / "README.md").read_text()
    assert f"`{command}`" in readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0], command


def test_top_level_help_lists_the_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "exit codes" in result.stdout and "130  interrupted" in result.stdout


def test_sync_without_once_runs_one_pass(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    mirror = write_config(tmp_path, sandbox_procs("cd", 12)["remote"])
    for args in (["sync"], ["sync", "--once"]):
        result = subprocess.run(
            [LIBMIRROR, "--config", str(mirror.config), "--log-format", "json", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (args, result.stderr[-3000:])
        assert "needs --once" not in result.stderr
        assert '"event": "pass"' in result.stdout
    assert len(mirror.files()) == 12


def test_example_config_prints_the_shipped_example_and_it_validates(tmp_path: Path) -> None:
    result = run("example-config")
    assert result.returncode == 0, result.stderr
    shipped = (REPO / "daemon" / "config.example.toml").read_text(encoding="utf-8")
    assert result.stdout == shipped
    config = tmp_path / "config.toml"
    config.write_text(result.stdout)
    checked = subprocess.run(
        [LIBMIRROR, "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COREDATA_KEY": "k" * 20, "PATH": "/usr/bin:/bin"},
    )
    assert checked.returncode == 0, checked.stderr


def test_the_top_level_example_is_the_shipped_one_byte_for_byte() -> None:
    assert (REPO / "config.example.toml").read_bytes() == (REPO / "daemon" / "config.example.toml").read_bytes()
