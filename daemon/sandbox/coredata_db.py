"""SQLite persistence of a CoreData sandbox (WAL): one row per node, one per reserved upload blob.

The in-memory indexes are the source of truth while running; every change writes only the rows it
touched, so a tenant of 100,000 files costs nothing extra per change. ``batch()`` groups many
changes into one transaction (seeding).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from daemon.sandbox.coredata_model import Node

_NODE_COLUMNS = [f.name for f in fields(Node)]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS nodes (
    {", ".join(c + (" TEXT PRIMARY KEY" if c == "id" else "") for c in _NODE_COLUMNS)}
);
CREATE TABLE IF NOT EXISTS upload_blobs (
    name TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    content_length INTEGER NOT NULL,
    digest TEXT
);
"""


@dataclass(slots=True)
class UploadBlob:
    """A blob reserved through ``presigned-upload-url``; ``digest`` is set once its bytes arrived."""

    name: str
    content_type: str
    content_length: int
    digest: str | None = None


class CoreDataDb:
    def __init__(self, path: Path) -> None:
        self.is_new = not path.exists()
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._depth = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run the enclosed changes in one transaction (nested batches join the outer one)."""
        if self._depth == 0:
            self._conn.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._conn.execute("COMMIT")

    def load_nodes(self) -> list[Node]:
        cursor = self._conn.execute(f"SELECT {', '.join(_NODE_COLUMNS)} FROM nodes ORDER BY created, id")
        return [Node(*row) for row in cursor]

    def load_upload_blobs(self) -> list[UploadBlob]:
        cursor = self._conn.execute("SELECT name, content_type, content_length, digest FROM upload_blobs")
        return [UploadBlob(*row) for row in cursor]

    def save_node(self, node: Node) -> None:
        marks = ", ".join("?" for _ in _NODE_COLUMNS)
        with self.batch():
            self._conn.execute(
                f"INSERT OR REPLACE INTO nodes ({', '.join(_NODE_COLUMNS)}) VALUES ({marks})", astuple(node)
            )

    def save_nodes(self, nodes: Iterable[Node]) -> None:
        """Many new rows in one statement (benchmark seeding of a million files)."""
        marks = ", ".join("?" for _ in _NODE_COLUMNS)
        with self.batch():
            self._conn.executemany(
                f"INSERT OR REPLACE INTO nodes ({', '.join(_NODE_COLUMNS)}) VALUES ({marks})", map(astuple, nodes)
            )

    def delete_node(self, node_id: str) -> None:
        with self.batch():
            self._conn.execute("DELETE FROM nodes WHERE id = ?", (node_id,))

    def save_upload_blob(self, blob: UploadBlob) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO upload_blobs (name, content_type, content_length, digest) VALUES (?, ?, ?, ?)",
                (blob.name, blob.content_type, blob.content_length, blob.digest),
            )

    def close(self) -> None:
        self._conn.close()
