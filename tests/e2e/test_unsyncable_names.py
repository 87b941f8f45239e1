"""Local names that cannot be synced (issue 13 §1), beyond tests/e2e/test_bad_local_names.py: what
`status` and the logs show of them is printable, ignored ones are not reported, a renamed one syncs."""

from __future__ import annotations

import json
import os
import subprocess

from tests.e2e.conftest import LIBMIRROR, Mirror, Sandbox

BAD = b"\x19\x81\xfe"  # not UTF-8, and 0x19 is a control character: both are shown escaped
SHOWN = "\\x19\\x81\\xfe"


def status(mirror: Mirror, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [LIBMIRROR, "--config", str(mirror.config), "status", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def test_unsyncable_names_are_shown_escaped_ignored_ones_are_not_reported(sandbox: Sandbox, mirror: Mirror) -> None:
    mirror.sync()
    root = os.fsencode(mirror.root)
    with open(root + b"/" + BAD, "wb") as fh:
        fh.write(b"from an old disk")
    with open(root + b"/._" + BAD, "wb") as fh:  # a macOS resource fork: ignored by default, whatever its bytes
        fh.write(b"resource fork")

    result = mirror.sync()
    warned = [e for e in mirror.events(result) if e["event"] == "name_not_utf8"]
    assert [e["path"] for e in warned] == [SHOWN]
    assert "\x19" not in result.stdout.replace("\\u0019", "")  # JSON escapes it anyway; the value holds none

    listed = json.loads(status(mirror, "--json").stdout)["libraries"][0]["unsyncable"]
    assert listed == {"count": 1, "paths": [SHOWN]}
    table = status(mirror).stdout
    assert SHOWN in table and "\x19" not in table  # no raw control character reaches the terminal

    os.rename(root + b"/" + BAD, root + b"/renamed.txt")
    mirror.sync()
    assert sandbox.api.content(sandbox.api.tree()["renamed.txt"]["id"]) == b"from an old disk"
    assert json.loads(status(mirror, "--json").stdout)["libraries"][0]["unsyncable"] is None
