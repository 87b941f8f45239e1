"""Cliniko (``cliniko-api.txt``, ``cliniko-openapi.json``): every patient attachment, one folder per patient.

Patients are the folders: they are matched, never created (``FolderResolver``), and a file directly in
the root cannot be uploaded. Attachments are immutable: no update, no rename, and a delete archives.
Their version token is ``created_at`` (it never moves, and neither does the content), because
``updated_at`` moves when processing completes or when the record is archived, which would make the
engine download again every file it just uploaded. Uploads go through a presigned S3 POST, then
``POST /patient_attachments``; processing is asynchronous, so ``upload`` waits for it (bounded) and
remembers unfinished uploads so they are not taken for deleted. Requests are paced under the API key's
budget (shared by every library using the key); a 429 waits until ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import anyio
import structlog
from yarl import URL

from daemon.local.once import Once
from daemon.local.source import UploadSource
from daemon.providers.auth import authorization, basic_credentials
from daemon.providers.base import Sink
from daemon.providers.clients import Clients
from daemon.providers.cliniko_objects import (
    DEFAULT_PATIENT_FOLDER,
    AttachmentRecord,
    PatientRecord,
    filter_timestamp,
    folder_name,
    folder_pattern,
    normalise_timestamp,
    pacing_limiter,
    parse_attachment,
    parse_patient,
    patient_id_of_folder,
    reset_wait,
)
from daemon.providers.forms import content_type, form, streamed_from
from daemon.providers.http import HttpClient, Response, RetryPolicy
from daemon.providers.paging import NextPage, Page, Walk, restarting_walk
from daemon.providers.transfers import Located, download_presigned, redirected, refuse_upload
from daemon.vocab import (
    Capabilities,
    InvalidResponse,
    NotFound,
    RemoteItem,
    Unsupported,
)

log = structlog.get_logger(__name__)

# Beyond download and upload: changed-since, and delete, which archives (restorable in Cliniko). No digest;
# attachments are immutable (a new version is a new attachment) and cannot be renamed; patients (the
# folders) are matched by id, never created, renamed or deleted.
CAPABILITIES = Capabilities(changed_since=True, can_delete=True)

ROOT_ID = "cliniko-root"
PATIENT_CHUNK = 100
CACHE_TTL = 60.0
CACHE_MAX = 20_000
PENDING_FLOOR_TTL = 3600.0
_reported = Once()
CLINIKO_DOMAIN = "cliniko.com"


def _cliniko_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == CLINIKO_DOMAIN or host.endswith("." + CLINIKO_DOMAIN)


def _same_api_host(host: str | None, base_host: str | None) -> bool:
    """``host`` may receive our API key: it is ``base_host``, or both are hosts of ``cliniko.com``."""
    if not host or not base_host:
        return False
    if host.lower().rstrip(".") == base_host.lower().rstrip("."):
        return True
    return _cliniko_host(host) and _cliniko_host(base_host)


class ClinikoProvider:
    """The Provider protocol (and ``FolderResolver``) on Cliniko's v1 API."""

    name = "cliniko"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        api_key: str,
        user_agent: str,
        *,
        patients: tuple[str, ...] = (),
        patient_folder: str = DEFAULT_PATIENT_FOLDER,
        rate_limit: int = 200,
        rate_window: float = 60.0,
        http: HttpClient | None = None,
        per_page: int = 100,
        overlap_seconds: float = 120.0,
        processing_wait: float = 120.0,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self.user_agent = user_agent
        self.patients = frozenset(patients)
        self.patient_folder = patient_folder
        self.per_page = max(1, min(100, per_page))
        self.overlap_seconds = overlap_seconds
        self.processing_wait = processing_wait
        self._headers = {
            **authorization("Basic", basic_credentials(api_key)),
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._http_clients = Clients(http)
        hint = "check api_key of this Cliniko library (it is sent as the Basic auth user name)"
        self.http = self._http_clients.client(
            lambda: HttpClient(
                provider="cliniko",
                user_agent=user_agent,
                rate_limiter=pacing_limiter(api_key, rate_limit, rate_window),
                retry=RetryPolicy(attempts=8),
                retry_after_hook=reset_wait,
                auth_hint=hint,
            )
        )
        # S3 is not Cliniko: presigned transfers do not spend the API budget
        self.blob_http = self._http_clients.client(
            lambda: HttpClient(provider="cliniko", user_agent=user_agent, auth_hint="the presigned S3 URL was refused")
        )
        self._pattern = folder_pattern(patient_folder)
        self._folders: dict[str, RemoteItem] = {}
        self._cache: tuple[float, list[RemoteItem]] | None = None
        self._pending: dict[str, RemoteItem] = {}  # our uploads still processing
        self._pending_floor: tuple[str, float] | None = None  # oldest unprocessed updated_at seen

    @property
    def root_id(self) -> str:
        return ROOT_ID

    async def aclose(self) -> None:
        await self._http_clients.aclose()

    # --- plumbing -------------------------------------------------------------------------------

    def _url(self, path: str, query: list[tuple[str, str]] | None = None) -> URL:
        url = URL(str(self.base_url) + path)
        return url.with_query(query) if query else url

    async def _api(self, method: str, url: URL, **kwargs: Any) -> Response:
        return await self.http.request(method, url, headers=self._headers, **kwargs)

    async def _get_json(self, url: URL) -> Any:
        return (await self._api("GET", url, expect={200})).json()

    def _check_link(self, link: str) -> URL:
        """A ``links.next`` URL, followed with our API key: so only on the API, never elsewhere.

        Same scheme and port as ``base_url``, under its path, and on its host or, when both hosts are
        Cliniko's, on any ``cliniko.com`` host: the vendor's own paging example links to
        ``api.cliniko.com`` while the key's shard gives ``api.au1.cliniko.com``.
        """
        url = URL(link, encoded=True)
        base = self.base_url
        if (
            not url.is_absolute()
            or url.scheme != base.scheme
            or url.port != base.port
            or url.user is not None
            or url.password is not None
            or not _same_api_host(url.host, base.host)
            or not url.path.startswith(base.path)
        ):
            where = f"{url.origin()}{url.path}" if url.is_absolute() else url.path
            raise InvalidResponse(f"Cliniko paging link leaves the API ({where})")
        return url

    def _walk(self, first: URL, key: str) -> AsyncIterator[list[Any]]:
        """Every page of a list (its ``key`` array), following ``links.next``; a walk that sees
        ``total_entries`` move starts over, a link back to a page already read fails it."""

        async def read(url: URL) -> Page[Any, URL]:
            page = await self._get_json(url)
            where = url.path
            if not isinstance(page, dict) or not isinstance(page.get(key), list):
                raise InvalidResponse(f"Cliniko list {where} has no {key!r} array")
            count = page.get("total_entries")
            if not isinstance(count, int) or isinstance(count, bool):
                raise InvalidResponse(f"Cliniko list {where}: 'total_entries' is not an integer")

            def follow() -> NextPage[URL] | None:
                links = page.get("links") or {}
                nxt = links.get("next") if isinstance(links, dict) else None
                if nxt is not None and not isinstance(nxt, str):
                    raise InvalidResponse(f"Cliniko list {where}: 'links.next' is not a string")
                if not nxt:
                    return None
                checked = self._check_link(nxt)
                return NextPage(checked, checked.query.get("page", "1"), checked.query.get("page"))

            return Page(page[key], count, url.query.get("page", "1"), follow)

        return restarting_walk(Walk(read, lambda url: url.path, kind="Cliniko list", unit="page"), first)

    # --- records → items ------------------------------------------------------------------------

    def _folder_item(self, patient: PatientRecord) -> RemoteItem:
        return RemoteItem(
            remote_id=patient.id, parent_id=ROOT_ID, name=folder_name(patient, self.patient_folder), is_dir=True
        )

    def _in_library(self, patient_id: str) -> bool:
        return not self.patients or patient_id in self.patients

    def _file_item(self, record: AttachmentRecord, *, name: str | None = None, size: int | None = None) -> RemoteItem:
        return RemoteItem(
            remote_id=record.id,
            parent_id=record.patient_id if self._in_library(record.patient_id) and not record.archived else None,
            name=record.filename or name or "",
            size=record.size if record.size is not None else size,
            version=record.created_at,
            modified=record.updated_at,
        )

    def _listed(self, record: AttachmentRecord) -> RemoteItem | None:
        """The item a full listing reports for ``record``: processed ones, and our own uploads that are
        still processing (so the engine does not take them for deleted); None otherwise."""
        if record.processed:
            self._pending.pop(record.id, None)
            return self._file_item(record)
        return self._pending.get(record.id)

    # --- listing --------------------------------------------------------------------------------

    def _attachments_url(self, extra: list[tuple[str, str]] | None = None) -> URL:
        query = [("per_page", str(self.per_page)), *(extra or [])]
        if self.patients and len(self.patients) <= PATIENT_CHUNK:  # let the server leave out the others
            query.append(("q[]", "patient_id:=" + ",".join(sorted(self.patients, key=int))))
        return self._url("/patient_attachments", query)

    async def _fetch_patients(self, ids: list[str]) -> dict[str, PatientRecord]:
        found: dict[str, PatientRecord] = {}
        for start in range(0, len(ids), PATIENT_CHUNK):
            chunk = ids[start : start + PATIENT_CHUNK]
            url = self._url("/patients", [("per_page", "100"), ("q[]", "id:=" + ",".join(chunk))])
            async for objects in self._walk(url, "patients"):
                for obj in objects:
                    patient = parse_patient(obj)
                    if not patient.archived:
                        found[patient.id] = patient
        return found

    async def list_folders(self) -> list[RemoteItem]:
        """The patients of this library: the configured ones, else every patient with an attachment.

        Without configured patients this walks the attachments; the items are kept for a minute so
        the ``list_files`` that follows in the same pass costs no second walk.
        """
        if self.patients:
            ids = sorted(self.patients, key=int)
        else:
            owners: set[str] = set()
            items: list[RemoteItem] | None = []
            async for objects in self._walk(self._attachments_url(), "patient_attachments"):
                for obj in objects:
                    record = parse_attachment(obj)
                    owners.add(record.patient_id)
                    item = self._listed(record)
                    if item is not None and items is not None:
                        items.append(item)
                        if len(items) > CACHE_MAX:
                            items = None  # too many to hold: list_files walks again
            self._cache = (time.monotonic(), items) if items is not None else None
            ids = sorted(owners, key=int)
        patients = await self._fetch_patients(ids)
        for missing in sorted(set(self.patients) - set(patients), key=int):
            if _reported.first(("patient_missing", missing)):
                log.warning(
                    "cliniko_patient_not_found",
                    patient_id=missing,
                    detail="listed in [library.remote] patients but not found (or archived) in Cliniko",
                )
        self._folders = {pid: self._folder_item(p) for pid, p in patients.items()}
        return list(self._folders.values())

    async def list_files(self) -> AsyncIterator[list[RemoteItem]]:
        cached, self._cache = self._cache, None
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL:
            items = cached[1]
            for start in range(0, len(items), self.per_page):
                yield items[start : start + self.per_page]
            return
        async for objects in self._walk(self._attachments_url(), "patient_attachments"):
            page: list[RemoteItem] = []
            for obj in objects:
                item = self._listed(parse_attachment(obj))
                if item is not None and item.parent_id is not None:
                    page.append(item)
            if page:
                yield page

    async def list_changed(self, since: str) -> AsyncIterator[list[RemoteItem]]:
        """One request per idle poll: attachments updated after ``since`` minus the overlap window,
        archived ones included (``archived_at:*``) and reported as having left the library."""
        floor = normalise_timestamp(since)
        if self._pending_floor is not None:
            stamp, noted = self._pending_floor
            if time.monotonic() - noted < PENDING_FLOOR_TTL:
                floor = min(floor, stamp)
        query = [
            ("sort", "updated_at"),
            ("q[]", "updated_at:>" + filter_timestamp(floor, self.overlap_seconds)),
            ("q[]", "archived_at:*"),
        ]
        unprocessed: str | None = None
        async for objects in self._walk(self._attachments_url(query), "patient_attachments"):
            page: list[RemoteItem] = []
            for obj in objects:
                record = parse_attachment(obj)
                if record.archived:
                    self._pending.pop(record.id, None)
                    page.append(self._file_item(record))
                    continue
                item = self._listed(record)
                if item is None:  # someone else's upload, still processing: report it once it is done
                    unprocessed = record.updated_at if unprocessed is None else min(unprocessed, record.updated_at)
                    continue
                page.append(item)
            if page:
                yield page
        if unprocessed is None:
            self._pending_floor = None
        elif self._pending_floor is None or self._pending_floor[0] != unprocessed:
            self._pending_floor = (unprocessed, time.monotonic())

    async def get_folder(self, folder_id: str) -> RemoteItem | None:
        if not folder_id.isdigit() or not self._in_library(folder_id):
            return None
        try:
            patient = parse_patient(await self._get_json(self._url(f"/patients/{folder_id}")))
        except NotFound:
            return None
        if patient.archived:
            return None
        item = self._folder_item(patient)
        self._folders[item.remote_id] = item
        return item

    async def resolve_local_folder(self, parent_id: str, name: str) -> RemoteItem | None:
        """A local folder directly in the root stands for the patient whose id its name carries."""
        if parent_id != ROOT_ID:
            return None
        patient_id = patient_id_of_folder(name, self._pattern)
        if patient_id is None:
            return None
        return await self.get_folder(patient_id)

    # --- content --------------------------------------------------------------------------------

    async def download(self, item: RemoteItem, sink: Sink) -> None:
        """``/content`` answers 303 to a presigned S3 URL, fetched here without our credentials. A
        refused presigned URL (expired) is asked for once more; a transfer broken after bytes reached
        ``sink`` restarts once through ``sink.reset()`` when the sink has one."""
        url = self._url(f"/patient_attachments/{item.remote_id}/content")
        what = f"download of attachment {item.remote_id}"

        async def locate(refetch: bool) -> Located:
            first = await self._api("GET", url, expect={200, 302, 303, 307}, stream=True)
            return redirected(first, url, what)

        refused = f"{what}: presigned URL refused twice"
        await download_presigned(self.blob_http, sink, remote_id=item.remote_id, locate=locate, refused=refused)

    async def _presigned_post(self, patient_id: str, name: str, source: UploadSource) -> str:
        """Upload ``source`` to S3 with the patient's presigned POST; returns the ``upload_url``."""
        answer = await self._get_json(self._url(f"/patients/{patient_id}/attachment_presigned_post"))
        if not isinstance(answer, dict) or not isinstance(answer.get("url"), str):
            raise InvalidResponse("attachment_presigned_post answer has no 'url'")
        fields = answer.get("fields")
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise InvalidResponse("attachment_presigned_post answer has no 'fields' of strings")
        if not isinstance(fields.get("key"), str):
            raise InvalidResponse("attachment_presigned_post answer lacks fields.key")
        post_url: str = answer["url"]
        ctype = content_type(name)
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')

        def s3_form(handle: IO[bytes]) -> aiohttp.MultipartWriter:
            writer = form(fields)
            # S3 wants the file last; the filename goes in raw UTF-8 (it becomes ${filename})
            disposition = f'form-data; name="file"; filename="{quoted}"'
            writer.append(handle, {"Content-Type": ctype, "Content-Disposition": disposition})
            return writer

        body = streamed_from(source, s3_form)
        posted = await self.blob_http.request("POST", URL(post_url), body=body, expect={200, 201, 204})
        key = fields["key"].replace("${filename}", name)
        if posted.status == 201 and posted.body:
            try:
                found = ET.fromstring(posted.body).findtext("Key")
            except ET.ParseError:
                raise InvalidResponse("S3 answered the upload with unparseable XML") from None
            key = found or key
        return post_url.rstrip("/") + "/" + quote(key, safe="/")

    async def upload(self, parent_id: str, name: str, source: UploadSource) -> RemoteItem:
        size = source.size
        if parent_id == ROOT_ID:
            raise Unsupported("Cliniko keeps attachments per patient: put the file in a patient folder")
        if not parent_id.isdigit() or not self._in_library(parent_id):
            raise Unsupported(f"folder {parent_id!r} is not a patient of this library")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise Unsupported("the file name contains control characters, which an S3 upload cannot carry")
        upload_url = await self._presigned_post(parent_id, name, source)
        created = await self._api(
            "POST",
            self._url("/patient_attachments"),
            json={"patient_id": parent_id, "upload_url": upload_url},
            expect={201},
        )
        self._cache = None
        record = await self._wait_processed(parse_attachment(created.json()))
        if record.processed and record.size is not None and record.size != size:
            mismatch = f"upload of {name!r}: Cliniko stored {record.size} bytes, we sent {size}"
            await refuse_upload(
                lambda: self._archive(record.id), record.id, event="bad_upload_not_archived", mismatch=mismatch
            )
        if record.processed and record.filename != name:
            log.warning("cliniko_renamed_upload", sent=name, stored=record.filename, remote_id=record.id)
        item = self._file_item(record, name=name, size=size)
        if not record.processed:
            self._pending[record.id] = item
            log.warning(
                "cliniko_processing_slow",
                remote_id=record.id,
                waited_s=self.processing_wait,
                detail="the attachment is still processing; it is kept as uploaded and checked on the next poll",
            )
        log.debug("attachment_uploaded", remote_id=record.id, patient_id=parent_id, bytes=size)
        return item

    async def current(self, item: RemoteItem) -> RemoteItem | None:
        """``GET /patient_attachments/ID``: an archived attachment, or one of a patient outside the
        library, comes back without a parent; patients (folders) are never deleted, so never checked."""
        if item.is_dir:
            return item
        try:
            record = parse_attachment(await self._get_json(self._url(f"/patient_attachments/{item.remote_id}")))
        except NotFound:
            return None
        return self._file_item(record)

    async def _wait_processed(self, record: AttachmentRecord) -> AttachmentRecord:
        """Poll the new attachment until its asynchronous processing is done (or time runs out)."""
        deadline = time.monotonic() + self.processing_wait
        delay = 0.2
        while not record.processed and time.monotonic() < deadline:
            await anyio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(5.0, delay * 2)
            record = parse_attachment(await self._get_json(self._url(f"/patient_attachments/{record.id}")))
        return record

    async def _archive(self, attachment_id: str) -> None:
        url = self._url(f"/patient_attachments/{attachment_id}/archive")
        await self._api("POST", url, expect={200, 204}, idempotent=True)  # archiving twice changes nothing
        self._pending.pop(attachment_id, None)
        self._cache = None

    # --- what Cliniko cannot do -----------------------------------------------------------------

    async def update(self, item: RemoteItem, source: UploadSource) -> RemoteItem:
        raise Unsupported("Cliniko attachments are immutable; a new version is uploaded as a new attachment")

    async def move(self, item: RemoteItem, parent_id: str, name: str) -> RemoteItem:
        raise Unsupported("Cliniko attachments cannot be renamed or moved")

    async def delete(self, item: RemoteItem) -> None:
        """Archive the attachment (Cliniko's delete; it can be restored in Cliniko)."""
        if item.is_dir:
            raise Unsupported("Cliniko patients are never deleted by libmirror")
        await self._archive(item.remote_id)
        log.debug("attachment_archived", remote_id=item.remote_id)

    async def mkdir(self, parent_id: str, name: str) -> RemoteItem:
        raise Unsupported("Cliniko patient folders are matched to existing patients, not created")
