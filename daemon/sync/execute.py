"""The executor: carries out planned actions and records what both sides now hold.

After each action succeeds, the new synced row and the observations the executor now knows are
written in ONE transaction. Nothing else is persisted as work to do: after a crash the engine
re-observes and re-plans. Before touching a local file the executor checks it is still what the plan
saw (DESIGN rule 2); a mismatch drops the action ("replan"), it is never forced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

import anyio
import structlog

from daemon.local import atomic, ops
from daemon.local.commit_batch import CommitBatcher
from daemon.local.ignore import IgnoreMatcher
from daemon.local.names import safe_local_path
from daemon.local.once import Once
from daemon.local.source import UploadSource
from daemon.providers.base import FolderResolver, Provider
from daemon.state.store import StateStore, Txn, parent_path
from daemon.sync import retire
from daemon.sync.plan import conflict_copy_name
from daemon.sync.retire import RemoteChanged, remote_item
from daemon.vocab import (
    Action,
    AuthError,
    ConflictCopy,
    DeleteRemote,
    Download,
    Forget,
    LocalRow,
    MkdirLocal,
    MkdirRemote,
    MoveLocal,
    MoveRemote,
    NotFound,
    PreconditionFailed,
    ProviderError,
    Record,
    RemoteItem,
    RemoteRow,
    RmdirLocal,
    RmdirRemote,
    Skip,
    SyncedRow,
    TrashLocal,
    Unsupported,
    Upload,
    moved_from,
)

log = structlog.get_logger(__name__)

_reported = Once()

RECORD_CHUNK = 1000
"""RECORD actions written per group commit (see ``Executor._record_all``)."""
FAILURE_BACKOFF = {"base": 25.0, "factor": 5.0, "cap": 24 * 3600.0}


class Replan(Exception):
    """The world moved on since the plan; observe again instead of acting."""


class FolderRefused(Replan):
    """The server refused to remove a remote folder that the remote tree shows empty (HTTP 409: not
    empty). The tree may be stale (an item landed in the folder after the listing: a colleague's upload
    after the plan) or the server may keep items that no listing shows (TimeTap: deleted ones). Not an
    error: the pass lists the remote side in full and plans again."""

    def __init__(self, remote_id: str, why: str) -> None:
        super().__init__(why)
        self.remote_id = remote_id


@dataclass
class ExecutionReport:
    done: list[Action] = field(default_factory=list)
    replanned: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    unsupported: list[tuple[Action, str]] = field(default_factory=list)  # the API cannot do it: skipped
    remote_changes: list[RemoteChanged] = field(default_factory=list)  # what the server answered a check
    refused_folders: list[str] = field(default_factory=list)  # remote ids of FolderRefused: listed again in full
    bytes_up: int = 0
    bytes_down: int = 0


ProgressCallback = Callable[[Action, int], None]


def remote_row(item: RemoteItem, path: str) -> RemoteRow:
    return RemoteRow(
        path=path,
        remote_id=item.remote_id,
        is_dir=item.is_dir,
        parent_id=item.parent_id,
        size=item.size,
        digest=item.digest,
        version=item.version,
        modified=item.modified,
        name=item.name,
    )


def synced_row(path: str, local: LocalRow, remote: RemoteRow | RemoteItem, digest: str | None = None) -> SyncedRow:
    return SyncedRow(
        path=path,
        is_dir=local.is_dir,
        digest=digest if digest is not None else local.digest,
        size=local.size,
        remote_id=remote.remote_id,
        remote_version=remote.version,
        local_mtime_ns=local.mtime_ns,
        local_inode=local.inode,
    )


def _content_differs(item: RemoteItem, base: SyncedRow | None) -> bool:
    """Whether what the server answered shows other content than the merge base (digest or size)."""
    if base is None:
        return False
    if item.digest is not None and base.digest is not None and item.digest != base.digest:
        return True
    return item.size is not None and item.size != base.size


class _RestartableSink:
    """A download sink the provider can restart (``reset``) when a transfer breaks half-way."""

    def __init__(self, root: Path, rel: str) -> None:
        self.root = root
        self.rel = rel
        self.target = atomic.open_download(root, rel)

    async def __call__(self, chunk: bytes) -> None:
        await self.target.write(chunk)

    async def reset(self) -> None:
        await self.target.close()
        self.target = atomic.open_download(self.root, self.rel)


class _HashingSink:
    """A download sink that only hashes (restartable, like the download sink)."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    async def __call__(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.size += len(chunk)

    async def reset(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0


async def remote_md5(provider: Provider, item: RemoteItem) -> tuple[int, str] | None:
    """(size, MD5) of what the server holds for ``item``, streamed (nothing is written); None when the
    provider cannot download or the download fails. For providers that list no digest."""
    if not provider.capabilities.can_download:
        return None
    hasher = _HashingSink()
    try:
        await provider.download(item, hasher)
    except (ProviderError, OSError):
        return None
    return hasher.size, hasher.md5.hexdigest()


async def _put_record(tx: Txn, action: Record) -> None:
    """The one write of a RECORD: the synced row of what both sides already hold."""
    local, remote = action.local, action.remote
    assert local is not None and remote is not None
    await tx.put_synced(synced_row(action.path, local, remote))


def _takes_a_folder_away(action: Action) -> bool:
    """Whether ``action`` removes a folder, or renames a local folder aside, on either side."""
    match action:
        case RmdirLocal() | RmdirRemote():
            return True
        case ConflictCopy() | TrashLocal():
            return action.local is not None and action.local.is_dir
        case DeleteRemote():
            return action.remote is not None and action.remote.is_dir
        case _:
            return False


def _clears_the_way(action: Action) -> bool:
    """Whether ``action`` takes a file out of the way of a folder of the same name on the other side."""
    local, remote = action.local, action.remote
    if local is None or remote is None or local.is_dir == remote.is_dir:
        return False
    match action:
        case ConflictCopy() | TrashLocal():
            return remote.is_dir
        case DeleteRemote():
            return local.is_dir
        case _:
            return False


class Executor:
    """Runs one round of actions for one library with bounded concurrency."""

    def __init__(
        self,
        store: StateStore,
        lib: int,
        provider: Provider,
        root: Path,
        *,
        concurrency: int = 4,
        now_label: str = "",
        on_progress: ProgressCallback | None = None,
        on_failed: Callable[[Action], None] | None = None,
        clock: Callable[[], float] = time.time,
        ignore: IgnoreMatcher | None = None,
        kept_folders: set[str] | None = None,
    ) -> None:
        self.store = store
        self.ignore = ignore or IgnoreMatcher()
        self.lib = lib
        self.provider = provider
        self.root = root
        self.limiter = anyio.CapacityLimiter(max(1, concurrency))
        self.now_label = now_label
        self.on_progress = on_progress
        self.on_failed = on_failed
        self.clock = clock
        self._mkdir_lock = anyio.Lock()
        self._commits = CommitBatcher()
        # remote id of each folder path an upload went into this round: one store read per folder, not
        # per file (cleared around every action that may move or remove a folder, see ``_dispatch``)
        self._folder_ids: dict[str, str] = {}
        self._in_backoff: set[str] = set()
        # remote ids of folders the server refused to remove although a full listing made after the
        # refusal shows them empty: it keeps items no listing shows (kept by the library, see ``LibrarySync``)
        self.kept_folders = kept_folders if kept_folders is not None else set()

    async def run(self, actions: list[Action]) -> ExecutionReport:
        """Carry out one round's actions, at most ``concurrency`` at once, in three steps. First what
        clears a name for an item of the other kind (a local file renamed aside or trashed where the
        remote has a folder, a remote file deleted where the local side has one), so the folder's
        content can follow in the same round. Last what removes a folder or renames it aside, deepest
        folders first, once everything inside it is done. Run side by side, a download into the remote
        folder found the local file still in its place, an upload found the remote file, a folder's
        conflict copy overtook the trashing of one of its files (deleted on the server, it came back
        inside the copy) and a removal found its folder not yet empty."""
        report = ExecutionReport()
        self._in_backoff = {path for path, _attempts, _next, _error in await self.store.failures(self.lib)}
        first: list[Action] = []
        folders: dict[int, list[Action]] = defaultdict(list)
        rest: list[Action] = []
        for action in actions:
            if _takes_a_folder_away(action):
                folders[(action.path if (src := moved_from(action)) is None else src).count("/")].append(action)
            elif _clears_the_way(action):
                first.append(action)
            else:
                rest.append(action)
        await self._run_all(first, report)
        await self._record_all([a for a in rest if isinstance(a, Record)], report)
        await self._run_all([a for a in rest if not isinstance(a, Record)], report)
        for depth in sorted(folders, reverse=True):
            await self._run_all(folders[depth], report)
        return report

    async def _run_all(self, actions: list[Action], report: ExecutionReport) -> None:
        queue = iter(actions)

        async def worker() -> None:
            # a fixed pool pulling from one iterator: memory stays flat for 100,000 actions
            for action in queue:
                await self._run_one(action, report)

        async with anyio.create_task_group() as tg:
            for _ in range(min(int(self.limiter.total_tokens), len(actions))):
                tg.start_soon(worker)

    async def _run_one(self, action: Action, report: ExecutionReport) -> None:
        async with self.limiter:
            started = time.monotonic()
            try:
                moved = await self._dispatch(action)
            except RemoteChanged as exc:
                report.replanned.append(action)
                report.remote_changes.append(exc)
                log.info("action_replanned", action=action.kind.value, path=action.path, why=str(exc))
                return
            except (Replan, atomic.LocalChanged, PreconditionFailed) as exc:
                report.replanned.append(action)
                if isinstance(exc, FolderRefused):
                    report.refused_folders.append(exc.remote_id)
                log.info("action_replanned", action=action.kind.value, path=action.path, why=str(exc))
                return
            except Unsupported as exc:
                report.unsupported.append((action, str(exc)))
                if _reported.first((self.lib, action.path, str(exc))):
                    log.warning("action_unsupported", action=action.kind.value, path=action.path, reason=str(exc))
                return
            except AuthError:
                raise
            except (ProviderError, OSError, ValueError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                report.failed.append((action, message))
                if self.on_failed is not None:
                    self.on_failed(action)
                async with self.store.transaction(self.lib) as tx:
                    attempts = await tx.record_failure(action.path, message, self.clock(), **FAILURE_BACKOFF)
                log.error(
                    "action_failed",
                    action=action.kind.value,
                    path=action.path,
                    error=message,
                    attempts=attempts,
                    next_step="retried on the next pass (with backoff in daemon mode)",
                )
                return
            if action.path in self._in_backoff:
                async with self.store.batched(self.lib) as tx:
                    await tx.clear_failure(action.path)
            self._finished(action, moved, started, report)

    async def _record_all(self, records: list[Record], report: ExecutionReport) -> None:
        """RECORD actions write a synced row and nothing else: written RECORD_CHUNK at a time, each
        chunk in one group commit, with no task and no limiter slot per path (adopting an existing copy
        of a 300,000-file library spent most of its time on that bookkeeping: 0.2 ms per path)."""
        for i in range(0, len(records), RECORD_CHUNK):
            chunk = records[i : i + RECORD_CHUNK]
            started = time.monotonic()
            async with self.store.batched(self.lib) as tx:
                for action in chunk:
                    await _put_record(tx, action)
                    if action.path in self._in_backoff:
                        await tx.clear_failure(action.path)
            for action in chunk:
                self._finished(action, 0, started, report)

    def _finished(self, action: Action, moved: int, started: float, report: ExecutionReport) -> None:
        """An action done: counted, logged, reported to the progress display."""
        report.done.append(action)
        if isinstance(action, Upload):
            report.bytes_up += moved
        elif isinstance(action, Download):
            report.bytes_down += moved
        if not isinstance(action, Skip):
            # RECORD transfers nothing (both sides already agree): kept out of the info log, so
            # adopting an existing copy of a large library does not print a line per file
            emit = log.debug if isinstance(action, Record) else log.info
            emit(
                "action",
                action=action.kind.value,
                path=action.path,
                src=moved_from(action),
                bytes=moved,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                reason=action.reason,
                **self._detail(action),
            )
        if self.on_progress is not None:
            self.on_progress(action, moved)

    def _detail(self, action: Action) -> dict[str, str]:
        """Extra words for the action line where the outcome is not what the reason suggests."""
        caps = self.provider.capabilities
        replaced = action.remote is not None and not action.remote.is_dir
        if isinstance(action, Upload) and replaced and not caps.can_update and not caps.can_delete:
            return {"detail": "uploaded as a new file; the remote API cannot replace or delete, so the old copy stays"}
        return {}

    def _abs(self, rel: str) -> Path:
        return safe_local_path(self.root, rel)

    async def _dispatch(self, action: Action) -> int:
        """Carry out ``action``; returns the bytes it moved."""
        if isinstance(action, Upload | Download | Record | Skip | Forget | MkdirLocal | MkdirRemote):
            return await self._dispatch_kind(action)
        # anything else may move, rename or remove a folder: the remote folder ids known are dropped
        # before and after it (an upload beside it reads the store again)
        self._folder_ids.clear()
        try:
            return await self._dispatch_kind(action)
        finally:
            self._folder_ids.clear()

    async def _dispatch_kind(self, action: Action) -> int:
        match action:
            case Upload():
                return await self._do_upload(action)
            case Download():
                return await self._do_download(action)
            case Record():
                return await self._do_record(action)
            case DeleteRemote():
                return await self._do_delete_remote(action)
            case TrashLocal():
                return await self._do_trash_local(action)
            case Forget():
                return await self._do_forget(action)
            case MoveRemote():
                return await self._do_move_remote(action)
            case MoveLocal():
                return await self._do_move_local(action)
            case ConflictCopy():
                return await self._do_conflict_copy(action)
            case MkdirLocal():
                return await self._do_mkdir_local(action)
            case MkdirRemote():
                return await self._do_mkdir_remote(action)
            case RmdirLocal():
                return await self._do_rmdir_local(action)
            case RmdirRemote():
                return await self._do_rmdir_remote(action)
            case Skip():
                return await self._do_skip(action)
            case _:
                assert_never(action)

    # -- remote folders ----------------------------------------------------------------------------
    async def remote_parent_id(self, path: str) -> str:
        """The remote id of the folder that holds ``path``, creating missing folders on the way."""
        parent = parent_path(path)
        if parent == "":
            return self.provider.root_id
        known = self._folder_ids.get(parent)
        if known is not None:
            return known
        row = await self.store.remote_at(self.lib, parent)
        if row is not None and row.is_dir:
            self._folder_ids[parent] = row.remote_id
            return row.remote_id
        async with self._mkdir_lock:
            return await self._ensure_folder_locked(parent)

    async def _ensure_folder_locked(self, folder: str) -> str:
        """The remote id of the folder at library path ``folder``; missing folders are created (or, for
        providers that map folders by rule, resolved with ``resolve_local_folder``)."""
        if folder == "":
            return self.provider.root_id
        row = await self.store.remote_at(self.lib, folder)
        if row is not None and row.is_dir:
            return row.remote_id
        if row is not None:
            if not self.provider.capabilities.can_delete:
                # nothing can move the file out of the way (push-only coreplus): say so once, not loop
                raise Unsupported(
                    f"the remote holds a file named {folder!r}, which it cannot remove: the files of the "
                    "local folder of that name are not uploaded; rename the folder to upload them"
                )
            raise Replan(f"remote {folder!r} is a file, not a folder")
        parent_id = await self._ensure_folder_locked(parent_path(folder))
        name = folder.rpartition("/")[2]
        if isinstance(self.provider, FolderResolver):
            item = await self.provider.resolve_local_folder(parent_id, name)
            if item is None:
                raise Unsupported(f"the folder {folder!r} matches no remote folder, so its files are not uploaded")
        elif not self.provider.capabilities.can_mkdir:
            raise Unsupported("the remote API cannot create folders")
        else:
            item = await self.provider.mkdir(parent_id, name)
        await self._record_remote_dir(folder, item)
        return item.remote_id

    async def _record_remote_dir(self, path: str, item: RemoteItem) -> None:
        local = await self.store.local_at(self.lib, path)
        async with self.store.batched(self.lib) as tx:
            await tx.put_remote(remote_row(item, path))
            if local is not None and local.is_dir:
                await tx.put_synced(synced_row(path, local, item))
        log.info("action", action="mkdir_remote", path=path, bytes=0, duration_ms=0, reason="parent of an upload")

    # -- handlers ----------------------------------------------------------------------------------
    async def _do_upload(self, action: Upload) -> int:
        local = action.local
        assert local is not None and local.digest is not None
        source = self._abs(action.path)
        if not atomic.stat_matches(source, local):
            raise Replan("local file changed since it was scanned")
        # the provider reads the file only through this: a symlink or another file swapped in after
        # the check above is refused (LocalChanged: re-planned), never followed or sent
        upload = UploadSource.planned(source, local)
        existing = action.remote
        replacing = False
        if existing is not None and not existing.is_dir and self.provider.capabilities.can_update:
            item = await self.provider.update(remote_item(existing), upload)
        else:
            parent_id = await self.remote_parent_id(action.path)
            name = action.path.rpartition("/")[2]
            if existing is not None and not existing.is_dir and self.provider.capabilities.can_delete:
                base = action.synced.digest if action.synced is not None else None
                item = await self._replace(action.path, existing, base, parent_id, name, upload, local)
                replacing = True
            else:
                item = await self.provider.upload(parent_id, name, upload)
        sent: str | None = local.digest
        if not atomic.stat_matches(source, local):
            sent = await self._what_was_sent(item)
        async with self.store.batched(self.lib) as tx:
            if replacing:
                await tx.end_replace(action.path)
            await tx.put_remote(remote_row(item, action.path))
            # the planned stat stays in the row: a file changed meanwhile is hashed again by the next
            # scan and compared with what the server really holds (None: unknown, pushed again)
            await tx.put_synced(dataclasses.replace(synced_row(action.path, local, item), digest=sent))
        return local.size

    async def _what_was_sent(self, item: RemoteItem) -> str | None:
        """The MD5 of what the server holds after an upload during which the file changed: the bytes
        read may be the old version, the new one or a mix. The server's digest where it lists one,
        else the content itself, streamed and hashed; None (unknown: pushed again) when neither can be
        had. Recording the planned digest instead would make the next pass upload the same content
        a second time, or never upload the edit (found by the simulation)."""
        if item.digest is not None:
            return item.digest
        held = await remote_md5(self.provider, item)
        log.info("upload_source_changed", remote_id=item.remote_id, detail="the file changed while it was sent")
        return held[1] if held else None

    async def _replace(
        self,
        path: str,
        old: RemoteRow,
        base_digest: str | None,
        parent_id: str,
        name: str,
        source: UploadSource,
        local: LocalRow,
    ) -> RemoteItem:
        """Upload the new version, then delete the old one: never delete first, so the remote always
        holds a complete version. The old one is confirmed on the server before the upload and again
        before its delete (``retire``); if it changed meanwhile, our upload is withdrawn and the path
        re-planned (a conflict copy), so a colleague's edit is never deleted. The intent is committed
        before the upload and the new id right after it, so a stop between the calls is finished by
        ``recover.finish_replacements`` on the next pass instead of leaving two remote files with one
        name (or uploading the content twice)."""
        assert local.digest is not None
        await retire.confirm(self.provider, old)
        async with self.store.transaction(self.lib) as tx:
            await tx.begin_replace(path, old.remote_id, parent_id, local.size, local.digest)
        item = await self.provider.upload(parent_id, name, source)
        async with self.store.transaction(self.lib) as tx:
            await tx.replace_uploaded(path, item.remote_id)
        try:
            await retire.retire(self.provider, self.root, old, base_digest)
        except RemoteChanged:
            await self._withdraw(path, item, source.path, local)
            raise
        return item  # the caller ends the replacement in the transaction that records the new version

    async def _withdraw(self, path: str, item: RemoteItem, source: Path, local: LocalRow) -> None:
        """Take back the upload of a replacement whose old version changed on the server meanwhile. Its
        bytes are still on disk when the source is unchanged, so deleting it loses nothing; otherwise it
        stays on the server as a file of its own (the next listing shows it)."""
        if atomic.stat_matches(source, local):
            try:
                await self.provider.delete(item)
            except NotFound:
                pass
            log.info(
                "upload_withdrawn", path=path, remote_id=item.remote_id, detail="the old version changed meanwhile"
            )
        async with self.store.transaction(self.lib) as tx:
            await tx.end_replace(path)

    async def _do_download(self, action: Download) -> int:
        remote = action.remote
        assert remote is not None
        atomic.check_space(self.root, remote.size)
        sink = _RestartableSink(self.root, action.path)
        try:
            await self.provider.download(remote_item(remote), sink)
            new_local = await self._commits.commit(sink.target, remote.size, remote.digest, action.local)
        finally:
            await sink.target.close()
        async with self.store.batched(self.lib) as tx:
            await tx.put_local(new_local)
            await tx.put_synced(synced_row(action.path, new_local, remote))
        return new_local.size

    async def _do_record(self, action: Record) -> int:
        """A RECORD on its own (``run`` writes them together: ``_record_all``)."""
        async with self.store.batched(self.lib) as tx:
            await _put_record(tx, action)
        return 0

    async def _do_delete_remote(self, action: DeleteRemote) -> int:
        remote = action.remote
        assert remote is not None
        if remote.is_dir:
            return await self._do_rmdir_remote(action)
        await retire.retire(self.provider, self.root, remote, action.synced.digest if action.synced else None)
        log.info(
            "remote_deleted",
            path=action.path,
            remote_id=remote.remote_id,
            permanent=self.provider.capabilities.delete_is_permanent,
        )
        async with self.store.batched(self.lib) as tx:
            await tx.delete_remote(action.path)
            await tx.delete_synced(action.path)
        return 0

    async def _do_trash_local(self, action: TrashLocal) -> int:
        local = action.local
        assert local is not None
        if local.is_dir:
            return await self._do_rmdir_local(action)
        where = await anyio.to_thread.run_sync(ops.trash_file, self.root, action.path, local)
        log.info("moved_to_trash", path=action.path, trash=str(where.relative_to(self.root)))
        async with self.store.batched(self.lib) as tx:
            await tx.delete_local(action.path)
            await tx.delete_synced(action.path)
        return 0

    async def _do_forget(self, action: Forget) -> int:
        async with self.store.batched(self.lib) as tx:
            await tx.delete_synced(action.path)
        return 0

    async def _do_move_remote(self, action: MoveRemote) -> int:
        remote, local, base = action.remote, action.local, action.synced
        assert remote is not None and local is not None
        parent_id = await self.remote_parent_id(action.path)
        item = await self.provider.move(remote_item(remote), parent_id, action.path.rpartition("/")[2])
        async with self.store.batched(self.lib) as tx:
            if remote.is_dir:
                # one call moved the whole folder: its remote and synced rows follow it
                await tx.move_subtree(action.src, action.path)
            else:
                await tx.delete_remote(action.src)
                await tx.delete_synced(action.src)
            await tx.put_remote(remote_row(item, action.path))
            moved: RemoteRow | RemoteItem = item
            if not remote.is_dir and _content_differs(item, base):
                # the file changed on the server since it was listed (the move carries no precondition):
                # the base keeps the version the plan knew, so the next pass sees that change and pulls
                # it instead of taking the new content for the local one (found by the kill -9 run)
                moved = remote
            await tx.put_synced(synced_row(action.path, local, moved, digest=base.digest if base else None))
        return 0

    async def _do_move_local(self, action: MoveLocal) -> int:
        local, remote = action.local, action.remote
        assert local is not None and remote is not None
        new_local = await anyio.to_thread.run_sync(ops.move_local, self.root, action.src, action.path, local)
        async with self.store.batched(self.lib) as tx:
            if local.is_dir:
                # one rename moved the whole folder: its local and synced rows follow it
                await tx.move_subtree(action.src, action.path)
            else:
                await tx.delete_local(action.src)
                await tx.delete_synced(action.src)
            await tx.put_local(new_local)
            # the base digest stays: a local edit made before the move is still to be pushed
            base_digest = action.synced.digest if action.synced is not None and not local.is_dir else None
            await tx.put_synced(synced_row(action.path, new_local, remote, digest=base_digest))
        return 0

    async def _same_content(self, local: LocalRow, remote: RemoteRow) -> bool:
        """Whether the remote file holds exactly the local content, for providers without digests:
        streams the remote content through MD5 (nothing is written). This is how an upload whose commit
        was lost in a crash is recognised on a provider that lists no digest (found by the simulation:
        it was taken for a conflict and the content was uploaded a second time as a conflict copy)."""
        if local.is_dir or remote.is_dir or local.digest is None or remote.digest is not None:
            return False
        if remote.size is not None and remote.size != local.size:
            return False
        return await remote_md5(self.provider, remote_item(remote)) == (local.size, local.digest)

    async def _do_conflict_copy(self, action: ConflictCopy) -> int:
        """Rename the local item at ``src`` to the conflict-copy name ``path`` (re-picked if taken)."""
        local = action.local
        assert local is not None
        original = action.src
        if action.remote is not None and await self._same_content(local, action.remote):
            if not atomic.stat_matches(self._abs(original), local):
                raise Replan("local file changed since it was scanned")
            async with self.store.transaction(self.lib) as tx:
                await tx.put_synced(synced_row(original, local, action.remote))
            log.info("same_content_recorded", path=original, remote_id=action.remote.remote_id)
            return 0
        copy = action.path
        if self._abs(copy).exists():
            copy = conflict_copy_name(original, self.now_label, lambda p: self._abs(p).exists())
        new_local = await anyio.to_thread.run_sync(ops.rename_conflict_copy, self.root, original, copy, local)
        log.warning(
            "conflict",
            path=original,
            conflict_copy=copy,
            detail="both sides changed; the remote version keeps the name, the local version is kept as a copy",
        )
        async with self.store.batched(self.lib) as tx:
            if local.is_dir:
                # the folder's contents moved with it: their rows follow, so the next round pushes the
                # copy whole (it used to wait for the next full scan)
                await tx.move_subtree(original, copy, local_only=True)
            else:
                await tx.delete_local(original)
            await tx.put_local(new_local)
        return 0

    async def _do_mkdir_local(self, action: MkdirLocal) -> int:
        remote = action.remote
        assert remote is not None
        new_local = await anyio.to_thread.run_sync(ops.make_dir, self.root, action.path)
        async with self.store.batched(self.lib) as tx:
            await tx.put_local(new_local)
            await tx.put_synced(synced_row(action.path, new_local, remote))
        return 0

    async def _do_mkdir_remote(self, action: MkdirRemote) -> int:
        local = action.local
        assert local is not None
        async with self._mkdir_lock:
            existing = await self.store.remote_at(self.lib, action.path)
            if existing is not None:
                raise Replan("remote folder appeared meanwhile")
            await self._ensure_folder_locked(action.path)
        return 0

    async def _do_rmdir_local(self, action: RmdirLocal | TrashLocal) -> int:
        removed = await anyio.to_thread.run_sync(ops.remove_dir, self.root, action.path, self.ignore)
        if not removed:
            raise Replan("local folder is not empty")
        async with self.store.batched(self.lib) as tx:
            # recursive: a folder that held only ignored entries went to the trash whole
            await tx.delete_local(action.path, recursive=True)
            await tx.delete_synced(action.path)
        return 0

    async def _do_rmdir_remote(self, action: RmdirRemote | DeleteRemote) -> int:
        remote = action.remote
        assert remote is not None
        if await self.store.remote_children(self.lib, remote.remote_id):
            raise Replan("remote folder is not empty")
        if self.provider.capabilities.can_rmdir:
            try:
                await retire.retire(self.provider, self.root, remote, None)
            except PreconditionFailed as exc:
                if remote.remote_id not in self.kept_folders:
                    # the remote tree shows the folder empty, the server says it is not: the tree may be
                    # stale (a colleague put a file into it after the plan). Listed again in full, the
                    # new item is pulled: the change wins over the delete. Taken for a folder the server
                    # keeps, that file was left out of the pass and the folder reported as one the API
                    # cannot remove (found by the simulation)
                    raise FolderRefused(
                        remote.remote_id,
                        f"the server refuses to remove the folder {action.path!r} ({exc}): listing it again",
                    ) from exc
                # a full listing made since an earlier refusal showed it empty as well: it keeps items its
                # listing leaves out (TimeTap: deleted ones). Left on the server and reported, instead
                # of being asked again in every round (found by the simulation)
                raise Unsupported(
                    f"the server keeps the folder {action.path!r}: it still holds items its listing does not "
                    f"show ({exc}); it is left on the server"
                ) from exc
            self.kept_folders.discard(remote.remote_id)
        async with self.store.batched(self.lib) as tx:
            await tx.delete_remote(action.path)
            await tx.delete_synced(action.path)
        return 0

    async def _do_skip(self, action: Skip) -> int:
        return 0
