"""CoreData (``coredata-files-v2.txt``): a library is a Space, Project or Folder and everything below.

The API lists files and folders tenant-wide, so the library's subtree is computed here from the folder
listing (parent chains that reach the root). Content moves through presigned URLs that must be fetched
without our ``Authorization`` header. Everything that is a sandbox *decision* rather than vendor
documentation (folder create/rename/delete, the 409 on a stale ``snapshot_id``, ``modified__gt``/``__gte``,
``order_by``) is marked where it is used, and folder capabilities live in ``CAPABILITIES`` only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import IO, Any

import aiohttp
import structlog
from yarl import URL

from daemon.local.source import UploadSource
from daemon.providers.auth import authorization
from daemon.providers.base import Sink
from daemon.providers.clients import Clients
from daemon.providers.fields import FieldReader, require_object, require_text
from daemon.providers.forms import add_file, built_each_attempt, content_type, form, streamed_from
from daemon.providers.http import HttpClient, Response
from daemon.providers.paging import NextPage, Page, Walk, restarting_walk
from daemon.providers.transfers import Located, accept_upload, download_presigned, redirected
from daemon.vocab import (
    Capabilities,
    DigestMismatch,
    InvalidResponse,
    NotFound,
    ProviderError,
    RemoteItem,
)

log = structlog.get_logger(__name__)

CAPABILITIES = Capabilities(
    has_digest=True,
    changed_since=True,
    can_update=True,
    can_move=True,
    can_delete=True,
    can_mkdir=True,  # sandbox decision: POST /api/v2/folders/
    can_rmdir=True,  # sandbox decision: DELETE /api/v2/folders/ID/ (empty folders only)
    can_move_dir=True,  # sandbox decision: PUT /api/v2/folders/ID/
    delete_is_permanent=False,  # deleted files go to the tenant trash
)

DIGEST_HEADER = "X-Coredata-fields-filedigest"


def _title_for(name: str) -> str:
    """CoreData's ``title`` is the filename without its extension (doc)."""
    stem = PurePosixPath(name).stem
    return stem or name


def _form(fields: dict[str, str], content: tuple[IO[bytes], str] | None = None) -> aiohttp.MultipartWriter:
    """A multipart/form-data body (the only encoding the create endpoint takes, doc); the file part
    ``content`` comes last, streamed from the open file."""
    writer = form(fields)
    if content is not None:
        handle, name = content
        add_file(writer, "content", handle, name, content_type(name))
    return writer


def _id_from_location(location: str | None) -> str:
    """``Location: /api/v2/files/ID/`` → ``ID`` (doc)."""
    parts = [p for p in URL(location or "", encoded=True).path.split("/") if p]
    if not parts:
        raise InvalidResponse(f"created object has no usable Location header ({location!r})")
    return parts[-1]


_field = FieldReader("CoreData object")


def file_item(obj: Any) -> RemoteItem:
    """A file object (listing or details) as a RemoteItem."""
    obj = require_object(obj, "CoreData file entry")
    digest = _field(obj, "digest", str, nullable=True) if "digest" in obj else None
    return RemoteItem(
        remote_id=_field(obj, "id", str),
        parent_id=_field(obj, "parent", str, nullable=True),
        name=_field(obj, "filename", str),
        is_dir=False,
        size=_field(obj, "size", int, nullable=True),
        digest=digest.lower() if digest else None,
        version=_field(obj, "snapshot_id", str),
        modified=_field(obj, "modified", str),
    )


def folder_item(obj: Any) -> RemoteItem:
    obj = require_object(obj, "CoreData folder entry")
    modified = _field(obj, "modified", str, nullable=True)
    return RemoteItem(
        remote_id=_field(obj, "id", str),
        parent_id=_field(obj, "parent", str, nullable=True),
        name=_field(obj, "title", str),
        is_dir=True,
        version=modified or "",
        modified=modified,
    )


