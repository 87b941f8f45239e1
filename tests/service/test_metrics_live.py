"""Prometheus metrics of a real ``libmirror run``: ``GET /metrics`` on ``metrics_listen``, parsed with
prometheus_client's own parser, and ``status --metrics`` beside the running daemon."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import SandboxStarter
from tests.e2e.conftest import LIBMIRROR
from tests.service.daemon_proc import Daemon, library_block, wait_until, write_daemon_config

TIMEOUT = 60
SEEDED = 4

FAMILIES = {
    "libmirror_transferred_files",
    "libmirror_transferred_bytes",
    "libmirror_actions",
    "libmirror_pass_duration_seconds",
    "libmirror_last_successful_pass_timestamp_seconds",
    "libmirror_safety_gate_held",
    "libmirror_files_in_backoff",
    "libmirror_tracked_files",
    "libmirror_http_requests",
    "libmirror_rate_limit_waits",
}
TEXTFILE = {
    "libmirror_tracked_files",
    "libmirror_files_in_backoff",
    "libmirror_safety_gate_held",
    "libmirror_last_successful_pass_timestamp_seconds",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(text: str) -> dict[str, list[Sample]]:
    """Family name -> its samples, as Prometheus' own parser reads the exposition."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    """The value of the one sample called ``sample`` with exactly ``labels`` (0 when there is none)."""
    family = families.get(sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum"), [])
    found = [s.value for s in family if s.name == sample and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else 0.0


def scrape(port: int) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse(response.read().decode())


def injected_429s(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/_sandbox/faults", timeout=10) as response:
        return int(json.loads(response.read())["counts"].get("429", 0))


def test_a_running_daemon_serves_every_family_and_status_prints_the_stored_ones(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    info = sandbox_procs("cd", SEEDED, "--fault", "429=0.2", "--fault-retry-after", "0.05", "--fault-seed", "7")
    port = free_port()
    config = tmp_path / "config.toml"
    root = tmp_path / "board"
    write_daemon_config(
        config, tmp_path / "state", [library_block("board", root, info["remote"], settle=0.2, poll_interval=2)]
    )
    config.write_text(f'metrics_listen = "127.0.0.1:{port}"\n' + config.read_text())
    started = time.time()
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "metrics_listening", TIMEOUT)
        first = daemon.wait_for(lambda e: e.get("event") == "pass" and e.get("pulled") == SEEDED, TIMEOUT)
        # the gauges are set after the pass summary is logged: wait for them, not for a while
        families: dict[str, list[Sample]] = {}

        def synced_seen() -> bool:
            families.update(scrape(port))
            return value(families, "libmirror_tracked_files", library="board") == SEEDED

        wait_until(synced_seen, TIMEOUT, step=0.2)
        assert set(families) >= FAMILIES, sorted(FAMILIES - set(families))
        board = {"library": "board"}
        assert value(families, "libmirror_transferred_files_total", direction="down", **board) == SEEDED
        assert value(families, "libmirror_transferred_bytes_total", direction="down", **board) == first["bytes_down"]
        assert value(families, "libmirror_actions_total", kind="download", outcome="done", **board) == SEEDED
        assert value(families, "libmirror_pass_duration_seconds_count", **board) >= 1
        assert value(families, "libmirror_last_successful_pass_timestamp_seconds", **board) >= int(started)
        assert value(families, "libmirror_safety_gate_held", **board) == 0
        assert value(families, "libmirror_files_in_backoff", **board) == 0
        assert value(families, "libmirror_http_requests_total", provider="coredata", status_class="2xx") > SEEDED
        # every 429 the sandbox injected reached the client, and each one it retried was a rate-limit wait
        refused = injected_429s(info["base_url"])
        assert refused >= 1
        assert value(families, "libmirror_http_requests_total", provider="coredata", status_class="4xx") >= refused
        assert 1 <= value(families, "libmirror_rate_limit_waits_total", provider="coredata", reason="server") <= refused

        (root / "new.txt").write_bytes(b"twelve bytes")
        daemon.wait_for(lambda e: e.get("event") == "pass" and e.get("pushed") == 1, TIMEOUT)

        def pushed_seen() -> bool:
            families.update(scrape(port))
            return value(families, "libmirror_tracked_files", library="board") == SEEDED + 1

        wait_until(pushed_seen, TIMEOUT, step=0.2)
        assert value(families, "libmirror_transferred_files_total", direction="up", **board) == 1
        assert value(families, "libmirror_transferred_bytes_total", direction="up", **board) == len(b"twelve bytes")

        # status --metrics beside the daemon: read-only, the stored families only
        result = subprocess.run(
            [LIBMIRROR, "--config", str(config), "status", "--metrics"], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, result.stderr
        printed = parse(result.stdout)
        assert set(printed) == TEXTFILE
        assert value(printed, "libmirror_tracked_files", **board) == SEEDED + 1
        assert value(printed, "libmirror_files_in_backoff", **board) == 0
        assert value(printed, "libmirror_safety_gate_held", **board) == 0
        assert value(printed, "libmirror_last_successful_pass_timestamp_seconds", **board) >= int(started)
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def test_a_metrics_port_in_use_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    remote = {"base_url": "http://127.0.0.1:9", "root": "r", "api_user": "u", "api_key": "k" * 24}
    write_daemon_config(config, tmp_path / "state", [library_block("board", tmp_path / "board", remote)])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(f'metrics_listen = "127.0.0.1:{port}"\n' + config.read_text())
        result = subprocess.run(
            [LIBMIRROR, "--config", str(config), "--log-format", "json", "run"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f'metrics_listen = "127.0.0.1:{port}": cannot listen on 127.0.0.1:{port}' in result.stderr
    assert "in use" in result.stderr and "No library was started" in result.stderr
    assert "Traceback" not in result.stderr
    assert '"library_started"' not in result.stdout


def test_pacing_waits_and_requests_are_counted_per_provider(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    info = sandbox_procs("cl", SEEDED, "-o", "processing_delay=0.1", provider="cliniko")
    remote = info["remote"]
    port = free_port()
    config = tmp_path / "config.toml"
    block = (
        f'[[library]]\nname = "clinic"\nprovider = "cliniko"\nlocal_path = "{tmp_path / "clinic"}"\n'
        "settle = 0.2\npoll_interval = 2\n\n[library.remote]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in remote.items())
        # a budget of 38 requests a second in bursts of 3: a first pull waits for it
        + "rate_limit = 40\nrate_limit_window = 1.0\n"
    )
    write_daemon_config(config, tmp_path / "state", [block])
    config.write_text(f'metrics_listen = "127.0.0.1:{port}"\n' + config.read_text())
    daemon = Daemon(config)
    try:
        daemon.wait_for(lambda e: e.get("event") == "pass" and e.get("pulled") == SEEDED, TIMEOUT)
        families: dict[str, list[Sample]] = {}

        def pulled_seen() -> bool:
            families.update(scrape(port))
            return value(families, "libmirror_tracked_files", library="clinic") == SEEDED

        wait_until(pulled_seen, TIMEOUT, step=0.2)
        assert value(families, "libmirror_rate_limit_waits_total", provider="cliniko", reason="pacing") >= 1
        assert value(families, "libmirror_http_requests_total", provider="cliniko", status_class="2xx") > SEEDED
        providers = {s.labels["provider"] for s in families["libmirror_http_requests"]}
        assert providers == {"cliniko"}
    finally:
        assert daemon.stop() == 0


def test_a_reload_drops_a_removed_librarys_series_and_keeps_the_endpoint(
    tmp_path: Path, sandbox_procs: SandboxStarter
) -> None:
    remote = sandbox_procs("cd", 2)["remote"]
    port = free_port()
    config = tmp_path / "config.toml"
    blocks = [library_block(name, tmp_path / name, remote, settle=0.2, poll_interval=2) for name in ("a", "b")]

    def write(listen: str, chosen: list[str]) -> None:
        write_daemon_config(config, tmp_path / "state", chosen)
        config.write_text(f'metrics_listen = "{listen}"\n' + config.read_text())

    write(f"127.0.0.1:{port}", blocks)
    daemon = Daemon(config)
    try:
        for name in ("a", "b"):
            daemon.wait_for(lambda e, n=name: e.get("event") == "pass" and e.get("library") == n, TIMEOUT)

        def libraries_seen() -> set[str]:
            return {s.labels["library"] for s in scrape(port).get("libmirror_tracked_files", [])}

        wait_until(lambda: libraries_seen() == {"a", "b"}, TIMEOUT, step=0.2)
        write(f"127.0.0.1:{free_port()}", blocks[:1])
        mark = len(daemon.events)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda e: e.get("event") == "config_reloaded" and e.get("removed") == ["b"], TIMEOUT, mark)
        moved = daemon.wait_for(lambda e: e.get("event") == "config_metrics_listen_unchanged", TIMEOUT, mark)
        assert moved["in_use"] == f"127.0.0.1:{port}"
        after = scrape(port)  # still served where it was
        for family in FAMILIES:
            assert all(s.labels.get("library") != "b" for s in after.get(family, [])), family
        assert value(after, "libmirror_tracked_files", library="a") == 2
    finally:
        assert daemon.stop() == 0
