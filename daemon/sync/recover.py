"""Finish replacement uploads that a crash cut short.

Providers that cannot replace content in place (Cliniko, TimeTap) get a changed file as "upload the
new file, then delete the old one" — never the other way round, so the remote always holds a complete
version. The executor records the intent in ``pending_replace`` before the upload. If the process dies
between the two calls, the next listing shows two remote files with one name; this module, run after
observing the remote and before planning, recognises our own upload (same folder, not in the synced
tree, same size, same digest where the provider lists one), adopts it as the synced version of the
path and deletes the old file. Without it the next pass would take the extra file for someone else's
upload and mirror it as a second local file.
"""

from __future__ import annotations

import structlog

from daemon.providers.base import NotFound, Provider, RemoteItem
from daemon.state.store import PendingReplace, StateStore
from daemon.sync.model import RemoteRow, SyncedRow

log = structlog.get_logger(__name__)


async def _orphan_upload(store: StateStore, lib: int, pending: PendingReplace) -> RemoteRow | None:
    """The remote file our interrupted upload created, if exactly one candidate matches."""
    siblings = [
        r
        for r in await store.remote_children(lib, pending.parent_id)
        if not r.is_dir
        and r.remote_id != pending.old_remote_id
        and r.size == pending.size
        and (r.digest is None or r.digest == pending.digest)
    ]
    known = await store.synced_remote_ids(lib, [r.remote_id for r in siblings])
    candidates = [r for r in siblings if r.remote_id not in known]
    return candidates[0] if len(candidates) == 1 else None


async def finish_replacements(store: StateStore, lib: int, provider: Provider, *, full_listing: bool) -> set[str]:
    """Complete every replacement left half-done. Returns the paths still waiting (to be left out of
    this pass's plan): an upload the server acknowledged but whose file no incremental listing has
    shown yet."""
    waiting: set[str] = set()
    for pending in await store.pending_replaces(lib):
        if pending.new_remote_id is not None:
            new = await store.remote_by_id(lib, pending.new_remote_id)
            if new is None and not full_listing:
                waiting.add(pending.path)
                continue
        else:
            new = await _orphan_upload(store, lib, pending)
        if new is None:
            # the upload never reached the server: the plan pushes the file again
            async with store.transaction(lib) as tx:
                await tx.end_replace(pending.path)
            log.info(
                "replace_abandoned", path=pending.path, detail="the new upload is not on the server; it is pushed again"
            )
            continue
        old = await store.remote_by_id(lib, pending.old_remote_id)
        try:
            await provider.delete(
                RemoteItem(remote_id=pending.old_remote_id, parent_id=pending.parent_id, name=pending.path)
            )
        except NotFound:
            pass
        local = await store.local_at(lib, pending.path)
        async with store.transaction(lib) as tx:
            if old is not None:
                await tx.delete_remote(old.path)
            if new.path != pending.path:
                await tx.delete_remote(new.path)
            await tx.put_remote(
                RemoteRow(
                    path=pending.path,
                    remote_id=new.remote_id,
                    parent_id=new.parent_id,
                    size=new.size,
                    digest=new.digest,
                    version=new.version,
                    modified=new.modified,
                )
            )
            same = local is not None and local.digest == pending.digest
            await tx.put_synced(
                SyncedRow(
                    path=pending.path,
                    digest=pending.digest,
                    size=pending.size,
                    remote_id=new.remote_id,
                    remote_version=new.version,
                    local_mtime_ns=local.mtime_ns if same and local else 0,
                    local_inode=local.inode if same and local else 0,
                )
            )
            await tx.end_replace(pending.path)
        log.warning(
            "replace_finished",
            path=pending.path,
            new_remote_id=new.remote_id,
            old_remote_id=pending.old_remote_id,
            detail="an upload-new-then-delete-old cut short by a stop was completed",
        )
    return waiting
