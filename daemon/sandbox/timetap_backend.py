"""The TimeTap business a sandbox serves: the file library (folders and files), session tokens, blobs.

Handlers and tests both drive it: handlers through the HTTP API, tests directly (``add_file``,
``set_content``, ``rename``, ``soft_delete``...) to play "someone changed the library in TimeTap".
Validation failures raise ``ApiError`` with the status the HTTP API answers.

Sandbox decisions (``timetap-files.txt`` documents the fields, not these; change them here):
- ids (``fileLibraryUUID``) are UUID strings; ``createdDate``/``modifiedDate`` are epoch ms from a
  clock that never repeats a value, so every change gives a new ``(fileSize, modifiedDate)``.
- types: ``FOLDER``, ``DOCUMENT`` (private, bucket ``tt-client-private``, presigned expiring ``url``)
  and ``ASSET`` (public, bucket ``tt-client-public``, plain ``url``). An upload without
  ``fileLibraryType`` is a private ``DOCUMENT``.
- ``POST /files`` with an existing ``fileLibraryUUID`` updates ``fileName``, ``parentFileLibraryUUID``
  (explicit null = top level; key absent = unchanged) and ``publicVisible``; other fields are read-only
  and ignored. The type of an object cannot change (400). A folder cannot go into itself (400).
- ``DELETE /files/UUID`` removes the object for good (204); a folder that still holds anything
  answers 409. ``deleted: true`` objects (soft-deleted by TimeTap's own UI, ``soft_delete``) stay in
  ``GET /files`` and can be neither changed nor used as a parent.
- session tokens expire after ``token_ttl`` seconds (default 3600) and then answer 401; with
  ``token_uses`` = N (tests) a token also expires after N authenticated requests, so "a token expires
  mid-run" is reproducible.
- Content is immutable per blob: TimeTap has no content update, so ``set_content`` (a test helper)
  stands for another app replacing the stored file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from daemon.sandbox.access_log import RequestLog
from daemon.sandbox.blobs import BlobStore, BlobWritten, new_blob_name
from daemon.sandbox.middleware import ApiError
from daemon.sandbox.signing import UrlSigner

FOLDER = "FOLDER"
DOCUMENT = "DOCUMENT"
ASSET = "ASSET"
TYPES = (FOLDER, DOCUMENT, ASSET)
PRIVATE_BUCKET = "tt-client-private"
PUBLIC_BUCKET = "tt-client-public"
API_PREFIX = "/live"
BLOB_PREFIX = "/s3"
CREDENTIALS_FILE = "timetap-credentials.json"


@dataclass(slots=True)
class FileObject:
    """One entry of the file library, with the fields of ``timetap-files.txt`` plus the blob behind it."""

    fileLibraryUUID: str
    fileName: str
    fileLibraryType: str
    parentFileLibraryUUID: str | None
    businessId: int
    createdDate: int
    modifiedDate: int
    createdUser: str
    modifiedUser: str
    fileSize: int = 0
    contentType: str | None = None
    extension: str | None = None
    s3Key: str | None = None
    blob: str | None = None  # our blob name (not on the wire)
    deleted: bool = False
    publicVisible: bool = False

    @property
    def id(self) -> str:
        return self.fileLibraryUUID

    @property
    def is_folder(self) -> bool:
        return self.fileLibraryType == FOLDER

    @property
    def bucket(self) -> str | None:
        if self.is_folder:
            return None
        return PUBLIC_BUCKET if self.fileLibraryType == ASSET else PRIVATE_BUCKET


@dataclass(frozen=True, slots=True)
class TimeTapCredentials:
    api_key: str
    private_key: str
    signing_secret: str
    business_id: int
    user_name: str


def _load_or_create_credentials(data_dir: Path) -> TimeTapCredentials:
    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
        return TimeTapCredentials(**raw)
    creds = TimeTapCredentials(
        api_key=str(secrets.randbelow(900_000) + 100_000),  # TimeTap API keys are numeric
        private_key=secrets.token_hex(16),
        signing_secret=secrets.token_hex(32),
        business_id=secrets.randbelow(90_000) + 10_000,
        user_name="sandbox.admin",
    )
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(asdict(creds)), encoding="utf-8")
    tmp.replace(path)
    return creds


def md5_signature(api_key: str, private_key: str) -> str:
    """``signature`` of ``GET /sessionToken`` (doc): md5 hex of the API key followed by the private key."""
    return hashlib.md5((api_key + private_key).encode()).hexdigest()


class MillisClock:
    """Epoch milliseconds that never repeat and never go back (one server, one clock)."""

    def __init__(self) -> None:
        self._last = 0

    def observe(self, value: int) -> None:
        self._last = max(self._last, value)

    def now(self) -> int:
        value = max(int(time.time() * 1000), self._last + 1)
        self._last = value
        return value


class _Db:
    """Objects persisted as JSON rows in SQLite (WAL); the in-memory dict is the truth while running."""

    def __init__(self, path: Path) -> None:
        self.is_new = not path.exists()
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS objects (uuid TEXT PRIMARY KEY, body TEXT NOT NULL)")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many changes in one transaction (seeding)."""
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def load(self) -> list[FileObject]:
        rows = self._conn.execute("SELECT body FROM objects")
        return [FileObject(**json.loads(body)) for (body,) in rows]

    def save(self, obj: FileObject) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO objects (uuid, body) VALUES (?, ?)", (obj.fileLibraryUUID, json.dumps(asdict(obj)))
        )

    def delete(self, object_id: str) -> None:
        self._conn.execute("DELETE FROM objects WHERE uuid = ?", (object_id,))

    def close(self) -> None:
        self._conn.close()


