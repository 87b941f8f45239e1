"""The coreplus practice a sandbox serves: clients and their files, persisted in DIR (SQLite + blobs).

Handlers and tests both drive it. Validation failures raise ``ApiError`` with the status the HTTP API
answers. Sandbox decisions (the vendor documents none of these; change them here, in one place):

- Ids are upper-case GUIDs (clients, files and folders share one id space).
- An upload answers 201 ``{"file": {fileId, name, size, parentFolderId, isFolder}, "statusMessages": []}``;
  ``isFolder: true`` without a ``file`` part creates a folder.
- Duplicate names in one folder are allowed (every upload is a new file), as nothing in the doc
  says otherwise; this is what makes a re-upload visible in the inspection endpoint.
- An unknown client (``primaryDomainKey``) or parent folder answers 400; a ``size`` that differs
  from the bytes received answers 400 and stores nothing.
- The client list is paged with a 1-based ``pageNumber`` and ``pageSize`` ≤ 100 (default 20).
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.sandbox.access_log import RequestLog
from daemon.sandbox.blobs import BlobStore, new_blob_name
from daemon.sandbox.credentials import Credentials, load_or_create
from daemon.sandbox.middleware import ApiError

ISSUER = "coreplus-sandbox-consumer"
AUDIENCE = "coreplus-sandbox"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    client TEXT NOT NULL,
    parent TEXT,
    name TEXT NOT NULL,
    is_folder INTEGER NOT NULL,
    size INTEGER NOT NULL,
    digest TEXT,
    blob TEXT
);
"""

_FIRST = ["Anna", "Ben", "Chloé", "Daniel", "Emma", "Finn", "Grace", "Hiro", "Isla", "Jürgen", "Kate", "Liam"]
_LAST = ["Smith", "Nguyen", "Müller", "Brown", "Wilson", "Taylor", "O'Brien", "Chen", "Kelly", "Walker"]


def new_id() -> str:
    return str(uuid.uuid4()).upper()


@dataclass(frozen=True, slots=True)
class ClientRow:
    id: str
    first_name: str
    last_name: str

    def to_api(self) -> dict[str, Any]:
        return {"clientId": self.id, "firstName": self.first_name, "lastName": self.last_name}


@dataclass(frozen=True, slots=True)
class Item:
    """A file or folder in one client's files; ``parent`` None = the client's top level."""

    id: str
    client: str
    parent: str | None
    name: str
    is_folder: bool
    size: int = 0
    digest: str | None = None
    blob: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "fileId": self.id,
            "name": self.name,
            "size": str(self.size),
            "parentFolderId": self.parent,
            "isFolder": self.is_folder,
        }


@dataclass(frozen=True, slots=True)
class UploadMeta:
    """The validated ``json`` part of an upload."""

    client: str
    parent: str | None
    name: str
    size: int
    is_folder: bool


