"""deploy/libmirror-metrics.{service,timer}: the textfile-collector example verifies with systemd, and
its command, run as written (paths moved into a temporary folder), leaves a file Prometheus' parser reads."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.state.store import StateStore
from tests.cli.test_status import write_config
from tests.e2e.conftest import LIBMIRROR

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICE = DEPLOY / "libmirror-metrics.service"
TIMER = DEPLOY / "libmirror-metrics.timer"
COLLECTOR = "/var/lib/node_exporter/textfile_collector"
ANALYZE = shutil.which("systemd-analyze")


def _exec_start() -> list[str]:
    [line] = [line for line in SERVICE.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd)")
def test_the_units_verify(tmp_path: Path) -> None:
    assert ANALYZE is not None
    for unit in (SERVICE, TIMER):
        (tmp_path / unit.name).write_text(unit.read_text())
    result = subprocess.run(
        [ANALYZE, "verify", str(tmp_path / SERVICE.name), str(tmp_path / TIMER.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "libmirror-metrics" not in result.stderr, result.stderr


def test_the_command_writes_a_textfile_the_parser_reads(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def stored() -> None:
        store = await StateStore.open(tmp_path / "state")
        lib = await store.library_id("board")
        async with store.transaction(lib) as tx:
            await tx.set_status("last_pass", "2026-01-05T09:14:03+01:00")
        await store.close()

    anyio.run(stored)
    collector = tmp_path / "collector"
    collector.mkdir()
    shell, flag, script = _exec_start()
    assert (shell, flag) == ("/bin/sh", "-c") and "status --metrics" in script
    script = script.replace(COLLECTOR, str(collector)).replace("/etc/libmirror/config.toml", str(config))
    script = script.replace("/usr/bin/env libmirror", LIBMIRROR)
    env = {"PATH": "/usr/bin:/bin", "LIBMIRROR_TEST_KEY": "not-a-real-key-0123"}
    result = subprocess.run([shell, flag, script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in collector.iterdir()) == ["libmirror.prom"]  # the temporary file was renamed
    families = {f.name: f for f in text_string_to_metric_families((collector / "libmirror.prom").read_text())}
    [stamp] = families["libmirror_last_successful_pass_timestamp_seconds"].samples
    assert stamp.labels == {"library": "board"} and stamp.value == 1767600843.0
