"""An upload reads the file that was planned on, never what a symlink swapped in afterwards points to.

The executor checks the file with ``lstat`` when it starts the upload; the provider opens it later. A
symlink put in its place in between (here: by a provider wrapper, right before the real upload runs)
once sent any file the daemon could read, e.g. a secret outside the library, to the server. Now the
provider opens through ``daemon.local.source.UploadSource``: the swap is refused, nothing is sent, and
the action is re-planned. Real sandboxes in this event loop, a real state store and a real folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.config import LibraryConfig, RemoteConfig
from daemon.providers.http import HttpClient, RetryPolicy
from daemon.sandbox.runner import start_sandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync, PassSummary
from daemon.vocab import Direction
from tests.simulation.remotes import ADAPTERS, ROOT, SimRemote

pytestmark = pytest.mark.anyio

SECRET = b"-----BEGIN PRIVATE KEY----- not for the server"


class SwapsBeforeUpload:
    """The real provider; right before its ``upload``/``update`` runs, ``target`` becomes a symlink
    to ``secret`` (after the executor's own check of the file)."""

    def __init__(self, real: Any, target: Path, secret: Path) -> None:
        self.real = real
        self.target = target
        self.secret = secret
        self.swaps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _swap(self) -> None:
        if not self.target.is_symlink():
            self.target.unlink()
            self.target.symlink_to(self.secret)
            self.swaps += 1

    async def upload(self, *args: Any) -> Any:
        self._swap()
        return await self.real.upload(*args)

    async def update(self, *args: Any) -> Any:
        self._swap()
        return await self.real.update(*args)


async def run_pass(remote: SimRemote, provider_name: str, root: Path, state: Path, wrap: Any = None) -> PassSummary:
    store = await StateStore.open(state)
    http = HttpClient(retry=RetryPolicy(attempts=2, base=0.005, cap=0.01))
    real = remote.build(http)
    config = LibraryConfig(
        name="lib",
        provider=provider_name,
        local_path=root,
        remote=RemoteConfig(),
        direction=Direction.TWO_WAY,
        concurrency=1,
    )
    try:
        provider = wrap(real) if wrap is not None else real
        return await LibrarySync(config, store, await store.library_id("lib"), provider).run_pass()
    finally:
        await real.aclose()
        await http.aclose()
        await store.close()


def record_received(backend: Any) -> list[bytes]:
    """Every upload body the sandbox receives (each one is streamed into its blob store), kept even
    when the server drops it again (a TimeTap delete is permanent)."""
    received: list[bytes] = []
    blobs = backend.blobs
    write_stream = blobs.write_stream

    async def spy(name: str, chunks: AsyncIterable[bytes], **kwargs: Any) -> Any:
        body = bytearray()
        received.append(b"")

        async def tee() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                body.extend(chunk)
                received[-1] = bytes(body)
                yield chunk

        return await write_stream(name, tee(), **kwargs)

    blobs.write_stream = spy
    return received


@pytest.mark.parametrize(
    ("provider_name", "edit"),
    [("coredata", False), ("coredata", True), ("timetap", True)],
    ids=["coredata-new-file", "coredata-update", "timetap-replacement"],
)
async def test_a_symlink_swapped_in_before_the_upload_is_never_followed(
    tmp_path: Path, provider_name: str, edit: bool
) -> None:
    sandbox = await start_sandbox(provider_name, tmp_path / "sandbox")
    remote = ADAPTERS[provider_name](sandbox)
    remote.setup()
    root, state = tmp_path / "mirror", tmp_path / "state"
    secret = tmp_path / "outside" / "secret.key"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    for n in range(3):
        remote.create(ROOT, f"other-{n}.txt", f"another file {n}".encode())
    try:
        if edit:
            remote.create(ROOT, "report.txt", b"version one")
        assert (await run_pass(remote, provider_name, root, state)).errors == 0
        target = root / "report.txt"
        target.write_bytes(b"version two, local" if edit else b"a new local file")

        swapper: list[SwapsBeforeUpload] = []

        def wrap(real: Any) -> SwapsBeforeUpload:
            swapper.append(SwapsBeforeUpload(real, target, secret))
            return swapper[0]

        received = record_received(sandbox.backend)
        with capture_logs() as logs:
            summary = await run_pass(remote, provider_name, root, state, wrap)

        assert swapper[0].swaps == 1
        assert not any(SECRET in body for body in received), received
        held = [e.content or b"" for e in remote.live() if not e.is_dir] + remote.retired()
        assert not any(SECRET in content for content in held)  # nor in the trash
        replanned = [e for e in logs if e["event"] == "action_replanned" and e.get("path") == "report.txt"]
        assert replanned, [e for e in logs if e.get("path") == "report.txt"]
        assert summary.errors == 0
        assert secret.read_bytes() == SECRET and target.is_symlink()  # nothing on disk was touched
        if edit:
            # the re-plan finds a symlink where the synced file was: symlinks are never synced, so the
            # file counts as deleted locally and its remote version is retired as any local delete
            # retires it (CoreData's trash; TimeTap deletes for good, so the local trash keeps it)
            local_trash = [p.read_bytes() for p in (root / ".libmirror" / "trash").rglob("*") if p.is_file()]
            assert b"version one" in held + local_trash
    finally:
        await sandbox.stop()
