"""coreplus (``coreplus-file-upload.txt``): push-only upload of client files, each request signed.

The API documents one file operation, the upload (``POST /API/Core/v2.1/File/``, multipart ``json`` +
``file``), plus the client list. Nothing lists, downloads, replaces or deletes client files, so a
coreplus library is push-only and the state store is the only record of what was uploaded: every
other operation raises ``Unsupported``.

Remote ids: the library root is the synthetic ``ROOT_ID``; a client folder's id is the client's GUID;
a coreplus folder inside a client's files is ``"<client GUID>:<folder id>"``, so every parent id the
engine hands back (also after a restart, from the state store) says which client an upload belongs to.
Uploaded files are ``fileId`` (also their version: an upload never changes).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import aiohttp
import anyio
import structlog

from daemon.local.once import Once
from daemon.local.source import UploadSource
from daemon.providers.base import Sink
from daemon.providers.clients import Clients
from daemon.providers.coreplus_auth import JwtSigner
from daemon.providers.coreplus_clients import Client, match_folder, parse_clients_page
from daemon.providers.forms import add_fields, add_file, built_each_attempt, streamed_from
from daemon.providers.http import HttpClient, RateLimiter, Response, RetryPolicy, budget_key, shared_rate_limiter
from daemon.providers.paging import MAX_WALK_RESTARTS, NextPage, Page, TotalMoved, Walk, walk_once
from daemon.vocab import Capabilities, InvalidResponse, RemoteItem, Unsupported

log = structlog.get_logger(__name__)

# Upload only, plus folders inside a client's files (``isFolder: true``); client folders are matched,
# never created. Nothing lists, downloads, replaces, moves or deletes.
CAPABILITIES = Capabilities(can_download=False, can_mkdir=True)

ROOT_ID = "coreplus-clients"
FILE_PATH = "/API/Core/v2.1/File/"
CLIENT_PATH = "/API/Core/v2/Client/"
ENTITY = "Client"  # "Only client entity is supported currently" (doc)
PART_TYPE = "text/plain"  # "text/plain will work for all file types" (doc)
# 10 requests/s per consumer (doc). A token bucket of one token every 120 ms never puts more than 9
# requests into any rolling second, whatever the timing, so we stay under the limit with a margin.
PACE_EVERY_S = 0.12
MAX_CLIENT_WALK_RESTARTS = MAX_WALK_RESTARTS
NO_LISTING = "the coreplus API documents only uploads (no listing, download, update, move or delete)"

_unmatched_reported = Once()


def pacing_limiter(consumer_id: str) -> RateLimiter:
    """The one request budget of a coreplus consumer, shared by every library using it."""
    return shared_rate_limiter(budget_key("coreplus", consumer_id), 1, PACE_EVERY_S)


def split_parent(parent_id: str) -> tuple[str, str | None]:
    """``"<client>"`` → (client, None); ``"<client>:<folder>"`` → (client, folder)."""
    client, sep, folder = parent_id.partition(":")
    if not client or (sep and not folder):
        raise ValueError(f"not a coreplus folder id: {parent_id!r}")
    return client, folder or None


def _form(meta: dict[str, Any], content: tuple[Any, str] | None) -> aiohttp.MultipartWriter:
    """The doc's two-part body: ``json`` (no filename, a JSON string, text/plain), then ``file``
    (the filename and the bytes streamed from the open file, text/plain)."""
    writer = aiohttp.MultipartWriter("form-data")
    add_fields(writer, {"json": json.dumps(meta)}, {"Content-Type": PART_TYPE})
    if content is not None:
        handle, name = content
        add_file(writer, "file", handle, name, PART_TYPE)
    return writer


def _created(answer: Any, what: str) -> dict[str, Any]:
    """The ``file`` object of an upload answer (sandbox decision: ``{"file": {...}}``)."""
    obj = answer.get("file") if isinstance(answer, dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("fileId"), str) or not obj["fileId"]:
        raise InvalidResponse(f"coreplus upload of {what!r}: the answer has no 'file.fileId'")
    return obj


def _check_name(name: str) -> None:
    """coreplus refuses a name with a path separator (``/`` or ``\\``: 400 "'name' must be a non-empty
    file name"): such a file is reported once and left alone, not sent every pass."""
    if not name.strip() or "/" in name or "\\" in name:
        raise Unsupported(f"coreplus cannot store the name {name!r} (no '/' or '\\' in names): rename it to upload it")


class CorePlusProvider:
    """The Provider protocol (upload and folder creation only) plus ``FolderResolver`` for clients."""

    name = "coreplus"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        consumer_id: str,
        consumer_secret: str,
        access_token: str,
        *,
        issuer: str = "",
        audience: str = "",
        clock_skew: float = 0.0,
        http: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        page_size: int = 100,
        client_cache_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.client_cache_s = client_cache_s
        self.signer = JwtSigner(
            consumer_id=consumer_id,
            consumer_secret=consumer_secret,
            access_token=access_token,
            issuer=issuer,
            audience=audience,
            clock_skew=clock_skew,
        )
        self._http_clients = Clients(http)
        self.http = self._http_clients.client(
            lambda: HttpClient(
                provider="coreplus",
                rate_limiter=pacing_limiter(consumer_id),
                retry=retry,
                auth_hint="check consumer_id, consumer_secret, access_token, issuer, audience and clock_skew "
                "of this coreplus library",
            )
        )
        self._clients: list[Client] | None = None
        self._clients_at = 0.0
        self._clients_lock = anyio.Lock()

    @property
    def root_id(self) -> str:
        return ROOT_ID

    async def aclose(self) -> None:
        await self._http_clients.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        """One signed request: the JWT is made per attempt for the exact URL sent."""
        return await self.http.request(method, self.base_url + path, headers_factory=self.signer.headers, **kwargs)

    # --- clients --------------------------------------------------------------------------------

    async def clients(self, *, refresh: bool = False) -> list[Client]:
        """Every client (paged walk), cached for ``client_cache_s`` so one pass asks once."""
        async with self._clients_lock:
            now = anyio.current_time()
            if refresh or self._clients is None or now - self._clients_at > self.client_cache_s:
                self._clients = await self._walk_clients()
                self._clients_at = anyio.current_time()
            return self._clients

    async def _walk_clients(self) -> list[Client]:
        """All pages; a walk that sees ``totalRows`` move starts over (offset paging can skip rows), and
        so does one that paged out another number of clients than ``totalRows`` promised (a count
        that moved on the only page, or rows that moved under the paging): a partial client list is
        never taken for the whole one."""
        totals: list[int] = []  # the count each page of the current walk promised

        async def read(page_no: int) -> Page[Client, int]:
            answer = await self._call(
                "GET",
                CLIENT_PATH,
                params={"pageNumber": str(page_no), "pageSize": str(self.page_size)},
                expect={200},
            )
            page, count = parse_clients_page(answer.json())
            totals.append(count)
            last = not page or page_no * self.page_size >= count
            return Page(page, count, str(page_no), lambda: None if last else NextPage(page_no + 1, None, None))

        walk = Walk(read, lambda _page_no: CLIENT_PATH, kind="coreplus client list", unit="page")
        problem = "kept changing"
        for _restart in range(MAX_CLIENT_WALK_RESTARTS + 1):
            found: dict[str, Client] = {}
            totals.clear()
            try:
                async for clients in walk_once(walk, 1):
                    found.update((client.client_id, client) for client in clients)
            except TotalMoved:
                problem = "kept changing"
                continue
            total = totals[0]
            if len(found) == total:
                return list(found.values())
            problem = f"promised {total} clients but paged out {len(found)}"
            log.info("listing_restarted", path=CLIENT_PATH, was=total, now=len(found))
        raise InvalidResponse(f"coreplus client list {problem}; gave up after {MAX_CLIENT_WALK_RESTARTS} restarts")

    async def resolve_local_folder(self, parent_id: str, name: str) -> RemoteItem | None:
        """Root level: the client this folder stands for (None when unmatched). Below: a new folder."""
        if parent_id != ROOT_ID:
            return await self._create_folder(parent_id, name)
        found = match_folder(name, await self.clients())
        if found.client is None:
            if _unmatched_reported.first((self.base_url, name, found.reason)):
                log.warning(
                    "client_folder_unmatched",
                    folder=name,
                    reason=found.reason,
                    next_step="its files are not uploaded until the folder name matches one client",
                )
            return None
        return RemoteItem(
            remote_id=found.client.client_id,
            parent_id=ROOT_ID,
            name=name,
            is_dir=True,
            version=found.client.client_id,
        )

    # --- upload ---------------------------------------------------------------------------------

    def _meta(self, parent_id: str, name: str, size: int, *, is_folder: bool) -> dict[str, Any]:
        client, folder = split_parent(parent_id)
        return {
            "parentFolderId": folder,
            "name": name,
            "size": str(size),
            "isFolder": is_folder,
            "entity": ENTITY,
            "primaryDomainKey": client,
        }

    async def _create_folder(self, parent_id: str, name: str) -> RemoteItem:
        _check_name(name)
        meta = self._meta(parent_id, name, 0, is_folder=True)

        body = built_each_attempt(lambda: _form(meta, None))
        answer = await self._call("POST", FILE_PATH, body=body, expect={200, 201})
        created = _created(answer.json(), name)
        client, _ = split_parent(parent_id)
        log.debug("folder_created", client=client, folder_id=created["fileId"])
        return RemoteItem(
            remote_id=f"{client}:{created['fileId']}",
            parent_id=parent_id,
            name=name,
            is_dir=True,
            version=created["fileId"],
        )

    async def mkdir(self, parent_id: str, name: str) -> RemoteItem:
        if parent_id == ROOT_ID:
            raise Unsupported("coreplus client folders are matched to existing clients by name, never created")
        return await self._create_folder(parent_id, name)

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> RemoteItem:
        size = source.size
        if parent_id == ROOT_ID:
            raise Unsupported("coreplus keeps files per client: put it in a client folder")
        _check_name(name)
        meta = self._meta(parent_id, name, size, is_folder=False)

        body = streamed_from(source, lambda f: _form(meta, (f, name)))
        answer = await self._call("POST", FILE_PATH, body=body, expect={200, 201})
        created = _created(answer.json(), name)
        stored = created.get("size")
        if stored is not None and str(stored) != str(size):
            # nothing can take the copy back (no delete in the API): say so loudly, do not record it
            raise InvalidResponse(
                f"coreplus stored {stored} bytes for {name!r} instead of {size}; "
                f"remove file {created['fileId']} in coreplus by hand"
            )
        log.debug("file_uploaded", remote_id=created["fileId"], bytes=size)
        return RemoteItem(
            remote_id=created["fileId"],
            parent_id=parent_id,
            name=name,
            size=size,
            digest=None,
            version=created["fileId"],
        )

    # --- what the API does not have ---------------------------------------------------------------

    def _unsupported(self, what: str) -> NoReturn:
        raise Unsupported(f"{what}: {NO_LISTING}")

    async def list_folders(self) -> list[RemoteItem]:
        self._unsupported("listing folders")

    async def list_files(self) -> AsyncIterator[list[RemoteItem]]:
        self._unsupported("listing files")
        yield []  # pragma: no cover - makes this an async generator like the protocol's

    async def list_changed(self, since: str) -> AsyncIterator[list[RemoteItem]]:
        self._unsupported("listing changes")
        yield []  # pragma: no cover

    async def get_folder(self, folder_id: str) -> RemoteItem | None:
        self._unsupported("reading a folder")

    async def current(self, item: RemoteItem) -> RemoteItem | None:
        self._unsupported("reading a file")

    async def download(self, item: RemoteItem, sink: Sink) -> None:
        self._unsupported("downloading")

    async def update(self, item: RemoteItem, source: UploadSource) -> RemoteItem:
        self._unsupported("replacing a file's content")

    async def move(self, item: RemoteItem, parent_id: str, name: str) -> RemoteItem:
        self._unsupported("renaming or moving")

    async def delete(self, item: RemoteItem) -> None:
        self._unsupported("deleting")
