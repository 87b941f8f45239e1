"""TimeTap (``timetap-files.txt``): the business' file library, folders by ``parentFileLibraryUUID``.

TimeTap has no paging, no changed-since filter and no digest: every poll is ONE ``GET /files`` that
``list_folders`` fetches and ``list_files`` reuses, and change detection compares the version token
``"fileSize:modifiedDate"``. Content is fetched from the object's ``url`` (presigned for private
files, so an expired one is refreshed by listing again). There is no content update: the engine
uploads a new file and deletes the old one after (``can_update=False``). ``DELETE`` is permanent.

Authentication is a session token from ``GET /sessionToken`` (md5 signature of API key + private key)
sent as ``Authorization: Bearer``; a 401 renews it once and retries. Neither key nor token is logged:
they travel in query strings and headers, which the HTTP layer never logs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

import aiohttp
import structlog
from yarl import URL

from daemon.local.source import UploadSource
from daemon.providers.auth import SessionToken, authorization
from daemon.providers.base import Sink
from daemon.providers.clients import Clients
from daemon.providers.fields import FieldReader, require_object, require_text
from daemon.providers.forms import add_file, content_type, form, streamed_from
from daemon.providers.fresh_reads import FreshReads
from daemon.providers.http import HttpClient, Response
from daemon.providers.transfers import accept_upload, download_presigned
from daemon.vocab import (
    Capabilities,
    InvalidResponse,
    NotFound,
    ProviderError,
    RemoteItem,
    Unsupported,
)

log = structlog.get_logger(__name__)

# Beyond download and upload. No digest, no changed-since filter (every poll is a full GET /files), no
# content update (upload new, then delete old: the engine does this). Files and folders move by POST /files
# with the changed object; POST /files with fileLibraryType FOLDER makes a folder; DELETE /files/UUID
# removes a file or an empty folder, and it is permanent ("removes file entirely", doc).
CAPABILITIES = Capabilities(
    can_move=True, can_delete=True, can_mkdir=True, can_rmdir=True, can_move_dir=True, delete_is_permanent=True
)

DEFAULT_BASE_URL = "https://api.timetap.com/live"
ROOT_ID = "timetap:library"  # the whole file library: top-level objects have no parent
FOLDER = "FOLDER"
PAGE = 1000  # list_files hands the one listing to the engine in slices of this size


def signature(api_key: str, private_key: str) -> str:
    """``GET /sessionToken``'s ``signature``: md5 hex of the API key followed by the private key (doc)."""
    return hashlib.md5((api_key + private_key).encode()).hexdigest()


def modified_token(ms: int) -> str:
    """``modifiedDate`` (epoch ms) as a string that sorts like the number (a cursor is a string)."""
    return f"{ms:015d}"


# TimeTap leaves out null fields: a missing one reads as null
_field = FieldReader("TimeTap object", id_key="fileLibraryUUID", absent_is_null=True, type_word="is")


def _check(value: Any) -> dict[str, Any]:
    obj = require_object(value, "TimeTap file entry")
    _field(obj, "fileLibraryUUID", str)
    _field(obj, "fileName", str)
    _field(obj, "fileLibraryType", str)
    _field(obj, "modifiedDate", int)
    _field(obj, "parentFileLibraryUUID", str, nullable=True)
    if obj["fileLibraryType"] != FOLDER:
        _field(obj, "fileSize", int)
        _field(obj, "url", str, nullable=True)
    return obj


