"""`libmirror sync --once` under bandwidth limits, against the sandbox process of every provider."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import Mirror, Sandbox, write_config
from tests.e2e.libraries import LIBRARIES
from tests.e2e.test_sync_once import remote_files


def with_daemon_limit(mirror: Mirror, value: str) -> Mirror:
    """The general (daemon-wide) ``bwlimit`` put in front of the one-library config."""
    mirror.config.write_text(f'bwlimit = "{value}"\n' + mirror.config.read_text())
    return mirror


def limit_lines(mirror: Mirror, result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """The ``bwlimit_changed`` lines of a run: (up, down) by library name, or ``daemon`` for the general limit."""
    events = mirror.events(result)
    return {e.get("library") or e["scope"]: (e["up"], e["down"]) for e in events if e["event"] == "bwlimit_changed"}


def test_a_limited_library_pushes_and_pulls_everything_and_says_its_limits(
    tmp_path: Path, sandbox: Sandbox[CoreDataAPI]
) -> None:
    mirror = with_daemon_limit(write_config(tmp_path, sandbox.remote, bwlimit="256k:512k"), "2M")
    first = mirror.sync()
    assert limit_lines(mirror, first) == {"daemon": ("2 MiB/s", "2 MiB/s"), "board": ("256 KiB/s", "512 KiB/s")}
    assert mirror.files() == remote_files(sandbox)

    (mirror.root / "scan.pdf").write_bytes(os.urandom(300 * 1024))  # a few chunks, each waiting its turn
    (mirror.root / sorted(mirror.files())[0]).write_bytes(b"edited under a limit\n")
    mirror.sync()
    assert mirror.files() == remote_files(sandbox)
    assert mirror.sync().returncode == 0


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_every_provider_pulls_byte_for_byte_under_a_limit(tmp_path: Path, name: str) -> None:
    library = LIBRARIES[name]
    with library.start(tmp_path) as sandbox:
        mirror = write_config(tmp_path, sandbox.remote, provider=library.provider, bwlimit="1M")
        result = mirror.sync()
        assert limit_lines(mirror, result) == {"board": ("1 MiB/s", "1 MiB/s")}
        assert library.local(mirror) == library.remote(sandbox)
