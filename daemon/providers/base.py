"""What every provider offers the engine: capabilities, raw listing items, errors, one protocol.

Providers speak in remote ids and raw names. Turning names into safe local paths is the engine's job
(``daemon.local.names``), so that every remote name passes through one sanitiser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from daemon.local.source import UploadSource


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's API allows. The planner and the contract suite read these."""

    has_digest: bool = False  # listings carry an MD5 of the content
    changed_since: bool = False  # list_changed() is cheaper than a full listing
    can_download: bool = True
    can_upload: bool = True
    can_update: bool = False  # replace content in place (else: upload new, then delete old)
    can_move: bool = False  # rename / move a file in one call
    can_delete: bool = False
    can_mkdir: bool = False
    can_rmdir: bool = False
    can_move_dir: bool = False  # rename / move a folder in one call
    delete_is_permanent: bool = False  # a remote delete cannot be undone on the server


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One raw listing entry.

    ``parent_id`` is the id of the containing folder; the library root's own id (``Provider.root_id``)
    for entries directly under the root. ``name`` is the server's name, unsanitised.
    ``version`` is the provider's version token; ``modified`` a server timestamp usable as a
    changed-since cursor (compared only with other timestamps of the same server).
    """

    remote_id: str
    parent_id: str | None
    name: str
    is_dir: bool = False
    size: int | None = None
    digest: str | None = None
    version: str = ""
    modified: str | None = None


Sink = Callable[[bytes], Awaitable[None]]


class ProviderError(Exception):
    """Base of every provider failure. ``retryable`` tells the engine whether to try again later."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ProviderError):
    """Credentials were refused. Nothing in this library can work until the operator fixes them."""


class NotFound(ProviderError):
    """The remote object does not exist (any more)."""


class PreconditionFailed(ProviderError):
    """The remote object changed since we looked (e.g. CoreData's snapshot_id). Re-observe and re-plan."""


class TransientError(ProviderError):
    """Network trouble, 5xx, timeouts, rate limits that outlasted our retries."""

    retryable = True


class InvalidResponse(ProviderError):
    """The server answered something we cannot trust (bad JSON, missing fields, paging loop)."""

    retryable = True


class DigestMismatch(ProviderError):
    """Downloaded bytes did not match the digest or size the listing promised."""

    retryable = True


class Unsupported(ProviderError):
    """The API has no way to do this."""


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
