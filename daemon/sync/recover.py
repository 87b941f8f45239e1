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

import dataclasses
from pathlib import Path

import structlog

from daemon.local.names import possible_local_names
from daemon.providers.base import Provider
from daemon.state.store import PendingReplace, StateStore
from daemon.sync import retire
from daemon.sync.execute import remote_md5
from daemon.sync.retire import RemoteChanged, remote_item
from daemon.vocab import NotFound, ProviderError, RemoteRow, SyncedRow

log = structlog.get_logger(__name__)


async def _orphan_upload(store: StateStore, lib: int, provider: Provider, pending: PendingReplace) -> RemoteRow | None:
    """The remote file our interrupted upload created, if exactly one candidate matches: same folder,
    a name our upload could have been given, not in the synced tree, same size, and the same content
    (the listed digest, or for providers without one the content itself, streamed and hashed). Size
    alone is not proof: someone else's new file of the same size in that folder is not ours (found by
    the soak: it was adopted as the new version of an unrelated file)."""
    parent, _, name = pending.path.rpartition("/")
    siblings = [
        r
        for r in await store.remote_children(lib, pending.parent_id)
        if not r.is_dir
        and r.remote_id != pending.old_remote_id
        and r.size == pending.size
        and (r.digest is None or r.digest == pending.digest)
        and (r.name == name or r.path.rpartition("/")[2] in possible_local_names(name, r.remote_id))
        and r.path.rpartition("/")[0] == parent
    ]
    known = await store.synced_remote_ids(lib, [r.remote_id for r in siblings])
    candidates = [r for r in siblings if r.remote_id not in known]
    if len(candidates) != 1:
        return None
    found = candidates[0]
    if found.digest is None and await remote_md5(provider, remote_item(found)) != (pending.size, pending.digest):
        return None
    return found


async def finish_replacements(
    store: StateStore, lib: int, provider: Provider, root: Path, *, full_listing: bool
) -> set[str]:
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
            new = await _orphan_upload(store, lib, provider, pending)
        if new is None:
            # the upload never reached the server: the plan pushes the file again
            async with store.transaction(lib) as tx:
                await tx.end_replace(pending.path)
            log.info(
                "replace_abandoned", path=pending.path, detail="the new upload is not on the server; it is pushed again"
            )
            continue
        ours = pending.new_remote_id is None or await _holds_upload(provider, new, pending)
        if not await _finish(store, lib, provider, root, pending, new, ours=ours):
            waiting.add(pending.path)
    return waiting


async def _retire_old(
    store: StateStore, lib: int, provider: Provider, root: Path, pending: PendingReplace
) -> bool | None:
    """Delete the old version if the server still holds the version our base recorded (checked like
    every destructive action, with a copy in the trash where the delete is permanent). Returns False
    when it changed (someone edited it meanwhile): it stays, and so does its new content; None when
    the server could not be asked (tried again on the next pass)."""
    old = await store.remote_by_id(lib, pending.old_remote_id)
    if old is None:
        return True  # no longer where we left it: nothing of ours to delete
    base = await store.synced_at(lib, pending.path)
    try:
        if base is None or base.remote_id != old.remote_id or base.remote_version != old.version:
            raise RemoteChanged(old, None, "the listing shows another version than the one replaced")
        await retire.retire(provider, root, old, base.digest)
    except RemoteChanged as exc:
        log.warning("replace_old_changed", path=pending.path, remote_id=old.remote_id, why=str(exc))
        return False
    except (ProviderError, OSError) as exc:
        log.warning(
            "replace_finish_deferred",
            path=pending.path,
            error=f"{type(exc).__name__}: {exc}",
            next_step="the interrupted replacement is finished on a later pass",
        )
        return None
    return True


async def _withdraw(store: StateStore, lib: int, provider: Provider, pending: PendingReplace, new: RemoteRow) -> bool:
    """The old version changed after our upload: take the upload back when its bytes are still on disk
    (the plan then makes a conflict copy of the local file); otherwise it stays a file of its own.
    Returns False when the server could not be reached (tried again on the next pass)."""
    local = await store.local_at(lib, pending.path)
    if local is not None and local.digest == pending.digest:
        try:
            await provider.delete(remote_item(new))
        except NotFound:
            pass
        except ProviderError as exc:
            log.warning("replace_finish_deferred", path=pending.path, error=f"{type(exc).__name__}: {exc}")
            return False
        async with store.transaction(lib) as tx:
            await tx.delete_remote(new.path)
            await tx.end_replace(pending.path)
        log.info("upload_withdrawn", path=pending.path, remote_id=new.remote_id, detail="the old version changed")
        return True
    async with store.transaction(lib) as tx:
        await tx.end_replace(pending.path)
    return True


async def _holds_upload(provider: Provider, new: RemoteRow, pending: PendingReplace) -> bool:
    """Whether the server still holds the bytes our interrupted upload sent under ``new``: someone may
    have edited it since (its listed digest, or the content itself where the provider lists none)."""
    if new.size is not None and new.size != pending.size:
        return False
    if new.digest is not None:
        return new.digest == pending.digest
    return await remote_md5(provider, remote_item(new)) == (pending.size, pending.digest)


async def _finish(
    store: StateStore,
    lib: int,
    provider: Provider,
    root: Path,
    pending: PendingReplace,
    new: RemoteRow,
    *,
    ours: bool,
) -> bool:
    """Retire the old version; the new upload becomes the synced version of the path, unless someone
    else's file took the name meanwhile (e.g. an edit made in the web app): that one keeps it, ours
    stays a file of its own under the name the listing gave it, and the plan compares the local file
    with the one now holding the name. If the old version itself changed, it is kept and our upload
    withdrawn (see ``_withdraw``)."""
    old = await store.remote_by_id(lib, pending.old_remote_id)
    retired = await _retire_old(store, lib, provider, root, pending)
    if retired is None:
        return False
    if not retired:
        return await _withdraw(store, lib, provider, pending, new)
    holder = await store.remote_at(lib, pending.path)
    taken = holder is not None and holder.remote_id not in (pending.old_remote_id, new.remote_id)
    local = await store.local_at(lib, pending.path)
    async with store.transaction(lib) as tx:
        if old is not None and not (taken and old.path == pending.path):
            await tx.delete_remote(old.path)
        if not taken:
            if new.path != pending.path:
                await tx.delete_remote(new.path)
            await tx.put_remote(dataclasses.replace(new, path=pending.path))
            same = local is not None and local.digest == pending.digest
            await tx.put_synced(
                SyncedRow(
                    path=pending.path,
                    digest=pending.digest,
                    size=pending.size,
                    remote_id=new.remote_id,
                    # edited on the server since our upload: no version of ours, so the plan sees the
                    # change (found by the soak: a colleague's edit was taken for our upload)
                    remote_version=new.version if ours else "",
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
        new_path=pending.path if not taken else new.path,
        detail="an upload-new-then-delete-old cut short by a stop was completed"
        + ("; another file holds the name now, so the new upload keeps its own" if taken else ""),
    )
    return True
