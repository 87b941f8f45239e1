"""CoreData tenant nodes (space, folders, trash, files) and their JSON shapes.

One ``Node`` type covers every kind so the store can keep a single table and a single id index.
Paths are not stored: they are derived from the parent chain when a node is rendered, so renaming
or moving a folder changes the ``path`` of everything below it without touching those rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["space", "folder", "trash", "file"]
CONTAINER_KINDS = ("space", "folder", "trash")
TRASH_PATH = "/domain/trash"
SPACES_PATH = "/domain/spaces"


@dataclass(slots=True)
class Node:
    id: str
    kind: Kind
    title: str
    parent: str | None
    created: str
    modified: str
    filename: str = ""
    blob_name: str = ""
    digest: str = ""
    size: int = 0
    mime_type: str = ""
    snapshot_id: str = ""
    version: int = 0

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


def node_path(node: Node, nodes: Mapping[str, Node]) -> str:
    """``/domain/spaces/<space>/<folders…>/<name>`` or ``/domain/trash/<name>``."""
    parts: list[str] = []
    current: Node | None = node
    while current is not None:
        if current.kind == "trash":
            return TRASH_PATH + "".join("/" + p for p in reversed(parts))
        parts.append(current.filename if current.is_file else current.title)
        if current.kind == "space":
            return SPACES_PATH + "".join("/" + p for p in reversed(parts))
        current = nodes.get(current.parent) if current.parent else None
    return "/" + "/".join(reversed(parts))


def space_of(node: Node, nodes: Mapping[str, Node]) -> Node | None:
    current: Node | None = node
    while current is not None:
        if current.kind == "space":
            return current
        current = nodes.get(current.parent) if current.parent else None
    return None


def file_json(node: Node, nodes: Mapping[str, Node]) -> dict[str, Any]:
    space = space_of(node, nodes)
    return {
        "id": node.id,
        "filename": node.filename,
        "title": node.title,
        "digest": node.digest,
        "size": node.size,
        "mime_type": node.mime_type,
        "parent": node.parent,
        "path": node_path(node, nodes),
        "created": node.created,
        "modified": node.modified,
        "snapshot_id": node.snapshot_id,
        "version": f"0.{node.version}",
        "project": None,
        "space": {"id": space.id, "title": space.title} if space else None,
        "resource_uri": f"/api/v2/files/{node.id}/",
        "type": "File",
        "tags": [],
        "blob_name": node.blob_name,
    }


def folder_json(node: Node, nodes: Mapping[str, Node]) -> dict[str, Any]:
    return {
        "id": node.id,
        "title": node.title,
        "parent": node.parent,
        "path": node_path(node, nodes),
        "created": node.created,
        "modified": node.modified,
        "resource_uri": f"/api/v2/folders/{node.id}/",
        "type": "Folder",
    }


def space_json(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "title": node.title,
        "path": f"{SPACES_PATH}/{node.title}",
        "created": node.created,
        "modified": node.modified,
        "resource_uri": f"/api/v2/spaces/{node.id}/",
        "type": "Space",
    }
