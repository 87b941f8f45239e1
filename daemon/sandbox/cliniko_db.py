"""SQLite persistence of a Cliniko sandbox: one JSON row per patient, attachment and S3 object.

The in-memory dicts of ``ClinikoBackend`` are the source of truth while it runs; each change writes
only the row it touched. Rows are JSON so the record types can grow without migrations.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from daemon.sandbox.cliniko_model import Attachment, Patient, StoredObject

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ClinikoDb:
    def __init__(self, path: Path) -> None:
        self.is_new = not path.exists()
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._depth = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for the enclosed changes (nested batches join the outer one)."""
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

    def load(self) -> tuple[list[Patient], list[Attachment], list[StoredObject], dict[str, str]]:
        patients = [Patient(**json.loads(r[0])) for r in self._conn.execute("SELECT data FROM patients ORDER BY id")]
        attachments = [
            Attachment(**json.loads(r[0])) for r in self._conn.execute("SELECT data FROM attachments ORDER BY id")
        ]
        objects = [StoredObject(**json.loads(r[0])) for r in self._conn.execute("SELECT data FROM objects")]
        meta = {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
        return patients, attachments, objects, meta

    def save_patient(self, p: Patient) -> None:
        with self.batch():
            self._conn.execute("INSERT OR REPLACE INTO patients VALUES (?, ?)", (p.id, json.dumps(asdict(p))))

    def save_attachment(self, a: Attachment) -> None:
        with self.batch():
            self._conn.execute("INSERT OR REPLACE INTO attachments VALUES (?, ?)", (a.id, json.dumps(asdict(a))))

    def save_object(self, o: StoredObject) -> None:
        with self.batch():
            self._conn.execute("INSERT OR REPLACE INTO objects VALUES (?, ?)", (o.key, json.dumps(asdict(o))))

    def set_meta(self, key: str, value: str) -> None:
        with self.batch():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._conn.close()
