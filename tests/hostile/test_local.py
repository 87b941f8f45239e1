"""Hostile local conditions: an unreadable file, a FIFO, a full disk during a download, a file changing
while it is uploaded, a folder replaced by a file, symlinks leading out of the root."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.config import load_config
from daemon.local.source import UploadSource
from daemon.providers import make_provider
from daemon.sandbox.runner import RunningSandbox
from daemon.state.store import StateStore
from daemon.sync.library import LibrarySync, PassSummary
from tests.e2e.conftest import Mirror
from tests.hostile.conftest import sync_once
from tests.upload_sources import edited_once_opened

pytestmark = pytest.mark.anyio


async def run_pass(mirror: Mirror, *, wrap_provider: Any = None) -> PassSummary:
    """One in-process pass (so a test can patch a boundary) over the mirror's config."""
    library = load_config(mirror.config).libraries[0]
    store = await StateStore.open(load_config(mirror.config).state_dir)
    provider = make_provider(library.remote)
    if wrap_provider is not None:
        wrap_provider(provider)
    try:
        lib_id = await store.library_id(library.name)
        return await LibrarySync(library, store, lib_id, provider).run_pass()
    finally:
        await provider.aclose()
        await store.close()


def remote_files(sb: RunningSandbox) -> dict[str, bytes]:
    prefix = sb.backend.path_of(sb.backend.nodes[sb.remote["root"]]) + "/"
    out = {}
    for node in sb.backend.files():
        path = sb.backend.path_of(node)
        if path.startswith(prefix):
            out[path.removeprefix(prefix)] = sb.backend.read_content(node.id)
    return out