class TimeTapBackend:
    """One business: its file library, its API credentials and the session tokens handed out."""

    provider = "timetap"

    def __init__(
        self,
        data_dir: Path,
        *,
        token_ttl: float = 3600.0,
        presign_ttl: float = 300.0,
        token_uses: int = 0,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.token_ttl = float(token_ttl)
        self.token_uses = int(token_uses)
        self.uses: dict[str, int] = {}  # token -> authenticated requests made with it
        self.presign_ttl = float(presign_ttl)
        self.credentials = _load_or_create_credentials(data_dir)
        self.signer = UrlSigner(self.credentials.signing_secret, "AKIATIMETAPSANDBOX")
        self.blobs = BlobStore(data_dir / "blobs")
        self.clock = MillisClock()
        self.requests = RequestLog()
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.objects: dict[str, FileObject] = {}
        self.db = _Db(data_dir / "timetap.sqlite3")
        self.is_new = self.db.is_new
        for obj in self.db.load():
            self.objects[obj.fileLibraryUUID] = obj
            self.clock.observe(obj.modifiedDate)

    def close(self) -> None:
        self.db.close()

    # ---- credentials -------------------------------------------------------------------------

    @property
    def business_id(self) -> int:
        return self.credentials.business_id

    def remote_table(self, base_url: str) -> dict[str, Any]:
        """A ready ``[library.remote]`` table for a library mirroring the whole file library."""
        return {
            "base_url": base_url + API_PREFIX,
            "api_key": self.credentials.api_key,
            "private_key": self.credentials.private_key,
            "business_id": self.business_id,
            "user_name": self.credentials.user_name,
        }

    def issue_token(self, api_key: str, timestamp: str, signature: str) -> str:
        """``GET /sessionToken``: 401 unless the key is ours and the signature is md5(apiKey + privateKey)."""
        if not api_key or not signature or not timestamp:
            raise ApiError(401, "apiKey, timestamp and signature are required")
        if not timestamp.isdigit():
            raise ApiError(400, "timestamp must be epoch seconds or milliseconds")
        expected = md5_signature(self.credentials.api_key, self.credentials.private_key)
        key_ok = hmac.compare_digest(api_key.encode(), self.credentials.api_key.encode())
        if not (key_ok & hmac.compare_digest(signature.lower().encode(), expected.encode())):
            raise ApiError(401, "invalid apiKey or signature")
        now = time.time()
        for token, expiry in list(self.tokens.items()):
            if expiry <= now:
                del self.tokens[token]
                self.uses.pop(token, None)
        token = f"st:api:api:{secrets.token_hex(16)}"
        self.tokens[token] = now + self.token_ttl
        return token

    def check_token(self, header: str) -> None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "a session token is required (Authorization: Bearer TOKEN)")
        token = token.strip()
        expiry = self.tokens.get(token)
        if expiry is None:
            raise ApiError(401, "unknown session token")
        used = self.uses.get(token, 0)
        if time.time() >= expiry or (self.token_uses and used >= self.token_uses):
            raise ApiError(401, "session token expired")
        self.uses[token] = used + 1

    def expire_tokens(self) -> None:
        """Test helper: every token handed out so far is expired from now on."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    # ---- wire format -------------------------------------------------------------------------

    def url_of(self, obj: FileObject, origin: str) -> str | None:
        """Plain URL for public ``ASSET`` files, a presigned expiring one for private files."""
        if obj.is_folder or obj.blob is None:
            return None
        path = f"{origin}{BLOB_PREFIX}/{obj.bucket}/{obj.blob}"
        if obj.fileLibraryType == ASSET:
            return path
        return f"{path}?{self.signer.query('GET', obj.blob, self.presign_ttl)}"

    def to_json(self, obj: FileObject, origin: str) -> dict[str, Any]:
        return {
            "businessId": obj.businessId,
            "calendarId": None,
            "clientId": None,
            "contentType": obj.contentType,
            "createdDate": obj.createdDate,
            "createdUser": obj.createdUser,
            "deleted": obj.deleted,
            "emailId": None,
            "encrypted": False,
            "extension": obj.extension,
            "fileLibraryType": obj.fileLibraryType,
            "fileLibraryUUID": obj.fileLibraryUUID,
            "fileName": obj.fileName,
            "fileSize": obj.fileSize,
            "modifiedDate": obj.modifiedDate,
            "modifiedUser": obj.modifiedUser,
            "parentFileLibraryUUID": obj.parentFileLibraryUUID,
            "professionalId": None,
            "publicVisible": obj.publicVisible,
            "referenceId": None,
            "s3Bucket": obj.bucket,
            "s3Key": obj.s3Key,
            "url": self.url_of(obj, origin),
        }

    # ---- lookups -----------------------------------------------------------------------------

    def get(self, object_id: str) -> FileObject:
        obj = self.objects.get(object_id)
        if obj is None:
            raise ApiError(404, f"file {object_id} not found")
        return obj

    def listing(self, *, type_filter: str | None = None, parent: str | None = None) -> list[FileObject]:
        """``GET /files``: every object (soft-deleted ones included), oldest first."""
        rows = sorted(self.objects.values(), key=lambda o: (o.createdDate, o.fileLibraryUUID))
        if type_filter is not None:
            rows = [o for o in rows if o.fileLibraryType == type_filter]
        if parent is not None:
            rows = [o for o in rows if o.parentFileLibraryUUID == parent]
        return rows

    def path_of(self, obj: FileObject) -> str:
        """``"Folder/Sub/name"`` from the top of the library (test helper)."""
        parts = [obj.fileName]
        seen = {obj.fileLibraryUUID}
        parent = obj.parentFileLibraryUUID
        while parent is not None and parent not in seen:
            seen.add(parent)
            node = self.objects[parent]
            parts.append(node.fileName)
            parent = node.parentFileLibraryUUID
        return "/".join(reversed(parts))

    def by_path(self, path: str) -> FileObject:
        """The live object at ``path`` (test helper); KeyError when there is none."""
        for obj in self.objects.values():
            if not obj.deleted and self.path_of(obj) == path.strip("/"):
                return obj
        raise KeyError(path)

    def tree(self) -> dict[str, FileObject]:
        """Every live file by path (test helper)."""
        return {self.path_of(o): o for o in self.objects.values() if not o.deleted and not o.is_folder}

    def read_content(self, object_id: str) -> bytes:
        obj = self.get(object_id)
        if obj.blob is None:
            raise ApiError(400, f"{object_id} is a folder")
        return self.blobs.read_bytes(obj.blob)

    # ---- changes -----------------------------------------------------------------------------

    def _save(self, obj: FileObject) -> None:
        self.objects[obj.fileLibraryUUID] = obj
        self.db.save(obj)

    def _parent(self, parent: Any) -> str | None:
        """A valid parent: None (top level) or a live folder's id; 400 otherwise."""
        if parent is None or parent == "":
            return None
        if not isinstance(parent, str):
            raise ApiError(400, "parentFileLibraryUUID must be a string")
        node = self.objects.get(parent)
        if node is None or node.deleted or not node.is_folder:
            raise ApiError(400, f"parentFileLibraryUUID {parent} is not an existing folder")
        return parent

    def check_business(self, value: Any) -> None:
        try:
            given = int(value)
        except (TypeError, ValueError):
            raise ApiError(400, "businessId is required") from None
        if given != self.business_id:
            raise ApiError(403, f"businessId {given} is not this account's business")

    def create_folder(self, name: Any, parent: Any, business_id: Any, user: str = "api") -> FileObject:
        self.check_business(business_id)
        stamp = self.clock.now()
        obj = FileObject(
            fileLibraryUUID=str(uuid.uuid4()),
            fileName=_name(name),
            fileLibraryType=FOLDER,
            parentFileLibraryUUID=self._parent(parent),
            businessId=self.business_id,
            createdDate=stamp,
            modifiedDate=stamp,
            createdUser=user,
            modifiedUser=user,
        )
        self._save(obj)
        return obj

    def create_file(
        self, name: Any, parent: Any, blob: BlobWritten, *, kind: str = DOCUMENT, user: str = "api"
    ) -> FileObject:
        """A new file over an already stored blob (validates before anything becomes visible)."""
        if kind not in (DOCUMENT, ASSET):
            raise ApiError(400, f"fileLibraryType {kind!r} cannot be uploaded (DOCUMENT or ASSET)")
        name = _name(name)
        parent_id = self._parent(parent)
        stamp = self.clock.now()
        ext = name.rpartition(".")[2].lower() if "." in name else None
        obj = FileObject(
            fileLibraryUUID=str(uuid.uuid4()),
            fileName=name,
            fileLibraryType=kind,
            parentFileLibraryUUID=parent_id,
            businessId=self.business_id,
            createdDate=stamp,
            modifiedDate=stamp,
            createdUser=user,
            modifiedUser=user,
            fileSize=blob.size,
            contentType=mimetypes.guess_type(name)[0] or "application/octet-stream",
            extension=ext,
            s3Key=f"{self.business_id}/fileLibrary/{blob.name}/{quote(name)}",
            blob=blob.name,
            publicVisible=kind == ASSET,
        )
        self._save(obj)
        return obj

    def update(self, body: Any, user: str = "api") -> FileObject:
        """``POST /files`` on an existing object: rename, move, visibility."""
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a file object")
        obj = self.get(str(body.get("fileLibraryUUID")))
        if obj.deleted:
            raise ApiError(400, f"file {obj.fileLibraryUUID} is deleted")
        self.check_business(body.get("businessId"))
        kind = body.get("fileLibraryType")
        if kind != obj.fileLibraryType:
            raise ApiError(400, f"fileLibraryType is required and cannot change (is {obj.fileLibraryType})")
        name = _name(body.get("fileName"))
        parent = (
            self._parent(body["parentFileLibraryUUID"])
            if "parentFileLibraryUUID" in body
            else obj.parentFileLibraryUUID
        )
        ancestor = parent
        while ancestor is not None:
            if ancestor == obj.fileLibraryUUID:
                raise ApiError(400, "a folder cannot be moved into itself or its descendants")
            ancestor = self.objects[ancestor].parentFileLibraryUUID
        obj.fileName = name
        obj.parentFileLibraryUUID = parent
        if isinstance(body.get("publicVisible"), bool):
            obj.publicVisible = body["publicVisible"]
        obj.modifiedDate = self.clock.now()
        obj.modifiedUser = user
        self._save(obj)
        return obj

    def delete(self, object_id: str) -> None:
        """Permanent removal; a folder must be empty (409)."""
        obj = self.get(object_id)
        if obj.is_folder and any(o.parentFileLibraryUUID == object_id for o in self.objects.values()):
            raise ApiError(409, f"folder {object_id} is not empty")
        del self.objects[object_id]
        self.db.delete(object_id)
        if obj.blob is not None:
            self.blobs.remove(obj.blob)

    # ---- test and seed helpers -----------------------------------------------------------------

    def add_folder(self, parent: str | None, title: str) -> FileObject:
        return self.create_folder(title, parent, self.business_id, user="seed")

    def add_file(self, parent: str | None, filename: str, data: bytes, *, title: str | None = None) -> FileObject:
        """Store ``data`` as a new file; pictures are public ``ASSET`` files, the rest private."""
        kind = ASSET if filename.lower().endswith((".jpg", ".png")) else DOCUMENT
        blob = self.blobs.write_bytes(new_blob_name(), data)
        return self.create_file(title or filename, parent, blob, kind=kind, user="seed")

    def set_content(self, object_id: str, data: bytes) -> FileObject:
        """Another app replaced the stored file: new blob, new size, new ``modifiedDate``."""
        obj = self.get(object_id)
        old = obj.blob
        blob = self.blobs.write_bytes(new_blob_name(), data)
        obj.blob, obj.fileSize = blob.name, blob.size
        obj.modifiedDate = self.clock.now()
        self._save(obj)
        if old is not None:
            self.blobs.remove(old)
        return obj

    def rename(self, object_id: str, name: str, parent: str | None = None, *, keep_parent: bool = True) -> FileObject:
        obj = self.get(object_id)
        body: dict[str, Any] = {
            "fileLibraryUUID": object_id,
            "businessId": self.business_id,
            "fileLibraryType": obj.fileLibraryType,
            "fileName": name,
        }
        if not keep_parent:
            body["parentFileLibraryUUID"] = parent
        return self.update(body, user="web")

    def soft_delete(self, object_id: str) -> FileObject:
        """TimeTap's own UI marks an object deleted: it stays in ``GET /files`` with ``deleted: true``."""
        obj = self.get(object_id)
        obj.deleted = True
        obj.modifiedDate = self.clock.now()
        self._save(obj)
        return obj


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "fileName is required")
    if "\x00" in value:
        raise ApiError(400, "fileName may not contain NUL")
    return value
