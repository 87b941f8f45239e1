"""The `unsyncable` status of a library that the daemon keeps observing through its watcher (passes over
a few paths, not full rescans): a name fixed in a watched folder leaves the list at once (issue 13 §1)."""

from __future__ import annotations

import json
import os

import pytest

from daemon.config import load_config
from daemon.providers import make_provider
from daemon.sandbox.runner import RunningSandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync
from tests.e2e.conftest import Mirror

pytestmark = pytest.mark.anyio

BAD = b"\x81\xfe.txt"


async def test_a_name_fixed_under_a_watched_path_leaves_the_status(coredata: RunningSandbox, mirror: Mirror) -> None:
    config = load_config(mirror.config)
    library = config.libraries[0]
    store = await StateStore.open(config.state_dir)
    provider = make_provider(library.remote)
    try:
        engine = LibrarySync(library, store, await store.library_id(library.name), provider)
        (mirror.root / "sub").mkdir(parents=True)
        raw = os.fsencode(mirror.root)
        for where in (b"/sub/", b"/"):
            with open(raw + where + BAD, "wb") as fh:
                fh.write(b"from an old disk")

        async def listed() -> list[str]:
            status = (await store.get_status(engine.lib)).get("unsyncable")
            return sorted(json.loads(status)["paths"]) if status else []

        assert (await engine.run_pass()).errors == 0  # a full scan, as a session starts
        assert await listed() == ["\\x81\\xfe.txt", "sub/\\x81\\xfe.txt"]
        os.rename(raw + b"/sub/" + BAD, raw + b"/sub/fixed.txt")
        # what the watcher hands over for a rename in a folder: the folder (watchfiles cannot name the old one)
        summary = await engine.run_pass(scan_local=["sub"], poll_remote=False)
        assert summary.errors == 0 and summary.pushed == 1
        assert await listed() == ["\\x81\\xfe.txt"]
        assert (await engine.run_pass(scan_local=["sub/fixed.txt"], poll_remote=False)).errors == 0
        assert await listed() == ["\\x81\\xfe.txt"]  # a pass over other paths keeps what it did not look at
    finally:
        await provider.aclose()
        await store.close()
