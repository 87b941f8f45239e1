"""The slow variant of the simulation: ``kill -9`` a real ``libmirror run`` process mid-work, restart it.

A real ``libmirror sandbox coredata`` process and a real daemon: a seeded driver edits both sides while
the daemon syncs, SIGKILLs it at a random moment (mid-transfer, mid-commit, wherever it is), restarts
it on the same state store and disk, and does that several times. Then the daemon is stopped and
``sync --once`` settles; the same invariants as the in-process simulation are checked: convergence,
no lost version, no duplicate remote path, quiescence (one more ``sync --once`` does nothing), no temp
files. Marked ``slow``: CI runs ``KILL_SEEDS`` seeds; ``--seed N`` replays one.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import Mirror
from tests.service.daemon_proc import Daemon, library_block, write_daemon_config
from tests.simulation.world import Ledger, Trace, local_files, local_trash, md5, tmp_leftovers

KILL_SEEDS = (1, 2)
KILLS = 4


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kill_seed" in metafunc.fixturenames:
        seed = metafunc.config.getoption("--seed", default=None)
        metafunc.parametrize("kill_seed", [seed] if seed is not None else list(KILL_SEEDS))


@pytest.fixture
def sandbox(sandbox_procs: SandboxStarter) -> dict[str, Any]:
    return sandbox_procs("sandbox", 6)


class Driver:
    def __init__(self, seed: int, root: Path, api: CoreDataAPI) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.root = root
        self.api = api
        self.ledger = Ledger()
        self.trace = Trace()
        self.n = 0

    def content(self) -> bytes:
        self.n += 1
        size = self.rng.choice([10, 3000, 200_000])  # some transfers long enough to be cut
        return f"k{self.seed}.{self.n}|".encode() + os.urandom(size)

    def local_op(self) -> None:
        files = sorted(p for p in local_files(self.root))
        op = self.rng.choice(["create", "create", "edit", "delete", "rename"] if files else ["create"])
        if op == "create":
            rel = f"{self.rng.choice(['', 'dir/', 'dir/sub/'])}new-{self.n}-{self.rng.randrange(99)}.bin"
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_bytes(self.content())
        else:
            rel = self.rng.choice(files)
            try:
                old = (self.root / rel).read_bytes()
                if op == "edit":
                    self.ledger.release(old)
                    (self.root / rel).write_bytes(self.content())
                elif op == "delete":
                    self.ledger.release(old)
                    (self.root / rel).unlink()
                else:
                    dest = self.root / f"{rel}-renamed"
                    if dest.exists():  # the rename replaces that file: its content is the user's to lose
                        self.ledger.release(dest.read_bytes())
                    os.rename(self.root / rel, dest)
            except FileNotFoundError:  # the daemon moved it meanwhile
                return
        self.trace.add(f"local {op} {rel!r}")

    def remote_op(self) -> None:
        tree = self.api.tree()
        local = {md5(c) for c in local_files(self.root).values()} | {md5(c) for c in local_trash(self.root)}
        op = self.rng.choice(["create", "edit", "delete"] if tree else ["create"])
        if op == "create":
            name = f"remote-{self.n}-{self.rng.randrange(99)}.bin"
            self.api.create(self.api.root, name, self.content())
            self.trace.add(f"remote create {name!r}")
            return
        path = self.rng.choice(sorted(tree))
        old = self.api.content(tree[path]["id"])
        if md5(old) not in local:
            self.ledger.release(old)
        if op == "edit":
            self.api.update(tree[path]["id"], self.content())
        else:
            self.api.delete(tree[path]["id"])
        self.trace.add(f"remote {op} {path!r}")

    def observe(self) -> None:
        self.ledger.observe(local_files(self.root), "local")
        self.ledger.observe({p: self.api.content(f["id"]) for p, f in self.api.tree().items()}, "remote")


@pytest.mark.slow
def test_kill_9_mid_work_and_restart(tmp_path: Path, sandbox: dict[str, Any], kill_seed: int) -> None:
    remote = dict(sandbox["remote"])
    root = tmp_path / "root"
    config = tmp_path / "config.toml"
    block = library_block(
        "killed", root, remote, poll_interval=1, settle=0.1, full_scan_interval=60, max_delete_percent=100
    )
    write_daemon_config(config, tmp_path / "state", [block])
    api = CoreDataAPI(remote)
    driver = Driver(kill_seed, root, api)
    mirror = Mirror(config, root)
    mirror.sync()  # the first full pull, so the marker exists and the driver has files to work on
    driver.observe()
    for kill in range(KILLS):
        daemon = Daemon(config)
        try:
            deadline = time.monotonic() + driver.rng.uniform(0.5, 2.5)
            while time.monotonic() < deadline:
                if driver.rng.random() < 0.6:
                    driver.local_op()
                else:
                    driver.remote_op()
                time.sleep(driver.rng.uniform(0.0, 0.3))
        finally:
            daemon.kill()  # SIGKILL: no shutdown path runs
            daemon._reader.join(timeout=5)
            (tmp_path / f"daemon-{kill + 1}.log").write_text("\n".join(daemon.lines) + "\n")
        driver.trace.add(f"KILL -9 #{kill + 1}")
        driver.observe()

    runs = [mirror.sync(check=None) for _ in range(3)]  # the first finishes the daemon's work
    (tmp_path / "sync-once.log").write_text("\n".join(r.stdout for r in runs))
    settled, quiet = runs[1], runs[2]
    actions = [e for e in mirror.events(quiet) if e["event"] == "action"]
    problems: list[str] = []
    if actions:
        problems.append(f"quiescence: another sync --once acted: {actions[:5]}")
    if settled.returncode != 0:
        problems.append(f"settling sync --once exit {settled.returncode}")
    tree = api.tree()
    local = local_files(root)
    remote_view = {p: api.content(f["id"]) for p, f in tree.items()}
    if local != remote_view:
        only_local = sorted(set(local) - set(remote_view))
        only_remote = sorted(set(remote_view) - set(local))
        differ = sorted(p for p in set(local) & set(remote_view) if local[p] != remote_view[p])
        problems.append(f"convergence: only local {only_local}, only remote {only_remote}, differ {differ}")
    inside = {*api.folder_paths().values(), api.root}  # the tenant trash is not in the library
    by_place = Counter((f["parent"], f["filename"]) for f in api.files() if f["parent"] in inside)
    problems += [f"duplicate remote path {name!r} x{n}" for (_, name), n in by_place.items() if n > 1]
    present = {md5(c) for c in local.values()} | {md5(c) for c in local_trash(root)}
    present |= {md5(api.content(f["id"])) for f in api.files()}  # the tenant trash included
    problems += [f"lost version {k[:8]} first seen {w}" for k, w in driver.ledger.missing(present).items()]
    if tmp_leftovers(root):
        problems.append(f"temp files left: {tmp_leftovers(root)}")
    assert not problems, (
        f"kill -9 simulation seed {kill_seed} failed; replay: "
        f"pytest tests/simulation/test_kill9.py --seed {kill_seed} (daemon logs: {tmp_path}/*.log)\n"
        + "\n".join(problems)
        + "\n"
        + driver.trace.render()
    )
