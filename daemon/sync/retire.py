"""Destroying remote content safely (DESIGN rules 1 and 2): confirm, keep a copy, then delete.

The remote tree a plan was made on may be a whole poll interval old: a watcher-triggered pass does not
poll first. So every action that removes or replaces remote content asks the server for the item right
before it acts (``Provider.current``) and goes on only when the item still holds the version the plan
was made on: same parent, same name, same version token (or the same digest). Otherwise it raises
:class:`RemoteChanged` carrying what the server answered; the pass records that answer in the remote
tree and re-plans (a changed-vs-deleted pulls the remote version, a changed-vs-changed makes a conflict
copy). Where the provider's delete is permanent (TimeTap), the bytes of the version about to be
destroyed are downloaded, verified against the planned digest and kept in ``ROOT/.libmirror/trash/``
before the delete is sent. What remains is the duration of one request between the check and the
delete, in which a change on the server cannot be seen.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from daemon.local import atomic
from daemon.local.names import possible_local_names, sanitize_name
from daemon.providers.base import Provider
from daemon.vocab import DigestMismatch, NotFound, RemoteItem, RemoteRow

log = structlog.get_logger(__name__)


class RemoteChanged(Exception):
    """The remote item no longer holds the version a plan was made on: record ``fresh`` (None: gone
    from where it was) in the remote tree and plan again. Not an error: no backoff."""

    def __init__(self, planned: RemoteRow, fresh: RemoteItem | None, why: str) -> None:
        super().__init__(why)
        self.planned = planned
        self.fresh = fresh


def remote_item(row: RemoteRow) -> RemoteItem:
    return RemoteItem(
        remote_id=row.remote_id,
        parent_id=row.parent_id,
        name=row.name if row.name is not None else row.path.rpartition("/")[2],
        is_dir=row.is_dir,
        size=row.size,
        digest=row.digest,
        version=row.version,
        modified=row.modified,
    )


def difference(planned: RemoteRow, fresh: RemoteItem | None) -> str | None:
    """How the server's answer differs from the planned row; None when it still holds that version."""
    if fresh is None:
        return "it is no longer on the server where the plan saw it"
    if fresh.is_dir != planned.is_dir:
        return "it changed kind"
    if fresh.parent_id != planned.parent_id:
        return "it was moved (or deleted into a trash) on the server"
    if planned.name is not None:
        if fresh.name != planned.name:
            return f"it was renamed on the server to {fresh.name!r}"
    elif (clean := sanitize_name(fresh.name)) is None or planned.path.rpartition("/")[2] not in possible_local_names(
        clean, fresh.remote_id
    ):
        return f"it was renamed on the server to {fresh.name!r}"
    if planned.is_dir or fresh.version == planned.version:
        return None
    if fresh.digest is not None and fresh.digest == planned.digest:
        return None  # a new version token over the same bytes (e.g. metadata edited)
    return "its content changed on the server"


async def confirm(provider: Provider, planned: RemoteRow) -> RemoteItem:
    """The server's current answer for ``planned``; RemoteChanged unless it still holds that version."""
    fresh = await provider.current(remote_item(planned))
    why = difference(planned, fresh)
    if why is not None:
        raise RemoteChanged(planned, fresh, f"remote {planned.path!r} changed since the plan: {why}")
    assert fresh is not None
    return fresh


async def keep_copy(provider: Provider, root: Path, planned: RemoteRow, digest: str | None) -> Path:
    """Download the planned version into the local trash under its library path, verified against its
    size and ``digest`` (its expected MD5). Bytes that are not that version (it changed meanwhile, or its
    download URL is gone) raise RemoteChanged with the server's current answer."""
    target = atomic.open_download(root, planned.path)
    try:
        await provider.download(remote_item(planned), target)
        kept = await target.commit_to_trash(planned.size, digest)
    except (DigestMismatch, NotFound) as exc:
        fresh = await provider.current(remote_item(planned))
        raise RemoteChanged(
            planned, fresh, f"remote {planned.path!r} does not hold the planned version: {exc}"
        ) from exc
    finally:
        await target.close()
    log.info("remote_version_kept", path=planned.path, remote_id=planned.remote_id, trash=str(kept.relative_to(root)))
    return kept


async def retire(provider: Provider, root: Path, planned: RemoteRow, digest: str | None) -> None:
    """Delete the remote item of ``planned`` if, and only if, the server still holds the planned
    version. Where the delete is permanent, the bytes of that version (``digest``: their expected MD5)
    are kept in the local trash first; the check comes after the copy, right before the delete, so
    what stays unseen is the time of one request."""
    if provider.capabilities.delete_is_permanent and not planned.is_dir:
        await keep_copy(provider, root, planned, digest)
    await confirm(provider, planned)
    try:
        await provider.delete(remote_item(planned))
    except NotFound:
        pass
