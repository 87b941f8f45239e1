"""The deploy guide's install commands, as written in deploy/README.md, into a fresh venv: the locked versions
with their hashes, then libmirror itself without resolving again; the installed `libmirror` starts.

Needs PyPI: marked ``network`` (``pytest -m "not network"`` leaves it out offline); ``make test`` runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "deploy" / "README.md"
PREFIX = "/opt/libmirror"


def install_commands() -> list[list[str]]:
    """The commands of the guide's Install block that build the venv, with ``sudo`` dropped."""
    section = GUIDE.read_text().split("## Install", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["sudo"]:
            words = words[1:]
        if words and (words[0] == "python3" or words[0].startswith(PREFIX)):
            commands.append(words)
    return commands


def test_the_guide_installs_from_the_locked_requirements() -> None:
    commands = [" ".join(c) for c in install_commands()]
    assert commands == [
        f"python3 -m venv {PREFIX}",
        f"{PREFIX}/bin/pip install --require-hashes -r deploy/requirements.txt",
        f"{PREFIX}/bin/pip install --no-deps .",
    ]


@pytest.mark.network
@pytest.mark.timeout(900)
def test_install_as_the_guide_says_into_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "opt-libmirror"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    for words in install_commands():
        # the guide's python3 is any 3.11+; here it is the interpreter the tests run on
        argv = [sys.executable if w == "python3" else w.replace(PREFIX, str(venv)) for w in words]
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=800, env=env)
        assert result.returncode == 0, (argv, result.stdout[-3000:], result.stderr[-3000:])
    libmirror = venv / "bin" / "libmirror"
    version = subprocess.run([str(libmirror), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"libmirror \d+\.\d+\.\d+\S*\n", version.stdout), version.stdout
    example = subprocess.run([str(libmirror), "example-config"], capture_output=True, text=True, timeout=120)
    assert example.returncode == 0, example.stderr
    assert example.stdout == (REPO / "config.example.toml").read_text()  # shipped in the wheel
    # exactly the locked versions: pip freeze of the venv is the requirements file's pins (plus libmirror)
    frozen = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze", "--all"], capture_output=True, text=True, timeout=120, env=env
    )
    pins = {
        line.split(" ")[0].lower()
        for line in (REPO / "deploy" / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    installed = {
        line.lower().replace("_", "-")
        for line in frozen.stdout.splitlines()
        if "==" in line and not line.lower().startswith(("libmirror", "pip==", "setuptools=="))
    }
    assert installed <= {p.replace("_", "-") for p in pins}, installed - pins
