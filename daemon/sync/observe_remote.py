"""Remote observation: provider listings → the remote tree of the state store.

Every remote name passes through the one sanitiser (``daemon.local.names``) here, folder by folder, so
that two remote entries never share a local path and an entry keeps its local name across listings.

A full listing is staged in the store (``remote_listing``) while it is paged in; only when it is
complete are names resolved and the remote tree replaced (rows not seen are swept). A listing that
fails half-way therefore changes nothing. Incremental polls apply the changed files one by one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from daemon.local.ignore import IgnoreMatcher
from daemon.local.names import NameRequest, assign_local_names, join
from daemon.providers.base import ListingHorizon, Provider
from daemon.state.store import StateStore
from daemon.vocab import InvalidResponse, RemoteItem, RemoteRow

log = structlog.get_logger(__name__)

CURSOR_MODIFIED = "remote_modified"
CURSOR_GENERATION = "remote_generation"


@dataclass
class RemoteObservation:
    """What one poll saw."""

    kind: str  # "full" | "incremental"
    files: int = 0
    folders: int = 0
    changed: int = 0
    left: int = 0  # entries that left the library (deleted or moved out)
    skipped: list[str] = field(default_factory=list)


def _local_name(row: RemoteRow) -> str:
    return row.path.rpartition("/")[2]


def _row(item: RemoteItem, path: str) -> RemoteRow:
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


MAX_SIZE = 2**63 - 1  # what the state store (SQLite INTEGER) can hold; no real file comes close


def _checked(items: list[RemoteItem]) -> list[RemoteItem]:
    """Refuse a listing with an impossible size: the whole poll fails (nothing is swept or pulled on
    the strength of it) instead of one garbage row crashing the store or passing for a real file."""
    for item in items:
        if item.size is not None and not 0 <= item.size <= MAX_SIZE:
            raise InvalidResponse(
                f"the server listed {item.name!r} ({item.remote_id}) with an impossible size {item.size}"
            )
    return items


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two timestamps of the same server (the provider keeps them sortable as strings)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class RemoteObserver:
    """Keeps one library's remote tree current."""

    def __init__(self, store: StateStore, lib: int, provider: Provider, ignore: IgnoreMatcher) -> None:
        self.store = store
        self.lib = lib
        self.provider = provider
        self.ignore = ignore
        self._outside: set[str] = set()

    async def _generation(self) -> int:
        value = await self.store.get_cursor(self.lib, CURSOR_GENERATION)
        return int(value) if value else 0

    async def full(self) -> RemoteObservation:
        """List everything under the root and replace the remote tree with it."""
        obs = RemoteObservation(kind="full")
        self._outside.clear()
        newest: str | None = None
        folders = await self.provider.list_folders()
        async with self.store.transaction(self.lib) as tx:
            await tx.clear_listing()
            await tx.add_listing(folders)
        for f in folders:
            newest = _later(newest, f.modified)
        async for page in self.provider.list_files():
            async with self.store.transaction(self.lib) as tx:
                await tx.add_listing(_checked(page))
            for item in page:
                newest = _later(newest, item.modified)
        if isinstance(self.provider, ListingHorizon):
            newest = _later(newest, self.provider.listing_newest)  # what the walk saw outside the library too
        generation = await self._generation() + 1
        root = self.provider.root_id
        queue: deque[tuple[str, str]] = deque([(root, "")])
        while queue:
            parent_id, parent_path = queue.popleft()
            children = await self.store.listing_children(self.lib, parent_id)
            if not children:
                continue
            current = {r.remote_id: r for r in await self.store.remote_children(self.lib, parent_id)}
            requests = []
            for c in children:
                row = current.get(c.remote_id)
                held = (row.path.rpartition("/")[2], row.name) if row is not None else (None, None)
                requests.append(NameRequest(c.remote_id, c.name, *held))
            names = assign_local_names(requests, await self._local_only(parent_path, current.values()))
            rows: list[RemoteRow] = []
            unchanged: list[str] = []  # stored exactly so: only marked as seen by this generation
            for child in children:
                name = names.get(child.remote_id)
                if name is None:
                    obs.skipped.append(f"{parent_path}/{child.name}".lstrip("/"))
                    continue
                path = join(parent_path, name)
                if self.ignore.matches(path, child.is_dir):
                    continue
                row = _row(child, path)
                if current.get(child.remote_id) == row:
                    unchanged.append(path)
                else:
                    rows.append(row)
                if child.is_dir:
                    obs.folders += 1
                    queue.append((child.remote_id, path))
                else:
                    obs.files += 1
            async with self.store.transaction(self.lib) as tx:
                await tx.put_remotes(rows, generation)
                await tx.touch_remotes(unchanged, generation)
        async with self.store.transaction(self.lib) as tx:
            obs.left = await tx.sweep_remote(generation)
            await tx.clear_listing()
            await tx.set_cursor(CURSOR_GENERATION, str(generation))
            if newest is not None:
                await tx.set_cursor(CURSOR_MODIFIED, newest)
        return obs

    async def incremental(self) -> RemoteObservation:
        """Apply the files changed since the cursor; falls back to ``full`` without a cursor."""
        since = await self.store.get_cursor(self.lib, CURSOR_MODIFIED)
        if since is None or not self.provider.capabilities.changed_since:
            return await self.full()
        obs = RemoteObservation(kind="incremental")
        generation = await self._generation()
        newest: str | None = since
        outside = self._outside  # folders known to be outside the library (the trash), until a full listing
        async for page in self.provider.list_changed(since):
            known = await self.store.remote_by_ids(self.lib, [item.remote_id for item in page])
            changes: list[tuple[RemoteItem, str | None]] = []
            for item in _checked(page):
                newest = _later(newest, item.modified)
                seen = known.get(item.remote_id)
                if (
                    seen is not None
                    and seen.modified == item.modified
                    and seen.version == item.version
                    and seen.parent_id == item.parent_id
                ):
                    continue  # inside the overlap window again, unchanged since we applied it
                changes.append((item, await self._parent_path(item, generation, outside)))
            # departures first: a name an item leaves behind is free for the item that arrives under it
            # in the same answer (a Cliniko attachment archived and re-added under its name), so the
            # newcomer is named as a full listing would name it, not with a suffix for ever
            for item, parent_path in sorted(changes, key=lambda c: c[1] is not None):
                await self._apply_change(item, parent_path, generation, obs)
        if newest is not None and newest != since:
            async with self.store.transaction(self.lib) as tx:
                await tx.set_cursor(CURSOR_MODIFIED, newest)
        return obs

    async def record_fresh(self, planned: RemoteRow, fresh: RemoteItem | None) -> None:
        """Put what the server answered a pre-action check into the remote tree, in place of the
        planned row (see ``daemon.sync.retire``): the re-plan then works on the server's current
        version. None (gone from where it was) drops the row; a later listing shows where it went."""
        if fresh is None:
            known = await self.store.remote_at(self.lib, planned.path)
            if known is not None and known.remote_id == planned.remote_id:
                async with self.store.transaction(self.lib) as tx:
                    await tx.delete_remote(planned.path, recursive=planned.is_dir)
            return
        generation = await self._generation()
        parent_path = await self._parent_path(fresh, generation, self._outside)
        await self._apply_change(fresh, parent_path, generation, RemoteObservation(kind="check"))

    async def _local_only(self, folder: str, held: Iterable[RemoteRow]) -> list[str]:
        """Names of the local entries of ``folder`` that no remote row holds (a new remote name must not
        differ from one of them only in case)."""
        mapped = {_local_name(r) for r in held}
        return [name for name in await self.store.local_names(self.lib, folder) if name not in mapped]

    async def _folder_path(self, folder_id: str, generation: int, outside: set[str]) -> str | None:
        """The library path of a folder, fetching unknown folders up to the root; None if outside."""
        if folder_id == self.provider.root_id:
            return ""
        if folder_id in outside:
            return None
        known = await self.store.remote_by_id(self.lib, folder_id)
        if known is not None and known.is_dir:
            return known.path
        folder = await self.provider.get_folder(folder_id)
        if folder is None or folder.parent_id is None:
            outside.add(folder_id)
            return None
        parent_path = await self._folder_path(folder.parent_id, generation, outside)
        if parent_path is None:
            outside.add(folder_id)
            return None
        path = await self._place(folder, parent_path, generation)
        if path is None:
            outside.add(folder_id)
        return path

    async def _place(self, item: RemoteItem, parent_path: str, generation: int) -> str | None:
        """Name ``item`` among its known siblings and write its row; None if the name is unusable."""
        assert item.parent_id is not None
        children = await self.store.remote_children(self.lib, item.parent_id)
        siblings = [r for r in children if r.remote_id != item.remote_id]
        previous = await self.store.remote_by_id(self.lib, item.remote_id)
        same_folder = previous is not None and previous.parent_id == item.parent_id
        current = previous.path.rpartition("/")[2] if previous and same_folder else None
        requests = [
            NameRequest(r.remote_id, r.name if r.name is not None else _local_name(r), _local_name(r), r.name)
            for r in siblings
        ]
        requests.append(
            NameRequest(item.remote_id, item.name, current, previous.name if previous and same_folder else None)
        )
        name = assign_local_names(requests, await self._local_only(parent_path, children)).get(item.remote_id)
        if name is None:
            return None
        path = join(parent_path, name)
        if self.ignore.matches(path, item.is_dir):
            return None
        async with self.store.transaction(self.lib) as tx:
            if previous is not None and previous.path != path:
                await tx.delete_remote(previous.path, recursive=previous.is_dir)
            await tx.put_remote(_row(item, path), generation)
        return path

    async def _parent_path(self, item: RemoteItem, generation: int, outside: set[str]) -> str | None:
        """The library path of the folder holding ``item``; None when it is outside the library."""
        if item.parent_id is None:
            return None
        return await self._folder_path(item.parent_id, generation, outside)

    async def _apply_change(
        self, item: RemoteItem, parent_path: str | None, generation: int, obs: RemoteObservation
    ) -> None:
        if parent_path is None:
            previous = await self.store.remote_by_id(self.lib, item.remote_id)
            if previous is not None:
                async with self.store.transaction(self.lib) as tx:
                    await tx.delete_remote(previous.path, recursive=previous.is_dir)
                obs.left += 1
            return
        path = await self._place(item, parent_path, generation)
        if path is None:
            obs.skipped.append(join(parent_path, item.name))
            return
        obs.changed += 1
