"""Two `libmirror sync --once` on one config at the same time: one writes, nothing is doubled.

Before the state store had a writer lock, both pushed the same 150 files ("pushed 150" each, exit 0)
and the next pass left about 300 on each side.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import SandboxStarter
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import LIBMIRROR, write_config

FILES = 150
EXIT_LOCKED = 4


def _pass_line(stdout: str) -> dict[str, Any]:
    lines = [json.loads(line[line.index(">") + 1 :]) for line in stdout.splitlines() if line.startswith("<")]
    [line] = [e for e in lines if e["event"] == "pass"]
    return line


def test_two_syncs_started_together_push_each_file_once(tmp_path: Path, sandbox_procs: SandboxStarter) -> None:
    remote = dict(sandbox_procs("sandbox", 0)["remote"])  # an empty library
    api = CoreDataAPI(remote)
    mirror = write_config(tmp_path, remote)
    for i in range(FILES):
        folder = mirror.root / f"box {i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"scan {i:03d}.txt").write_bytes(b"scanned page %d\n" % i)

    cmd = [LIBMIRROR, "--config", str(mirror.config), "--log-format", "json", "sync", "--once"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(proc, *proc.communicate(timeout=600)) for proc in procs]
    codes = sorted(proc.returncode for proc, _, _ in results)
    assert codes[0] == 0 and codes[1] in (0, EXIT_LOCKED), [(p.returncode, err[-2000:]) for p, _, err in results]
    ran = [(out, err) for proc, out, err in results if proc.returncode == 0]
    refused = [err for proc, _, err in results if proc.returncode == EXIT_LOCKED]
    for err in refused:
        assert "is in use by libmirror pid" in err and "(`libmirror sync --once`)" in err, err
        assert "Wait for that pass to finish" in err, err
    pushed = sorted(_pass_line(out)["pushed"] for out, _ in ran)
    # the second one only got the lock after the first had finished: it found everything done
    assert pushed == ([FILES] if refused else [0, FILES]), pushed

    after = mirror.sync()
    line = _pass_line(after.stdout)
    assert (line["pushed"], line["pulled"], line["deleted"], line["conflicts"]) == (0, 0, 0, 0), line

    files = api.files()
    tree = api.tree()
    names = Counter((f["parent"], f["filename"]) for f in files)
    assert [name for name, n in names.items() if n > 1] == []  # no file uploaded twice
    assert len(files) == len(tree) == FILES
    local = mirror.files()
    assert len(local) == FILES and sorted(local) == sorted(tree)
    assert not [p for p in local if "conflicted copy" in p]
    assert Counter(f["title"] for f in api.folders() if f["parent"] == api.root) == Counter(
        {f"box {i}": 1 for i in range(5)}
    )
