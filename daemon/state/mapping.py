"""Rows ↔ tables, in one place: which table holds each row type of the vocabulary, and how a row
becomes the values of an upsert and a result row becomes a row again.

Everything here is derived from the row dataclasses' fields and the tables' columns, so a new field
on a row (``daemon/vocab/rows.py``) needs only its column and migration (``schema.py``,
``migrations.py``) and the code that fills or reads it; nothing in the store lists a row's columns.
``tests/state/test_mapping.py`` checks every field has its column and round-trips through the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from daemon.state import schema
from daemon.vocab import LocalRow, RemoteItem, RemoteRow, SyncedRow
from daemon.vocab.fingerprint import entry_fingerprint

R = TypeVar("R")


def parent_path(path: str) -> str:
    """The library path of the folder holding ``path`` (``""`` is the root)."""
    head, _, _ = path.rpartition("/")
    return head


def upsert(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """An INSERT ... ON CONFLICT DO UPDATE statement, built once (building it is costly per call)."""
    stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})


@dataclass(frozen=True)
class RowTable(Generic[R]):
    """How row type ``row`` is kept in ``table``: one column per field (same name), plus the columns the
    store adds itself (``lib``, and e.g. ``parent`` or ``generation``), keyed by ``keys``."""

    row: type[R]
    table: Table
    keys: tuple[str, ...]
    extra: Mapping[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)  # column → from row

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.row))  # type: ignore[arg-type]

    @property
    def booleans(self) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(self.row) if f.type in ("bool", bool))  # type: ignore[arg-type]

    def statement(self) -> Any:
        """The upsert of this row type (every column but the keys is updated on a conflict)."""
        columns = (*self.fields, *self.extra)
        return upsert(self.table, self.keys, tuple(c for c in columns if c not in self.keys and c != "lib"))

    def values_of(self) -> Callable[[int, R, Mapping[str, Any]], dict[str, Any]]:
        """``values(lib, row, given)``: the upsert's values for ``row``; ``given`` fills extra columns
        that are not derived from the row (e.g. the listing ``generation``)."""
        names = self.fields
        extra = dict(self.extra)

        def values(lib: int, row: R, given: Mapping[str, Any]) -> dict[str, Any]:
            out = {name: getattr(row, name) for name in names}
            out["lib"] = lib
            for column, derive in extra.items():
                out[column] = given[column] if column in given else derive(row)
            return out

        return values

    def reader(self, prefix: str = "") -> Callable[[Mapping[Any, Any]], R]:
        """``read(mapping)``: the row from a result row's mapping, its columns named ``prefix + field``
        (SQLite's 0/1 read back as bool for boolean fields)."""
        return self._read_by(tuple(prefix + name for name in self.fields))

    def reader_at(self, columns: Sequence[str], prefix: str = "") -> Callable[[Sequence[Any]], R]:
        """``read(row)``: as ``reader``, from a plain result row whose columns are named ``columns``
        (looked up once for the whole result, not once per row and field)."""
        where = {column: i for i, column in enumerate(columns)}
        return self._read_by(tuple(where[prefix + name] for name in self.fields))

    def _read_by(self, keys: tuple[Any, ...]) -> Callable[[Any], R]:
        flags = tuple(i for i, name in enumerate(self.fields) if name in self.booleans)
        make = self.row

        def read(m: Any) -> R:  # once per row of every tree read
            values = [m[key] for key in keys]
            for i in flags:
                values[i] = bool(values[i])
            return make(*values)

        return read


def local_fingerprint(row: LocalRow) -> int:
    """The ``fp`` column of a local row (see ``daemon/vocab/fingerprint.py``)."""
    return entry_fingerprint(row.path.rpartition("/")[2], row.is_dir, row.size, row.mtime_ns, row.inode)


LOCAL = RowTable(
    LocalRow, schema.local, ("lib", "path"), {"parent": lambda r: parent_path(r.path), "fp": local_fingerprint}
)
REMOTE = RowTable(RemoteRow, schema.remote, ("lib", "path"), {"generation": lambda _r: 0})
SYNCED = RowTable(SyncedRow, schema.synced, ("lib", "path"))
LISTING = RowTable(RemoteItem, schema.remote_listing, ("lib", "remote_id"))

ROW_TABLES: tuple[RowTable[Any], ...] = (LOCAL, REMOTE, SYNCED, LISTING)

LOCAL_UPSERT = LOCAL.statement()
REMOTE_UPSERT = REMOTE.statement()
SYNCED_UPSERT = SYNCED.statement()
LISTING_UPSERT = LISTING.statement()

local_values = LOCAL.values_of()
remote_values = REMOTE.values_of()
synced_values = SYNCED.values_of()
listing_values = LISTING.values_of()

local_from = LOCAL.reader()
remote_from = REMOTE.reader()
synced_from = SYNCED.reader()
listing_from = LISTING.reader()
