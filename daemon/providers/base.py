"""What every provider offers the engine: one protocol (``Provider``), and ``FolderResolver`` for
providers whose folders are not created by name.

Capabilities, raw listing items and provider errors are shared vocabulary (``daemon.vocab``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from daemon.local.source import UploadSource
from daemon.vocab import Capabilities, RemoteItem

Sink = Callable[[bytes], Awaitable[None]]


@runtime_checkable
class Provider(Protocol):
    """The operations the engine needs. Unsupported ones raise ``Unsupported``."""

    name: str
    capabilities: Capabilities

    @property
    def root_id(self) -> str: ...

    async def list_folders(self) -> list[RemoteItem]:
        """Every folder under the root (recursively), the root itself excluded."""
        ...

    def list_files(self) -> AsyncIterator[list[RemoteItem]]:
        """Every file under the root, in pages. Raises on any inconsistency: a partial listing must
        never be taken for a complete one."""
        ...

    def list_changed(self, since: str) -> AsyncIterator[list[RemoteItem]]:
        """Files changed since the server timestamp ``since`` (the provider applies its overlap
        window). Items whose parent is outside the library are reported too: for the engine they
        have left the library."""
        ...

    async def get_folder(self, folder_id: str) -> RemoteItem | None:
        """One folder by id (to resolve a parent the engine has not seen yet); None if gone."""
        ...

    async def current(self, item: RemoteItem) -> RemoteItem | None:
        """What the server holds for ``item`` right now (a fresh GET of the item or of its folder, never
        a cached listing); None when it is gone from there (deleted, archived, in the trash, moved out of
        its folder). The executor calls this just before it deletes or replaces remote content, to
        confirm that the version it planned on is still the one it destroys (DESIGN rule 2)."""
        ...

    async def download(self, item: RemoteItem, sink: Sink) -> None:
        """Stream the content of ``item`` into ``sink``. Verifying size and digest is the caller's job."""
        ...

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> RemoteItem:
        """Create a new file under ``parent_id`` from the local file ``source`` (streamed). The file
        is read only through ``source.open()`` (each attempt), which refuses a symlink or any other
        file than the planned one with ``LocalChanged``; ``source.size`` and ``source.digest`` are
        what the server must end up holding."""
        ...

    async def update(self, item: RemoteItem, source: UploadSource) -> RemoteItem:
        """Replace the content of ``item`` with ``source`` (read as ``upload`` does); ``item.version`` is
        the precondition where the API has one (raise ``PreconditionFailed`` when the server's version
        differs)."""
        ...

    async def move(self, item: RemoteItem, parent_id: str, name: str) -> RemoteItem:
        """Rename and/or move ``item`` (a file, or a folder where ``can_move_dir``)."""
        ...

    async def delete(self, item: RemoteItem) -> None:
        """Delete a file (or an empty folder where ``can_rmdir``)."""
        ...

    async def mkdir(self, parent_id: str, name: str) -> RemoteItem:
        """Create a folder."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class FolderResolver(Protocol):
    """Providers whose folders are not created by name (Cliniko patients, coreplus clients) map a local
    folder onto a remote one here instead of ``mkdir``.

    Return the remote folder that the local folder ``name`` under ``parent_id`` stands for (creating it
    where the provider can, e.g. a coreplus sub-folder), or None when nothing matches: the files inside
    are then not uploaded, and the engine reports that once.
    """

    async def resolve_local_folder(self, parent_id: str, name: str) -> RemoteItem | None: ...


@runtime_checkable
class ListingHorizon(Protocol):
    """Providers whose full listing walks more than the library: CoreData lists files tenant-wide and
    keeps those under the root.

    ``listing_newest`` is the newest server stamp the last complete ``list_files`` walk saw, files
    outside the library included (None before one completed). The engine's changed-since cursor
    starts there after a full listing, as it does after an incremental poll (which also sees the
    tenant's other changes): from the library's own newest stamp instead, the first poll after each
    full listing fetched every change the tenant had made since (all of the other libraries' files,
    when this one has been still for a while) and resolved each foreign folder with a request.
    """

    @property
    def listing_newest(self) -> str | None: ...
