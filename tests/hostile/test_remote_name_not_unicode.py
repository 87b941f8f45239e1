"""A server name that is not valid Unicode (a lone UTF-16 surrogate escaped in the JSON, which the JSON
grammar admits and Python decodes as is) must not stop the library, nor reach the state store or a log
line as it is: the HTTP layer reads such characters as U+FFFD, like undecodable text anywhere else."""

from __future__ import annotations

import pytest

from daemon.sandbox.runner import RunningSandbox
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once

pytestmark = pytest.mark.anyio


async def test_a_remote_name_with_a_lone_surrogate_syncs_and_stops_nothing(
    coredata: RunningSandbox, mirror: Mirror
) -> None:
    # a folder (the sandbox's content endpoint cannot put such a name in its headers: no file download)
    folder = coredata.backend.add_folder(None, "placeholder")
    folder.title = "old\udc81\udcfe"  # served as "old\\udc81\\udcfe" (kept in memory: the db refuses it)
    coredata.backend.add_file(folder.id, "inside.txt", b"under a broken server name")
    coredata.backend.add_file(None, "fine.txt", b"a good name")
    first = await sync_once(mirror)
    assert first.code == 0, (first.stderr[-3000:], first.events[-5:])
    assert "surrogates not allowed" not in first.stderr
    assert mirror.files() == {"fine.txt": b"a good name", "old\ufffd\ufffd/inside.txt": b"under a broken server name"}
    (mirror.root / "pushed.txt").write_bytes(b"a local change")
    again = await sync_once(mirror)
    assert again.code == 0
    assert [(p["pulled"], p["pushed"]) for p in again.passes] == [(0, 1)]