def shift_timestamp(since: str, seconds: int) -> str:
    """The server's naive timestamp minus ``seconds``, in the same shape (server clock only)."""
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(f"not a CoreData timestamp: {since!r}") from None
    shifted = when - timedelta(seconds=seconds)
    return shifted.isoformat(timespec="microseconds" if "." in since else "seconds")


class _Unordered(Exception):
    """A changed-since page that is not in ``modified`` order: the server ignores ``order_by``."""


def _server_time(stamp: str | None) -> datetime:
    """A server timestamp, for comparing with other stamps of the same server only (DESIGN rule 4)."""
    try:
        return datetime.fromisoformat(stamp or "")
    except ValueError:
        raise InvalidResponse(f"CoreData timestamp {stamp!r} is not an ISO date-time") from None


class CoreDataProvider:
    """The Provider protocol on CoreData's v2 file API (v3 only for presigned blob uploads)."""

    name = "coredata"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        root: str,
        api_user: str,
        api_key: str,
        *,
        http: HttpClient | None = None,
        page_size: int = 1000,
        multipart_threshold: int = 8 * 1024 * 1024,
        overlap_seconds: int = 120,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/") + "/")
        self.root = root
        self.page_size = page_size
        self.multipart_threshold = multipart_threshold
        self.overlap_seconds = overlap_seconds
        self._auth = authorization("apikey", f"{api_user}:{api_key}")
        self._http_clients = Clients(http)
        self.http = self._http_clients.client(
            lambda: HttpClient(
                provider="coredata",
                auth_hint="check api_user and api_key of this CoreData library (Authorization: apikey USER:KEY)",
            )
        )
        self._folders: dict[str, RemoteItem] | None = None  # folders under root, from list_folders
        self._changed_since_ok = True
        self._listing_newest: str | None = None

    @property
    def listing_newest(self) -> str | None:
        """The newest ``modified`` of the last complete file listing, tenant-wide (``ListingHorizon``)."""
        return self._listing_newest

    @property
    def root_id(self) -> str:
        return self.root

    async def aclose(self) -> None:
        await self._http_clients.aclose()

    # --- plumbing -------------------------------------------------------------------------------

    def _url(self, path_or_link: str) -> URL:
        """API paths and ``meta.next`` links are relative to the tenant host."""
        return self.base_url.join(URL(path_or_link, encoded=True))

    async def _api(self, method: str, path: str, **kwargs: Any) -> Response:
        headers = {**self._auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, self._url(path), headers=headers, **kwargs)

    async def _get_json(self, path: str, **kwargs: Any) -> Any:
        return (await self._api("GET", path, expect={200}, **kwargs)).json()

    async def _page(self, link: str) -> tuple[dict[str, Any], list[Any], str | None]:
        """One page of a tastypie listing: its ``meta``, its ``objects`` and its ``meta.next`` link."""
        page = await self._get_json(link)
        if not isinstance(page, dict) or not isinstance(page.get("meta"), dict):
            raise InvalidResponse(f"listing {URL(link).path} has no 'meta' object")
        meta = page["meta"]
        objects = page.get("objects")
        if not isinstance(objects, list):
            raise InvalidResponse(f"listing {URL(link).path}: field 'objects' is not a list")
        nxt = meta.get("next")
        if nxt is not None and not isinstance(nxt, str):
            raise InvalidResponse(f"listing {URL(link).path}: field 'meta.next' is not a string")
        return meta, objects, nxt or None

    async def _listing_page(self, link: str) -> Page[Any, str]:
        """One page of a tastypie listing for ``restarting_walk``: its position is ``meta.offset`` (else
        the link's), its next page ``meta.next``."""
        meta, objects, nxt = await self._page(link)
        count = meta.get("total_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise InvalidResponse(f"listing {URL(link).path}: field 'meta.total_count' is not an int")
        offset = str(meta.get("offset", URL(link, encoded=True).query.get("offset", "0")))

        def follow() -> NextPage[str] | None:
            if not nxt:
                return None
            nxt_offset = URL(nxt, encoded=True).query.get("offset")
            return NextPage(nxt, nxt_offset, nxt_offset)

        return Page(objects, count, offset, follow)

    def _walk(self, first: str) -> AsyncIterator[list[Any]]:
        """Every page of a tastypie listing, following ``meta.next``; a walk that sees
        ``meta.total_count`` move starts over, a ``next`` link back to a visited offset fails it."""
        walk = Walk(self._listing_page, lambda link: URL(link).path, kind="listing", unit="offset")
        return restarting_walk(walk, first)

    # --- listing --------------------------------------------------------------------------------

    async def list_folders(self) -> list[RemoteItem]:
        every: dict[str, RemoteItem] = {}
        async for objects in self._walk(f"/api/v2/folders/?limit={self.page_size}"):
            for obj in objects:
                item = folder_item(obj)
                every[item.remote_id] = item
        under: dict[str, RemoteItem] = {}
        for item in every.values():
            if item.remote_id != self.root and self._reaches_root(item, every):
                under[item.remote_id] = item
        self._folders = under
        return list(under.values())

    def _reaches_root(self, item: RemoteItem, every: dict[str, RemoteItem]) -> bool:
        seen: set[str] = set()
        parent = item.parent_id
        while parent is not None and parent not in seen:
            if parent == self.root:
                return True
            seen.add(parent)
            nxt = every.get(parent)
            parent = nxt.parent_id if nxt is not None else None
        return False

    async def _library_folder_ids(self) -> set[str]:
        if self._folders is None:
            await self.list_folders()
        assert self._folders is not None
        return {self.root, *self._folders}

    async def list_files(self) -> AsyncIterator[list[RemoteItem]]:
        inside = await self._library_folder_ids()
        newest: tuple[datetime, str] | None = None
        async for objects in self._walk(f"/api/v2/files/?limit={self.page_size}"):
            items = [file_item(obj) for obj in objects]
            for item in items:
                if item.modified:
                    stamp = _server_time(item.modified)
                    if newest is None or stamp > newest[0]:
                        newest = (stamp, item.modified)
            page = [item for item in items if item.parent_id in inside]
            if page:
                yield page
        self._listing_newest = newest[1] if newest is not None else None

    async def list_changed(self, since: str) -> AsyncIterator[list[RemoteItem]]:
        if not self._changed_since_ok:
            async for page in self.list_files():
                yield page
            return
        try:
            async for page in self._changed_walk(shift_timestamp(since, self.overlap_seconds)):
                yield page
        except (ProviderError, _Unordered) as exc:
            if isinstance(exc, ProviderError) and exc.status != 400:
                raise
            self._changed_since_ok = False
            log.warning("changed_since_unsupported", provider=self.name, reason=str(exc))
            async for page in self.list_files():
                yield page

    async def _changed_walk(self, cursor: str) -> AsyncIterator[list[RemoteItem]]:
        """Every file modified after ``cursor``, oldest change first, by keyset paging.

        Offset paging over ``order_by=modified`` loses rows under concurrent change: a row edited
        after its page was read moves to the end, every later row moves one place back, and the row at
        the next page boundary is never seen (until the next full listing). So each page is a query
        of its own that starts where the last one ended: ``modified__gte`` the last ``modified`` seen,
        the rows of that timestamp already seen skipped (several rows may share one timestamp on a
        server whose clock has coarse steps). A row edited mid-walk gets a newer ``modified`` and is met
        again further on; nothing moves past the start of the next query. Only a run of ties longer
        than a page is walked by offset inside that one timestamp (there is nothing finer to key on), so
        an edit inside such a run can still shift it; the overlap window of the next poll and the
        periodic full listing heal that (DESIGN rule 4). A page inside such a run that brings no row not
        yet seen is a paging loop (a server that ignores ``offset``) and fails the walk, as ``_walk``
        does; every other page moves the keyset forward. The walk ends on the first page
        without ``meta.next``: an idle poll is one request. ``modified__gt``/``__gte`` and
        ``order_by`` are not in the vendor doc (tastypie-style hint, sandbox decision, see
        api-notes.md); a 400, or pages that are not in ``modified`` order, fall back to full listings.
        """
        op, bound = "modified__gt", cursor
        low = _server_time(cursor)
        at_low: set[str] = set()  # ids already yielded whose ``modified`` equals ``low``
        offset = 0
        while True:
            query = {op: bound, "order_by": "modified", "limit": str(self.page_size)}
            if offset:
                query["offset"] = str(offset)
            link = str(URL("/api/v2/files/").with_query(query))
            _meta, objects, nxt = await self._page(link)
            items = [file_item(obj) for obj in objects]
            stamps = [_server_time(item.modified) for item in items]
            floor = low
            for stamp in stamps:
                if stamp < floor or (op == "modified__gt" and stamp == low):
                    raise _Unordered(f"listing {URL(link).path}: rows not in 'modified' order after {bound}")
                floor = stamp
            fresh = [
                item for item, stamp in zip(items, stamps, strict=True) if stamp != low or item.remote_id not in at_low
            ]
            if fresh:
                yield fresh
            if nxt is None:
                return
            if not items:
                raise InvalidResponse(f"listing {URL(link).path}: an empty page that has a next page")
            if stamps[-1] == low:  # the whole page shares one timestamp: page on inside it
                if offset and not fresh:  # an offset inside the run brought nothing new: no progress
                    raise InvalidResponse(f"listing {URL(link).path} loops: offset {offset} repeats seen rows")
                offset += len(items)
            else:
                low, offset, at_low = stamps[-1], 0, set()
                op, bound = "modified__gte", items[-1].modified or ""
            at_low.update(item.remote_id for item, stamp in zip(items, stamps, strict=True) if stamp == low)

    async def get_folder(self, folder_id: str) -> RemoteItem | None:
        try:
            return folder_item(await self._get_json(f"/api/v2/folders/{folder_id}/"))
        except NotFound:
            return None

    async def get_file(self, file_id: str) -> RemoteItem:
        return file_item(await self._get_json(f"/api/v2/files/{file_id}/"))

    async def current(self, item: RemoteItem) -> RemoteItem | None:
        """``GET /api/v2/files/ID/`` (or ``folders/ID/``): the item as the server holds it now; a file in
        the tenant trash comes back with the trash as its parent."""
        if item.is_dir:
            return await self.get_folder(item.remote_id)
        try:
            return await self.get_file(item.remote_id)
        except NotFound:
            return None

    # --- content --------------------------------------------------------------------------------

    async def download(self, item: RemoteItem, sink: Sink) -> None:
        """Stream the content into ``sink``.

        The API answers a 302 to a presigned URL, fetched here without our credentials. An expired
        presigned URL (403) is refused before any byte reaches the sink, so a fresh 302 is asked for
        once and the download restarts cleanly. If the transfer breaks *after* bytes were written and
        ``sink`` has a ``reset()`` coroutine method, it is awaited and the download restarts once;
        otherwise ``TransientError`` tells the caller to discard what it received and try later.
        """
        path = f"/api/v2/files/{item.remote_id}/content/"
        what = f"download of {item.remote_id}"

        async def locate(refetch: bool) -> Located:
            first = await self._api("GET", path, expect={200, 302}, stream=True)
            return redirected(first, self.base_url, what)

        refused = f"{what}: presigned URL refused twice (HTTP 403)"
        await download_presigned(self.http, sink, remote_id=item.remote_id, locate=locate, refused=refused)

    async def _presigned_blob(self, source: UploadSource, name: str) -> str:
        """v3 flow: get a presigned upload URL, PUT the file there without our credentials."""
        ctype = content_type(name)
        answer = (
            await self._api(
                "POST",
                "/api/v3/blob/presigned-upload-url/",
                params={"content_type": ctype, "content_length": str(source.size)},
                expect={200, 201},
                idempotent=True,  # only hands out a fresh blob name
            )
        ).json()
        if not isinstance(answer, dict):
            raise InvalidResponse("presigned-upload-url answer is not an object")
        blob_name = require_text(answer.get("blobName"), "presigned-upload-url answer lacks field 'blobName'")
        presigned = require_text(answer.get("presignedUrl"), "presigned-upload-url answer lacks field 'presignedUrl'")
        await self.http.request(
            "PUT",
            self._url(presigned),
            headers={"Content-Type": ctype},
            body=source.open,
            expect={200, 201, 204},
        )
        return blob_name

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> RemoteItem:
        fields = {"filename": name, "title": _title_for(name), "parent": parent_id}
        size, digest = source.size, source.digest
        if size >= self.multipart_threshold:
            blob_name = await self._presigned_blob(source, name)
            body = built_each_attempt(lambda: _form({"blob_name": blob_name, **fields}))
        else:
            body = streamed_from(source, lambda f: _form(fields, content=(f, name)))
        created = await self._api("POST", "/api/v2/files/", body=body, expect={201})
        item = await self.get_file(_id_from_location(created.headers.get("Location")))
        wrong = item.digest and item.digest != digest.lower()  # taken back: it goes to the trash, nothing is lost
        problem = f"upload of {name!r}: server digest {item.digest} != local {digest}" if wrong else None
        return await accept_upload(item, size, problem, self.delete)

    async def update(self, item: RemoteItem, source: UploadSource) -> RemoteItem:
        query = {"filename": item.name, "snapshot_id": item.version}
        path = f"/api/v2/files/{item.remote_id}/content/"
        digest = source.digest
        if source.size >= self.multipart_threshold:
            blob_name = await self._presigned_blob(source, item.name)
            answer = await self._api(
                "PUT",
                path,
                params={**query, "blob_name": blob_name, "digest": digest},
                expect={200, 201, 204},
            )
        else:
            answer = await self._api(
                "PUT",
                path,
                params=query,
                headers={"Content-Type": "application/octet-stream"},
                body=source.open,
                expect={200, 201, 204},
            )
        server_digest = answer.headers.get(DIGEST_HEADER)
        if server_digest and server_digest.lower() != digest.lower():
            raise DigestMismatch(f"update of {item.remote_id}: server digest {server_digest} != local {digest}")
        fresh = await self.get_file(item.remote_id)
        if fresh.digest and fresh.digest != digest.lower():
            raise DigestMismatch(f"update of {item.remote_id}: server digest {fresh.digest} != local {digest}")
        return fresh

    # --- tree changes ---------------------------------------------------------------------------

    async def move(self, item: RemoteItem, parent_id: str, name: str) -> RemoteItem:
        if item.is_dir:
            await self._api(
                "PUT",
                f"/api/v2/folders/{item.remote_id}/",
                json={"title": name, "parent": parent_id},
                expect={200, 204},
            )
            fresh = await self.get_folder(item.remote_id)
            if fresh is None:
                raise NotFound(f"folder {item.remote_id} vanished after its move")
            if self._folders is not None:
                self._folders[fresh.remote_id] = fresh
            return fresh
        await self._api(
            "PUT",
            f"/api/v2/files/{item.remote_id}/",
            json={"filename": name, "title": _title_for(name), "parent": parent_id},
            expect={200, 204},
        )
        return await self.get_file(item.remote_id)

    async def delete(self, item: RemoteItem) -> None:
        kind = "folders" if item.is_dir else "files"
        await self._api("DELETE", f"/api/v2/{kind}/{item.remote_id}/", expect={200, 202, 204})
        if item.is_dir and self._folders is not None:
            self._folders.pop(item.remote_id, None)

    async def mkdir(self, parent_id: str, name: str) -> RemoteItem:
        created = await self._api("POST", "/api/v2/folders/", json={"title": name, "parent": parent_id}, expect={201})
        folder_id = _id_from_location(created.headers.get("Location"))
        fresh = await self.get_folder(folder_id)
        if fresh is None:
            raise NotFound(f"folder {folder_id} vanished right after it was created")
        if self._folders is not None:
            self._folders[fresh.remote_id] = fresh
        return fresh