async def test_unreadable_file_is_reported_once_and_the_rest_syncs(
    coredata: RunningSandbox, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror.root.mkdir()
    (mirror.root / "locked.txt").write_bytes(b"cannot read me")
    (mirror.root / "open.txt").write_bytes(b"fine")
    real_open = os.open

    def guarded(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("locked.txt"):  # we run as root: EACCES is simulated at the syscall boundary
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
    with capture_logs() as logs:
        first = await run_pass(mirror)
        second = await run_pass(mirror)
    assert remote_files(coredata) == {"open.txt": b"fine"}
    complaints = [e for e in logs if "locked.txt" in str(e.get("path", "")) and e["log_level"] in ("warning", "error")]
    assert len(complaints) == 1, complaints  # one line, not one per pass
    assert first.errors == 0 and second.errors == 0 and second.pushed == 0
    monkeypatch.setattr(os, "open", real_open)
    (mirror.root / "locked.txt").touch()  # readable again (and touched, so the scanner looks at it again)
    await run_pass(mirror)
    assert remote_files(coredata) == {"open.txt": b"fine", "locked.txt": b"cannot read me"}


async def test_fifo_is_neither_read_nor_synced(coredata: RunningSandbox, mirror: Mirror) -> None:
    mirror.root.mkdir()
    os.mkfifo(mirror.root / "pipe")
    (mirror.root / "real.txt").write_bytes(b"real")
    run = await sync_once(mirror)  # would hang forever if the FIFO were opened for reading
    assert run.code == 0
    assert remote_files(coredata) == {"real.txt": b"real"}


@pytest.fixture
def tiny_root(mirror: Mirror) -> Any:
    """The mirror root on a 1 MiB tmpfs (we run as root in CI containers; skipped where mount fails)."""
    mirror.root.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mirror.root)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mirror.root
    finally:
        subprocess.run(["umount", "-l", str(mirror.root)], check=False)


async def test_a_download_the_disk_cannot_hold_is_refused_up_front(
    coredata: RunningSandbox, mirror: Mirror, tiny_root: Path
) -> None:
    coredata.backend.add_file(None, "huge.bin", os.urandom(3 * 1024 * 1024))
    coredata.backend.add_file(None, "small.txt", b"small")
    run = await sync_once(mirror)
    assert run.code == 1
    failures = [e for e in run.events if e.get("level") == "error" and "huge.bin" in str(e.get("path", ""))]
    assert failures and any("No space left" in str(e) for e in failures), run.events[-6:]
    assert mirror.files() == {"small.txt": b"small"}  # no partial huge.bin in place
    assert not any((tiny_root / ".libmirror" / "tmp").glob("*"))  # the partial download was removed
    assert remote_files(coredata)["huge.bin"]  # and nothing happened remotely


async def test_file_changing_while_it_is_uploaded(coredata: RunningSandbox, mirror: Mirror) -> None:
    mirror.root.mkdir()
    target = mirror.root / "moving.txt"
    target.write_bytes(b"version A" * 10_000)  # over SMALL_FILE (read whole at open): it streams

    def rewrite() -> None:
        target.write_bytes(b"version B, written while A was on its way")

    def change_during_upload(provider: Any) -> None:
        real = provider.upload

        async def upload(parent_id: str, name: str, source: UploadSource) -> Any:
            # right after the provider opened and checked A, the file is rewritten in place: B is sent
            return await real(parent_id, name, edited_once_opened(source, rewrite))

        provider.upload = upload

    first = await run_pass(mirror, wrap_provider=change_during_upload)
    assert first.errors == 1  # the server's digest is not the one planned: refused, copy taken back
    assert remote_files(coredata) == {}
    second = await run_pass(mirror)
    assert second.errors == 0
    assert remote_files(coredata) == {"moving.txt": b"version B, written while A was on its way"}
    assert sum(1 for _ in coredata.backend.files()) == 2  # B, and A's bad copy in the tenant trash
    third = await run_pass(mirror)
    assert third.pushed == third.pulled == 0


async def test_folder_replaced_by_a_file(coredata: RunningSandbox, mirror: Mirror) -> None:
    docs = coredata.backend.add_folder(None, "docs")
    coredata.backend.add_file(docs.id, "one.txt", b"one")
    coredata.backend.add_file(docs.id, "two.txt", b"two")
    others = {f"other-{i}.txt": b"other %d" % i for i in range(30)}  # so two deletes pass the delete gates
    for name, data in others.items():
        coredata.backend.add_file(None, name, data)
    assert (await sync_once(mirror)).code == 0
    assert mirror.files() == {"docs/one.txt": b"one", "docs/two.txt": b"two", **others}
    for child in (mirror.root / "docs").iterdir():
        child.unlink()
    (mirror.root / "docs").rmdir()
    (mirror.root / "docs").write_bytes(b"docs is a file now")
    codes = []
    for _ in range(4):
        codes.append((await sync_once(mirror)).code)
        if codes[-1] == 0:
            break
    assert codes[-1] == 0, codes
    # the remote folder is removed (its files go to the tenant trash) and the new file survives, on both
    # sides; it is kept as a conflict copy named after "docs" (the name was a folder's when planned)
    local = mirror.files()
    assert remote_files(coredata) == local
    mine = {k: v for k, v in local.items() if k not in others}
    assert list(mine.values()) == [b"docs is a file now"] and next(iter(mine)).startswith("docs")
    assert [coredata.backend.path_of(f) for f in coredata.backend.folders()] == ["/domain/trash"]
    trashed = {coredata.backend.read_content(n.id) for n in coredata.backend.files() if n.parent != docs.parent}
    assert trashed == {b"one", b"two"}  # removed remotely into the tenant trash, not lost


async def test_symlinks_out_of_the_root_are_never_followed(
    tmp_path: Path, coredata: RunningSandbox, mirror: Mirror
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"private")
    escape = coredata.backend.add_folder(None, "escape")
    coredata.backend.add_file(escape.id, "payload.txt", b"from the server")
    mirror.root.mkdir()
    (mirror.root / "escape").symlink_to(outside, target_is_directory=True)
    (mirror.root / "secret-link.txt").symlink_to(outside / "secret.txt")
    (mirror.root / "plain.txt").write_bytes(b"plain")
    run = await sync_once(mirror)
    assert sorted(os.listdir(outside)) == ["secret.txt"]  # nothing written through the link
    assert (outside / "secret.txt").read_bytes() == b"private"
    assert b"private" not in remote_files(coredata).values()
    assert "plain.txt" in remote_files(coredata)
    assert (mirror.root / "escape").is_symlink() and (mirror.root / "secret-link.txt").is_symlink()
    assert run.code in (0, 1)
    skipped = [e for e in run.events if e.get("event") == "symlink_skipped"]
    assert {e["path"] for e in skipped} == {"escape", "secret-link.txt"}


async def test_disk_full_during_a_download(
    coredata: RunningSandbox, mirror: Mirror, tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the bytes arrive (the free-space check passed, someone else filled it)."""
    from daemon.local import atomic

    monkeypatch.setattr(atomic, "check_space", lambda root, size: None)
    coredata.backend.add_file(None, "huge.bin", os.urandom(3 * 1024 * 1024))
    summary = await run_pass(mirror)
    assert summary.errors == 1
    assert any("huge.bin" in path and "No space left" in message for path, message in summary.failures)
    assert mirror.files() == {}  # no partial huge.bin in place
    assert not any((tiny_root / ".libmirror" / "tmp").glob("*"))  # the partial download was removed


async def test_a_remote_edit_racing_a_local_rename_is_pulled_not_masked(
    coredata: RunningSandbox, mirror: Mirror
) -> None:
    """Renamed locally; edited on the server after the listing, before our metadata PUT moved it. The
    move carries the edit along; the engine must notice it (the server's digest differs from the base)
    and pull it, keeping the local version in the trash, not record the two as in sync."""
    node = coredata.backend.add_file(None, "a.txt", b"version X")
    await run_pass(mirror)
    (mirror.root / "a.txt").rename(mirror.root / "b.txt")

    def edit_before_move(provider: Any) -> None:
        real = provider.move

        async def move(item: Any, parent_id: str, name: str) -> Any:
            coredata.backend.set_content(node.id, b"version Y, edited in the web app")
            return await real(item, parent_id, name)

        provider.move = move

    await run_pass(mirror, wrap_provider=edit_before_move)
    await run_pass(mirror)
    quiet = await run_pass(mirror)
    assert remote_files(coredata) == {"b.txt": b"version Y, edited in the web app"}
    assert mirror.files() == remote_files(coredata)
    trashed = [p.read_bytes() for p in (mirror.root / ".libmirror" / "trash").rglob("*") if p.is_file()]
    assert b"version X" in trashed
    assert quiet.pulled == quiet.pushed == 0
