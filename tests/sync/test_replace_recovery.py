"""A changed file on a provider without in-place update is "upload the new, then delete the old".

A stop between the two calls must neither lose the old version first (never delete first) nor leave
two remote files with one name, nor upload the content a second time on the next pass. These tests cut
a real TimeTap sandbox run at each point and restart the engine on the same state store and disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.config import LibraryConfig, RemoteConfig
from daemon.local.source import SMALL_FILE, UploadSource
from daemon.providers.base import Provider
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync
from daemon.vocab import Capabilities, Direction, ProviderError
from tests.simulation.remotes import TimeTapRemote
from tests.upload_sources import edited_once_opened

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=2, base=0.005, cap=0.01)


class Stop(BaseException):
    """The process dies here (not an error the executor may catch)."""


class Cut:
    """Wraps the real provider; ``after_upload`` / ``on_delete`` decide where the run is cut."""

    def __init__(
        self, real: Provider, *, after_upload: bool = False, on_delete: str = "", during_upload: Any = None
    ) -> None:
        self.real = real
        self.during_upload = during_upload
        self.after_upload = after_upload
        self.on_delete = on_delete  # "stop" | "error" | ""
        self.uploads = 0
        self.deletes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> Any:
        self.uploads += 1
        if self.during_upload is not None:  # runs right after the provider opened and checked the file
            source = edited_once_opened(source, self.during_upload)
        item = await self.real.upload(parent_id, name, source)
        if self.after_upload:
            raise Stop
        return item

    async def delete(self, item: Any) -> None:
        self.deletes += 1
        if self.on_delete == "stop":
            raise Stop
        if self.on_delete == "error":
            raise ProviderError("503 Service Unavailable (injected)")
        await self.real.delete(item)


def config(root: Path) -> LibraryConfig:
    return LibraryConfig(
        name="lib",
        provider="timetap",
        local_path=root,
        remote=RemoteConfig(),
        direction=Direction.TWO_WAY,
        max_delete_percent=100.0,
        max_delete_count=1000,
        concurrency=1,
    )


async def one_pass(sandbox: RunningSandbox, state: Path, root: Path, **cut: Any) -> Cut:
    store = await StateStore.open(state)
    http = HttpClient(retry=FAST)
    real = TimeTapRemote(sandbox).build(http)
    provider = Cut(real, **cut)
    engine = LibrarySync(config(root), store, await store.library_id("lib"), provider)
    try:
        await engine.run_pass()
    except* Stop:
        pass
    finally:
        await real.aclose()
        await http.aclose()
        await store.close()
    return provider


def live_files(sandbox: RunningSandbox) -> list[tuple[str, bytes]]:
    b = sandbox.backend
    return sorted(
        (o.fileName, b.read_content(o.id)) for o in list(b.objects.values()) if not o.deleted and not o.is_folder
    )


@pytest.mark.parametrize(
    "cut",
    [
        {"after_upload": True},  # the upload landed, its answer was never recorded
        {"on_delete": "stop"},  # the new id was recorded, the old file not yet deleted
        {"on_delete": "error"},  # the delete failed (server error): the action fails, the next pass ends it
    ],
    ids=["after-upload", "before-delete", "delete-fails"],
)
async def test_interrupted_replacement_is_finished_not_repeated(tmp_path: Path, cut: dict[str, Any]) -> None:
    sandbox = await start_sandbox("timetap", tmp_path / "sandbox")
    try:
        sandbox.backend.add_file(None, "report.txt", b"version one")
        root, state = tmp_path / "mirror", tmp_path / "state"
        await one_pass(sandbox, state, root)
        assert (root / "report.txt").read_bytes() == b"version one"

        (root / "report.txt").write_bytes(b"version two, longer")
        first = await one_pass(sandbox, state, root, **cut)
        assert first.uploads == 1
        # never delete first: at the cut, the server still holds the old version next to the new one
        assert (b"report.txt", b"version one") in [(n.encode(), c) for n, c in live_files(sandbox)]

        second = await one_pass(sandbox, state, root)
        assert second.uploads == 0, "the new version was uploaded a second time"
        assert live_files(sandbox) == [("report.txt", b"version two, longer")]
        assert sorted(p.name for p in root.iterdir() if p.name != ".libmirror") == ["report.txt"]
        assert (root / "report.txt").read_bytes() == b"version two, longer"

        quiet = await one_pass(sandbox, state, root)
        assert quiet.uploads == 0 and quiet.deletes == 0
    finally:
        await sandbox.stop()


class Deletes:
    """A provider stand-in that records deletes; its server still holds every item as listed."""

    capabilities = Capabilities(can_download=False)

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def current(self, item: Any) -> Any:
        return item

    async def delete(self, item: Any) -> None:
        self.deleted.append(item.remote_id)


async def test_recovery_never_takes_a_name_another_file_holds(tmp_path: Path) -> None:
    """After the cut, the listing gave the plain name to someone else's new file and ours a suffixed
    one: the recovery retires the old version but must not move ours onto the other file's name (that
    hid the other file from the plan, and the same content was uploaded once more; found by the soak)."""
    from daemon.sync.recover import finish_replacements
    from daemon.vocab import RemoteRow, SyncedRow

    store = await StateStore.open(tmp_path / "state")
    lib = await store.library_id("lib")
    async with store.transaction(lib) as tx:
        await tx.put_synced(SyncedRow("a.txt", digest="d-old", size=3, remote_id="old", remote_version="1"))
        await tx.begin_replace("a.txt", "old", "root", 5, "d-new")
        await tx.replace_uploaded("a.txt", "ours")
        await tx.put_remote(RemoteRow("a.txt", "theirs", parent_id="root", size=7, version="3"))
        await tx.put_remote(RemoteRow("a (~1a2b3c).txt", "ours", parent_id="root", size=5, version="2"))
        await tx.put_remote(RemoteRow("a (~9f9f9f).txt", "old", parent_id="root", size=3, version="1"))
    provider = Deletes()
    waiting = await finish_replacements(store, lib, provider, tmp_path / "root", full_listing=True)  # type: ignore[arg-type]
    assert waiting == set() and provider.deleted == ["old"]
    assert (await store.remote_at(lib, "a.txt")).remote_id == "theirs"  # type: ignore[union-attr]
    assert (await store.remote_at(lib, "a (~1a2b3c).txt")).remote_id == "ours"  # type: ignore[union-attr]
    assert await store.pending_replaces(lib) == []
    await store.close()


async def test_a_file_edited_while_it_is_sent_is_not_sent_twice(tmp_path: Path) -> None:
    """TimeTap lists no digest, and a same-size edit passes its size check: what the server got is
    hashed back, so the edit that was already sent is not uploaded a second time."""
    sandbox = await start_sandbox("timetap", tmp_path / "sandbox")
    try:
        root, state = tmp_path / "mirror", tmp_path / "state"
        await one_pass(sandbox, state, root)
        # larger than what is read whole at open (SMALL_FILE): it streams, so the edit lands mid-send
        version_a, version_b = b"A" * (SMALL_FILE + 1), b"B" * (SMALL_FILE + 1)
        (root / "scan.pdf").write_bytes(version_a)

        def edit() -> None:
            (root / "scan.pdf").write_bytes(version_b)

        first = await one_pass(sandbox, state, root, during_upload=edit)
        assert first.uploads == 1
        assert live_files(sandbox) == [("scan.pdf", version_b)]
        second = await one_pass(sandbox, state, root)
        assert second.uploads == 0, "the content the server already holds was uploaded again"
        assert live_files(sandbox) == [("scan.pdf", version_b)]
    finally:
        await sandbox.stop()