class TimeTapProvider:
    """The Provider protocol on TimeTap's ``/files`` API."""

    name = "timetap"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        api_key: str,
        private_key: str,
        *,
        business_id: int,
        user_name: str,
        root_folder: str | None = None,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/") + "/")
        self._api_key = api_key
        self._signature = signature(api_key, private_key)
        self.business_id = business_id
        self.user_name = user_name
        self.root_folder = root_folder
        self._clock = clock
        self._http_clients = Clients(http)
        self.http = self._http_clients.client(
            lambda: HttpClient(
                provider="timetap",
                auth_hint="check api_key and private_key of this TimeTap library (GET /sessionToken signature)",
            )
        )
        self._token = SessionToken(self._session_token, provider=self.name)
        self._objects: dict[str, dict[str, Any]] = {}  # live objects of the last listing, by id
        self._pending: list[dict[str, Any]] | None = None  # list_folders' listing, for list_files
        self._folder_reads: FreshReads[str | None, dict[str, dict[str, Any]]] = FreshReads(self._read_folder)

    @property
    def root_id(self) -> str:
        return self.root_folder or ROOT_ID

    async def aclose(self) -> None:
        await self._http_clients.aclose()

    # --- auth -----------------------------------------------------------------------------------

    async def _session_token(self) -> str:
        """``GET /sessionToken`` signed with the keys: a new session token."""
        answer = await self.http.request(
            "GET",
            self.base_url.join(URL("sessionToken")),
            params={
                "apiKey": self._api_key,
                "timestamp": str(int(self._clock())),
                "signature": self._signature,
            },
            expect={200},
        )
        data = answer.json()
        token = data.get("sessionToken") if isinstance(data, dict) else None
        return require_text(token, "GET /sessionToken answered without a sessionToken")

    async def _api(self, method: str, path: str, **kwargs: Any) -> Response:
        """An API call with the Bearer token; a 401 (expired token) renews it once and retries."""
        extra = kwargs.pop("headers", {})
        url = self.base_url.join(URL(path))

        async def send(token: str) -> Response:
            return await self.http.request(method, url, headers={**authorization("Bearer", token), **extra}, **kwargs)

        return await self._token.send(send)

    async def _files(self, params: dict[str, str] | None = None) -> list[Any]:
        """``GET /files``: the raw listing (an array, else ``InvalidResponse``)."""
        data = (await self._api("GET", "files", params=params, expect={200})).json()
        if not isinstance(data, list):
            raise InvalidResponse(f"GET /files answered a {type(data).__name__}, not an array")
        return data

    # --- listing --------------------------------------------------------------------------------

    def _wire_parent(self, parent_id: str) -> str | None:
        return None if parent_id == ROOT_ID else parent_id

    def _parent_of(self, obj: dict[str, Any]) -> str | None:
        parent = obj.get("parentFileLibraryUUID")
        if parent is None:
            return None if self.root_folder else ROOT_ID
        return str(parent)

    def _item(self, obj: dict[str, Any]) -> RemoteItem:
        ms = int(obj["modifiedDate"])
        if obj["fileLibraryType"] == FOLDER:
            return RemoteItem(
                remote_id=obj["fileLibraryUUID"],
                parent_id=self._parent_of(obj),
                name=obj["fileName"],
                is_dir=True,
                version=str(ms),
                modified=modified_token(ms),
            )
        size = int(obj["fileSize"])
        return RemoteItem(
            remote_id=obj["fileLibraryUUID"],
            parent_id=self._parent_of(obj),
            name=obj["fileName"],
            size=size,
            version=f"{size}:{ms}",
            modified=modified_token(ms),
        )

    def _remember(self, obj: dict[str, Any]) -> None:
        self._objects[obj["fileLibraryUUID"]] = obj
        self._pending = None

    async def _fetch(self) -> list[dict[str, Any]]:
        """One ``GET /files``: the live objects under the library root (``deleted: true`` left out).

        Objects whose parent chain does not reach the root (orphans, another folder's subtree when
        ``root_folder`` is set) are left out as well. The whole listing is kept for ``url`` and for
        the object bodies ``move`` sends back.
        """
        live = {o["fileLibraryUUID"]: o for o in map(_check, await self._files()) if o.get("deleted") is not True}
        self._objects = live
        if self.root_folder is not None:
            root = live.get(self.root_folder)
            if root is None or root["fileLibraryType"] != FOLDER:
                raise ProviderError(
                    f"root_folder {self.root_folder} is not a folder of this TimeTap library (deleted?); "
                    "fix root_folder in the library's [remote] settings"
                )
        inside: dict[str, bool] = {}

        def reaches_root(object_id: str) -> bool:
            chain: list[str] = []
            current: str | None = object_id
            result = False
            while current is not None:
                if current in inside:
                    result = inside[current]
                    break
                if current == self.root_folder:
                    result = True
                    break
                if current in chain or current not in live:
                    break
                chain.append(current)
                current = live[current].get("parentFileLibraryUUID")
                if current is None:
                    result = self.root_folder is None
            for seen in chain:
                inside[seen] = result
            return result

        return [o for i, o in live.items() if i != self.root_folder and reaches_root(i)]

    async def list_folders(self) -> list[RemoteItem]:
        listing = await self._fetch()
        self._pending = listing
        return [self._item(o) for o in listing if o["fileLibraryType"] == FOLDER]

    async def list_files(self) -> AsyncIterator[list[RemoteItem]]:
        listing, self._pending = self._pending, None
        if listing is None:
            listing = await self._fetch()
        files = [self._item(o) for o in listing if o["fileLibraryType"] != FOLDER]
        for start in range(0, len(files), PAGE):
            yield files[start : start + PAGE]

    async def list_changed(self, since: str) -> AsyncIterator[list[RemoteItem]]:
        """No changed-since filter exists: the full listing (the engine does not call this)."""
        async for page in self.list_files():
            yield page

    async def get_folder(self, folder_id: str) -> RemoteItem | None:
        await self._fetch()
        obj = self._objects.get(folder_id)
        if obj is None or obj["fileLibraryType"] != FOLDER:
            return None
        return self._item(obj)

    async def _read_folder(self, wire_parent: str | None) -> dict[str, dict[str, Any]]:
        """The live objects directly in one folder, by id: ``GET /files?parentFileLibraryUUID=`` (doc);
        the library's top level has no parent to filter on, so it takes the whole listing."""
        params = {"parentFileLibraryUUID": wire_parent} if wire_parent is not None else None
        return {
            o["fileLibraryUUID"]: o
            for o in map(_check, await self._files(params))
            if o.get("deleted") is not True and o.get("parentFileLibraryUUID") == wire_parent
        }

    async def current(self, item: RemoteItem) -> RemoteItem | None:
        """The item as its folder's fresh listing shows it; None when it is no longer in that folder.
        Checks of several items in one folder at the same moment share one request."""
        wire_parent = self._wire_parent(item.parent_id) if item.parent_id is not None else None
        obj = (await self._folder_reads.get(wire_parent)).get(item.remote_id)
        if obj is None:
            return None
        self._objects[item.remote_id] = obj  # a download of the checked version uses its fresh url
        return self._item(obj)

    async def _object(self, remote_id: str) -> dict[str, Any]:
        obj = self._objects.get(remote_id)
        if obj is None:
            await self._fetch()
            obj = self._objects.get(remote_id)
        if obj is None:
            raise NotFound(f"TimeTap object {remote_id} is not in the file library (any more)")
        return obj

    # --- content --------------------------------------------------------------------------------

    async def _url(self, remote_id: str, *, refresh: bool) -> str:
        if refresh:
            await self._fetch()
        url = (await self._object(remote_id)).get("url")
        if not isinstance(url, str) or not url:
            raise InvalidResponse(f"TimeTap object {remote_id} has no url to download from")
        return url

    async def download(self, item: RemoteItem, sink: Sink) -> None:
        """Stream the object's ``url`` into ``sink`` (fetched without our token).

        A refused URL (403: a presigned URL expired) is refreshed by listing again, once. A transfer
        that breaks after bytes reached the sink is restarted once when the sink has ``reset()``.
        """
        url: str | None = None

        async def locate(refetch: bool) -> str:
            nonlocal url
            if url is None or refetch:
                url = await self._url(item.remote_id, refresh=refetch)
            return url

        refused = f"download of {item.remote_id}: its url was refused twice (HTTP 403)"
        await download_presigned(self.http, sink, remote_id=item.remote_id, locate=locate, refused=refused)

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> RemoteItem:
        """``POST /businessWeb/fileUploadS3.do`` (multipart), as a private DOCUMENT in ``parent_id``."""
        fields = {"businessId": str(self.business_id), "uploadedFileName": name, "userName": self.user_name}
        parent = self._wire_parent(parent_id)
        if parent is not None:
            fields["parentFileLibraryUUID"] = parent

        def upload_form(handle: IO[bytes]) -> aiohttp.MultipartWriter:
            writer = form(fields)
            add_file(writer, "file", handle, name, content_type(name))
            return writer

        body = streamed_from(source, upload_form)
        answer = await self._api("POST", "businessWeb/fileUploadS3.do", body=body, expect={200, 201})
        obj = _check(answer.json())
        self._remember(obj)
        item = self._item(obj)
        size = source.size
        # a short or long copy is worse than none (it is deleted); the local file is still there
        problem = f"upload of {name!r}: server stored {item.size} bytes, we sent {size}" if item.size != size else None
        return await accept_upload(item, size, problem, self.delete)

    async def update(self, item: RemoteItem, source: UploadSource) -> RemoteItem:
        raise Unsupported("TimeTap cannot replace a file's content; a new file is uploaded instead")

    # --- tree changes ---------------------------------------------------------------------------

    async def move(self, item: RemoteItem, parent_id: str, name: str) -> RemoteItem:
        """``POST /files`` with the object as last listed, ``fileName`` and parent changed (doc)."""
        body = dict(await self._object(item.remote_id))
        body["fileName"] = name
        body["parentFileLibraryUUID"] = self._wire_parent(parent_id)
        body["businessId"] = body.get("businessId") or self.business_id
        answer = await self._api("POST", "files", json=body, expect={200, 201}, idempotent=True)
        obj = _check(answer.json())
        self._remember(obj)
        return self._item(obj)

    async def delete(self, item: RemoteItem) -> None:
        """``DELETE /files/UUID``: permanent in TimeTap; there is no trash to restore from."""
        await self._api("DELETE", f"files/{item.remote_id}", expect={200, 204})
        self._objects.pop(item.remote_id, None)
        self._pending = None

    async def mkdir(self, parent_id: str, name: str) -> RemoteItem:
        body = {
            "businessId": self.business_id,
            "fileLibraryType": FOLDER,
            "fileName": name,
            "parentFileLibraryUUID": self._wire_parent(parent_id),
        }
        answer = await self._api("POST", "files", json=body, expect={200, 201})
        obj = _check(answer.json())
        self._remember(obj)
        return self._item(obj)