class CorePlusBackend:
    """One practice: its API consumer's credentials, clients, and the files uploaded for them."""

    provider = "coreplus"

    def __init__(
        self,
        data_dir: Path,
        *,
        upload_delay: float = 0.0,
        rate_limit: int = 10,
        clock_skew_s: float = 0.0,
        leeway_s: float = 0.0,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.upload_delay = float(upload_delay)
        self.rate_limit = int(rate_limit)
        self.clock_skew_s = float(clock_skew_s)  # the server clock runs this far ahead of ours
        self.leeway_s = float(leeway_s)
        creds: Credentials = load_or_create(data_dir, api_user="coreplus-sandbox-consumer")
        self.consumer_id = creds.api_user
        self.access_token = creds.api_key
        self.consumer_secret = creds.signing_secret
        self.issuer = ISSUER
        self.audience = AUDIENCE
        self.requests = RequestLog()
        self.accepted_at: list[float] = []  # server times of requests that passed auth and the limit
        self.throttled = 0
        self.blobs = BlobStore(data_dir / "blobs")
        db_path = data_dir / "coreplus.sqlite3"
        self.is_new = not db_path.exists()
        self._db = sqlite3.connect(db_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def remote_table(self, base_url: str) -> dict[str, Any]:
        return {
            "base_url": base_url,
            "consumer_id": self.consumer_id,
            "consumer_secret": self.consumer_secret,
            "access_token": self.access_token,
            "issuer": self.issuer,
            "audience": self.audience,
        }

    def close(self) -> None:
        self._db.close()

    # --- clients ----------------------------------------------------------------------------------

    def add_client(self, first_name: str, last_name: str, client_id: str | None = None) -> ClientRow:
        row = ClientRow(client_id or new_id(), first_name, last_name)
        self._db.execute("INSERT INTO clients (id, first_name, last_name) VALUES (?, ?, ?)", (row.id, *_names(row)))
        return row

    def client(self, client_id: str) -> ClientRow | None:
        found = self._db.execute(
            "SELECT id, first_name, last_name FROM clients WHERE id = ? COLLATE NOCASE", (client_id,)
        ).fetchone()
        return ClientRow(*found) if found else None

    def clients_page(self, page_number: int, page_size: int) -> tuple[list[ClientRow], int]:
        total = self._db.execute("SELECT COUNT(*) FROM clients").fetchone()[0]
        rows = self._db.execute(
            "SELECT id, first_name, last_name FROM clients ORDER BY seq LIMIT ? OFFSET ?",
            (page_size, (page_number - 1) * page_size),
        ).fetchall()
        return [ClientRow(*r) for r in rows], int(total)

    def seed(self, count: int, seed: int) -> None:
        """``count`` clients with deterministic, distinct "First Last" names."""
        rng = random.Random(seed)
        pairs = [(f, last) for f in _FIRST for last in _LAST]
        rng.shuffle(pairs)
        self._db.execute("BEGIN")
        try:
            for i in range(count):
                first, last = pairs[i % len(pairs)]
                if i >= len(pairs):
                    last = f"{last} {i // len(pairs) + 1}"
                self.add_client(first, last, str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper())
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # --- files ------------------------------------------------------------------------------------

    def item(self, item_id: str) -> Item | None:
        found = self._db.execute(
            "SELECT id, client, parent, name, is_folder, size, digest, blob FROM items WHERE id = ? COLLATE NOCASE",
            (item_id,),
        ).fetchone()
        return _item(found) if found else None

    def items_of(self, client_id: str) -> list[Item]:
        rows = self._db.execute(
            "SELECT id, client, parent, name, is_folder, size, digest, blob FROM items WHERE client = ? ORDER BY seq",
            (client_id,),
        ).fetchall()
        return [_item(r) for r in rows]

    def check_upload(self, meta: dict[str, Any]) -> UploadMeta:
        """Validate the ``json`` part as the doc describes it; ``ApiError(400)`` names the problem."""
        name, key, size, entity = (meta.get(k) for k in ("name", "primaryDomainKey", "size", "entity"))
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
            raise ApiError(400, "json: 'name' must be a non-empty file name")
        if not isinstance(entity, str) or entity.lower() != "client":
            raise ApiError(400, "json: 'entity' must be \"Client\" (only client entity is supported)")
        if not isinstance(key, str) or self.client(key) is None:
            raise ApiError(400, f"json: 'primaryDomainKey' {key!r} is not a client id")
        client = self.client(key)
        assert client is not None
        if not isinstance(size, str) or not size.isdigit():
            raise ApiError(400, "json: 'size' must be the file size in bytes as a string")
        is_folder = meta.get("isFolder", False)
        if not isinstance(is_folder, bool):
            raise ApiError(400, "json: 'isFolder' must be true or false")
        parent = meta.get("parentFolderId")
        if parent in (None, ""):
            parent = None
        elif not isinstance(parent, str):
            raise ApiError(400, "json: 'parentFolderId' must be a folder id string")
        else:
            folder = self.item(parent)
            if folder is None or not folder.is_folder or folder.client != client.id:
                raise ApiError(400, f"json: 'parentFolderId' {parent!r} is not a folder of this client")
            parent = folder.id
        return UploadMeta(client.id, parent, name, int(size), is_folder)

    def add_folder(self, meta: UploadMeta) -> Item:
        item = Item(new_id(), meta.client, meta.parent, meta.name, True)
        self._insert(item)
        return item

    async def add_file(self, meta: UploadMeta, chunks: AsyncIterable[bytes]) -> Item:
        blob = new_blob_name()
        try:
            written = await self.blobs.write_stream(blob, chunks, expect_size=meta.size)
        except ValueError as exc:
            raise ApiError(400, f"file: {exc} in json 'size'") from None
        item = Item(new_id(), meta.client, meta.parent, meta.name, False, written.size, written.digest, blob)
        self._insert(item)
        return item

    def content(self, item: Item) -> bytes:
        return self.blobs.read_bytes(item.blob) if item.blob else b""

    def _insert(self, item: Item) -> None:
        self._db.execute(
            "INSERT INTO items (id, client, parent, name, is_folder, size, digest, blob)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item.id, item.client, item.parent, item.name, int(item.is_folder), item.size, item.digest, item.blob),
        )

    # --- inspection -------------------------------------------------------------------------------

    def holdings(self) -> list[dict[str, Any]]:
        """Every client with every item and its path inside the client's files (for ``/_sandbox/``)."""
        out: list[dict[str, Any]] = []
        page, _ = self.clients_page(1, 1 << 30)
        for client in page:
            items = self.items_of(client.id)
            by_id = {i.id: i for i in items}

            def path_of(item: Item, by_id: dict[str, Item] = by_id) -> str:
                parts = [item.name]
                parent = item.parent
                while parent is not None and parent in by_id:
                    parts.append(by_id[parent].name)
                    parent = by_id[parent].parent
                return "/".join(reversed(parts))

            out.append(
                {
                    **client.to_api(),
                    "items": [{**i.to_api(), "size": i.size, "path": path_of(i), "md5": i.digest} for i in items],
                }
            )
        return out


def _names(row: ClientRow) -> tuple[str, str]:
    return row.first_name, row.last_name


def _item(row: tuple[Any, ...]) -> Item:
    item_id, client, parent, name, is_folder, size, digest, blob = row
    return Item(item_id, client, parent, name, bool(is_folder), int(size), digest, blob)
