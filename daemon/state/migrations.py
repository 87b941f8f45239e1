"""Schema versions and the migration path.

``meta.schema_version`` holds the version a file was last migrated to. ``MIGRATIONS[n]`` upgrades a
file from version ``n`` to ``n + 1``; a new file is created at the current version directly. A file
written by a newer libmirror is refused instead of being guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from daemon.state import schema


def _v1_to_v2(conn: Connection) -> None:
    """Version 2 adds ``pending_replace`` (crash-safe upload-new-then-delete-old)."""
    schema.pending_replace.create(conn, checkfirst=True)


def _v2_to_v3(conn: Connection) -> None:
    """Version 3 keeps each remote item's own (raw) name beside the local name it was given, so the
    mapping stays what it was while the server's name does not change."""
    if "name" not in {c["name"] for c in inspect(conn).get_columns("remote")}:
        conn.execute(text("ALTER TABLE remote ADD COLUMN name TEXT"))


def _v3_to_v4(conn: Connection) -> None:
    """Version 4 keeps each local row's fingerprint, so a full rescan reads the rows of changed folders
    only. Rows of v3 have none (NULL): the first rescan reads their folders and fills it in."""
    if "fp" not in {c["name"] for c in inspect(conn).get_columns("local")}:
        conn.execute(text("ALTER TABLE local ADD COLUMN fp BIGINT"))


# version n -> function upgrading n to n + 1
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


class SchemaTooNew(RuntimeError):
    """The state file was written by a newer libmirror."""


class SchemaMismatch(RuntimeError):
    """A reader (``status``) found a state file at another schema version; readers never migrate."""


def check_readable(conn: Connection) -> int | None:
    """The schema version of a file a reader may read (None: an empty file, no schema yet).

    Unlike :func:`migrate` this never writes: a file at another version raises :class:`SchemaMismatch`.
    """
    found = current_version(conn)
    if found is None or found == schema.SCHEMA_VERSION:
        return found
    if found > schema.SCHEMA_VERSION:
        raise SchemaMismatch(
            f"state store has schema version {found}, this libmirror understands up to "
            f"{schema.SCHEMA_VERSION}: upgrade libmirror"
        )
    raise SchemaMismatch(
        f"state store has schema version {found}, this libmirror reads version {schema.SCHEMA_VERSION}; "
        "the next `libmirror sync --once` or `libmirror run` of this version upgrades it (status only reads)"
    )


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("meta"):
        return None
    row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
    return int(row.value) if row else None


def migrate(conn: Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
    found = current_version(conn)
    if found is None:
        schema.metadata.create_all(conn)
        conn.execute(schema.meta.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
        return 0
    if found > schema.SCHEMA_VERSION:
        raise SchemaTooNew(
            f"state store has schema version {found}, this libmirror understands up to "
            f"{schema.SCHEMA_VERSION}: upgrade libmirror or restore an older state file"
        )
    version = found
    while version < schema.SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
    if version != found:
        conn.execute(schema.meta.update().where(schema.meta.c.key == "schema_version").values(value=str(version)))
    schema.metadata.create_all(conn)  # tables added without data changes
    return found
