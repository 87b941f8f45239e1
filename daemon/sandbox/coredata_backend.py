"""The CoreData tenant a sandbox serves: nodes in memory with indexes, persisted to SQLite in DIR.

Handlers and tests both drive it: handlers through the HTTP API, tests directly (``add_file``,
``set_content``, ``update_file``...) to play "someone changed the library on the server".
Validation failures raise ``ApiError`` with the status the HTTP API answers.

Sandbox decisions (the vendor documents none of these; change them here, in one place):
- ``DELETE`` of a file moves it to the tenant trash (``/domain/trash``), bumping ``modified``;
  deleting a file that already is in the trash removes it for good.
- Folders: ``POST /api/v2/folders/`` ``{title, parent}`` creates, ``PUT`` renames/moves (its
  descendants' paths change, their ``modified`` does not), ``DELETE`` removes an empty folder for
  good and answers 409 when it still holds anything. The space and the trash cannot be changed.
- Duplicate file names and folder titles in one parent are allowed.
- Listing order without ``order_by`` is creation order (created, then id); every change gets a
  strictly later ``modified`` from the server clock (``clock_skew_s`` shifts that clock).
- A parent id that names no space/folder, or names the trash, answers 400 on create and move.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemon.sandbox.access_log import RequestLog
from daemon.sandbox.blobs import BlobStore, BlobWritten, new_blob_name
from daemon.sandbox.clock import ServerClock
from daemon.sandbox.coredata_db import CoreDataDb, UploadBlob
from daemon.sandbox.coredata_listing import ListQuery, select
from daemon.sandbox.coredata_model import Kind, Node, node_path
from daemon.sandbox.credentials import Credentials, load_or_create
from daemon.sandbox.middleware import ApiError
from daemon.sandbox.signing import UrlSigner

_CACHE_SIZE = 8


def _new_id() -> str:
    return str(uuid.uuid1())


def guess_mime(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class CoreDataBackend:
    """One tenant: a space (the library root), folders, files and a trash folder."""

    provider = "coredata"

    def __init__(
        self,
        data_dir: Path,
        *,
        presign_ttl: float = 300.0,
        page_limit_max: int = 1000,
        space_title: str = "Sandbox",
        clock_skew_s: float = 0.0,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.presign_ttl = float(presign_ttl)
        self.page_limit_max = int(page_limit_max)
        self.credentials: Credentials = load_or_create(data_dir)
        self.signer = UrlSigner(self.credentials.signing_secret, f"s3f:{self.credentials.api_user}")
        self.blobs = BlobStore(data_dir / "blobs")
        self.clock = ServerClock(skew_s=clock_skew_s)
        self.requests = RequestLog()
        self.nodes: dict[str, Node] = {}
        self._children: dict[str, dict[str, None]] = {}
        self._files: dict[str, Node] = {}  # creation order
        self._folders: dict[str, Node] = {}  # creation order, incl. trash
        self.upload_blobs: dict[str, UploadBlob] = {}
        self.generation = 0
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, list[Node]]] = OrderedDict()
        self.db = CoreDataDb(data_dir / "coredata.sqlite3")
        self.is_new = self.db.is_new
        for node in self.db.load_nodes():
            self._index(node)
            self.clock.observe(node.modified)
        for blob in self.db.load_upload_blobs():
            self.upload_blobs[blob.name] = blob
        if not any(n.kind == "space" for n in self.nodes.values()):
            with self.db.batch():
                self._save(self._new_container("space", space_title, None))
                self._save(self._new_container("trash", "trash", None))
        self.root_id = next(n.id for n in self.nodes.values() if n.kind == "space")
        self.trash_id = next(n.id for n in self.nodes.values() if n.kind == "trash")

    # ---- bookkeeping -------------------------------------------------------------------------

    def _index(self, node: Node) -> None:
        self.nodes[node.id] = node
        if node.parent is not None:
            self._children.setdefault(node.parent, {})[node.id] = None
        if node.is_file:
            self._files[node.id] = node
        elif node.kind != "space":
            self._folders[node.id] = node

    def _unindex(self, node: Node) -> None:
        self.nodes.pop(node.id, None)
        self._files.pop(node.id, None)
        self._folders.pop(node.id, None)
        if node.parent is not None:
            self._children.get(node.parent, {}).pop(node.id, None)

    def _reparent(self, node: Node, parent: str) -> None:
        if node.parent == parent:
            return
        if node.parent is not None:
            self._children.get(node.parent, {}).pop(node.id, None)
        node.parent = parent
        self._children.setdefault(parent, {})[node.id] = None

    def _save(self, node: Node) -> None:
        if node.id not in self.nodes:
            self._index(node)
        self.db.save_node(node)
        self.generation += 1

    def _new_container(self, kind: Kind, title: str, parent: str | None) -> Node:
        stamp = self.clock.now()
        return Node(id=_new_id(), kind=kind, title=title, parent=parent, created=stamp, modified=stamp)

    def close(self) -> None:
        self.db.close()

    # ---- credentials and URLs ----------------------------------------------------------------

    @property
    def api_user(self) -> str:
        return self.credentials.api_user

    @property
    def api_key(self) -> str:
        return self.credentials.api_key

    def remote_table(self, base_url: str) -> dict[str, Any]:
        """A ready ``[library.remote]`` table for a library mirroring the sandbox space."""
        return {
            "base_url": base_url,
            "root": self.root_id,
            "api_user": self.api_user,
            "api_key": self.api_key,
        }

    # ---- lookups -----------------------------------------------------------------------------

    def get_file(self, file_id: str) -> Node:
        node = self.nodes.get(file_id)
        if node is None or not node.is_file:
            raise ApiError(404, f"File {file_id} not found.")
        return node

    def get_folder(self, folder_id: str) -> Node:
        node = self.nodes.get(folder_id)
        if node is None or node.kind not in ("folder", "trash"):
            raise ApiError(404, f"Folder {folder_id} not found.")
        return node

    def get_space(self, space_id: str) -> Node:
        node = self.nodes.get(space_id)
        if node is None or node.kind != "space":
            raise ApiError(404, f"Space {space_id} not found.")
        return node

    def _container(self, parent_id: Any) -> Node:
        """The node a file or folder may be put into: the space or a folder, never the trash."""
        if not isinstance(parent_id, str) or not parent_id:
            raise ApiError(400, "The 'parent' field is mandatory.")
        node = self.nodes.get(parent_id)
        if node is None or node.kind not in ("space", "folder"):
            raise ApiError(400, f"Parent {parent_id} is not an existing space or folder.")
        return node

    def path_of(self, node: Node) -> str:
        return node_path(node, self.nodes)

    def children(self, parent_id: str) -> list[Node]:
        """Direct children in creation order."""
        kids = [self.nodes[i] for i in self._children.get(parent_id, {})]
        kids.sort(key=lambda n: (n.created, n.id))
        return kids

    def files(self) -> Iterator[Node]:
        return iter(list(self._files.values()))

    def folders(self) -> Iterator[Node]:
        return iter(list(self._folders.values()))

    def file_by_path(self, path: str) -> Node:
        """The file at ``path`` relative to the space (``"a/b.txt"``); the first one on duplicates."""
        prefix = self.path_of(self.nodes[self.root_id]) + "/"
        for node in self._files.values():
            if self.path_of(node) == prefix + path.strip("/"):
                return node
        raise KeyError(path)

    def read_content(self, file_id: str) -> bytes:
        return self.blobs.read_bytes(self.get_file(file_id).blob_name)

    # ---- listings ----------------------------------------------------------------------------

    def _selection(self, kind: str, query: ListQuery) -> list[Node]:
        key = (kind, *query.selection_key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.generation:
            self._cache.move_to_end(key)
            return cached[1]
        want_files = kind == "files"
        if query.parent is not None:
            source = [n for n in self.children(query.parent) if n.is_file == want_files and n.kind != "space"]
        else:
            source = list((self._files if want_files else self._folders).values())
        rows = select(source, query)
        self._cache[key] = (self.generation, rows)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return rows

    def list_page(self, kind: str, query: ListQuery) -> tuple[int, list[Node]]:
        """``(total_count, rows of the page)`` for ``kind`` "files" or "folders"."""
        rows = self._selection(kind, query)
        return len(rows), rows[query.offset : query.offset + query.limit]

    # ---- folders -----------------------------------------------------------------------------

    def create_folder(self, title: Any, parent: Any) -> Node:
        title = _name(title, "title")
        container = self._container(parent)
        node = self._new_container("folder", title, container.id)
        self._save(node)
        return node

    def update_folder(self, folder_id: str, title: Any, parent: Any) -> Node:
        node = self.get_folder(folder_id)
        if node.kind == "trash":
            raise ApiError(400, "The trash folder cannot be changed.")
        title = _name(title, "title")
        container = self._container(parent)
        ancestor: Node | None = container
        while ancestor is not None:
            if ancestor.id == node.id:
                raise ApiError(400, "A folder cannot be moved into itself or its descendants.")
            ancestor = self.nodes.get(ancestor.parent) if ancestor.parent else None
        node.title = title
        self._reparent(node, container.id)
        node.modified = self.clock.now()
        self._save(node)
        return node

    def delete_folder(self, folder_id: str) -> None:
        node = self.get_folder(folder_id)
        if node.kind == "trash":
            raise ApiError(400, "The trash folder cannot be deleted.")
        if self._children.get(node.id):
            raise ApiError(409, f"Folder {folder_id} is not empty.")
        self._unindex(node)
        self._children.pop(node.id, None)
        self.db.delete_node(node.id)
        self.generation += 1

    # ---- files -------------------------------------------------------------------------------

    def create_file(self, parent: Any, filename: Any, title: Any, blob: BlobWritten) -> Node:
        """Create a file over an already stored blob (validates before anything becomes visible)."""
        filename = _name(filename, "filename")
        title = _name(title, "title")
        container = self._container(parent)
        stamp = self.clock.now()
        node = Node(
            id=_new_id(),
            kind="file",
            title=title,
            parent=container.id,
            created=stamp,
            modified=stamp,
            filename=filename,
            blob_name=blob.name,
            digest=blob.digest,
            size=blob.size,
            mime_type=guess_mime(filename),
            snapshot_id=_new_id(),
            version=1,
        )
        self._save(node)
        return node

    def add_file(self, parent: str | None, filename: str, data: bytes, *, title: str | None = None) -> Node:
        """Test/seed helper: store ``data`` and create a file (``parent`` None = the space)."""
        blob = self.blobs.write_bytes(new_blob_name(), data)
        return self.create_file(parent or self.root_id, filename, title or Path(filename).stem or filename, blob)

    def add_folder(self, parent: str | None, title: str) -> Node:
        """Test/seed helper: create a folder (``parent`` None = the space)."""
        return self.create_folder(title, parent or self.root_id)

    def replace_content(
        self, file_id: str, blob: BlobWritten, *, filename: str | None = None, snapshot_id: str | None = None
    ) -> Node:
        """New content for a file; ``snapshot_id`` (when given) must be the current one, else 409."""
        node = self.get_file(file_id)
        if snapshot_id is not None and snapshot_id != node.snapshot_id:
            raise ApiError(
                409,
                f"snapshot_id {snapshot_id} is not the current snapshot of file {file_id}; reload and retry.",
            )
        if filename is not None:
            node.filename = _name(filename, "filename")
            node.mime_type = guess_mime(node.filename)
        node.blob_name, node.digest, node.size = blob.name, blob.digest, blob.size
        node.snapshot_id = _new_id()
        node.version += 1
        node.modified = self.clock.now()
        self._save(node)
        return node

    def set_content(self, file_id: str, data: bytes) -> Node:
        """Test helper: replace a file's content as another user would."""
        return self.replace_content(file_id, self.blobs.write_bytes(new_blob_name(), data))

    def update_file(self, file_id: str, title: Any, filename: Any, parent: Any) -> Node:
        """Rename and/or move; content and snapshot stay."""
        node = self.get_file(file_id)
        title = _name(title, "title")
        filename = _name(filename, "filename")
        container = self._container(parent)
        node.title, node.filename = title, filename
        node.mime_type = guess_mime(filename)
        self._reparent(node, container.id)
        node.modified = self.clock.now()
        self._save(node)
        return node

    def delete_file(self, file_id: str) -> None:
        """Move to the trash; a file already in the trash is removed for good."""
        node = self.get_file(file_id)
        if node.parent == self.trash_id:
            self._unindex(node)
            self.db.delete_node(node.id)
            self.generation += 1
            return
        self._reparent(node, self.trash_id)
        node.modified = self.clock.now()
        self._save(node)

    # ---- presigned uploads -------------------------------------------------------------------

    def reserve_upload(self, content_type: str, content_length: int) -> UploadBlob:
        blob = UploadBlob(new_blob_name(), content_type, content_length)
        self.upload_blobs[blob.name] = blob
        self.db.save_upload_blob(blob)
        return blob

    def finish_upload(self, written: BlobWritten) -> None:
        blob = self.upload_blobs[written.name]
        blob.digest = written.digest
        self.db.save_upload_blob(blob)

    def uploaded_blob(self, name: Any) -> BlobWritten:
        """An upload blob whose bytes arrived, as a ``BlobWritten``; 400 otherwise."""
        blob = self.upload_blobs.get(name) if isinstance(name, str) else None
        if blob is None or blob.digest is None:
            raise ApiError(400, f"Unknown or not yet uploaded blob_name '{name}'.")
        return BlobWritten(name=blob.name, size=blob.content_length, digest=blob.digest)


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"The '{field}' field is mandatory.")
    if "\x00" in value:
        raise ApiError(400, f"The '{field}' field may not contain NUL.")
    return value
