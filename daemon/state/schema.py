"""Tables of the state store (SQLAlchemy Core).

One SQLite file holds every library: the three trees (remote, local, synced), changed-since cursors,
per-path failure backoff and a few status values. Trees are keyed by (library id, path).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 4

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

libraries = Table(
    "libraries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False, unique=True),
)

remote = Table(
    "remote",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("remote_id", String, nullable=False),
    Column("parent_id", String),
    Column("is_dir", Boolean, nullable=False, default=False),
    Column("size", BigInteger),
    Column("digest", String),
    Column("version", String, nullable=False, default=""),
    Column("modified", String),
    Column("generation", Integer, nullable=False, default=0),
    Column("name", Text),  # the server's own name of the item (v3; NULL: not known, rows of v2)
)
Index("ix_remote_id", remote.c.lib, remote.c.remote_id)
Index("ix_remote_parent", remote.c.lib, remote.c.parent_id)

local = Table(
    "local",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("parent", Text, nullable=False),
    Column("is_dir", Boolean, nullable=False, default=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("mtime_ns", BigInteger, nullable=False, default=0),
    Column("inode", BigInteger, nullable=False, default=0),
    Column("digest", String),
    # the entry's fingerprint (daemon/vocab/fingerprint.py), summed per folder by a full rescan; NULL:
    # not known yet (rows of v3, a folder just renamed), which makes the folder's rows be read. Version 4
    Column("fp", BigInteger),
)
Index("ix_local_parent", local.c.lib, local.c.parent)

synced = Table(
    "synced",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("is_dir", Boolean, nullable=False, default=False),
    Column("digest", String),
    Column("size", BigInteger, nullable=False, default=0),
    Column("remote_id", String),
    Column("remote_version", String, nullable=False, default=""),
    Column("local_mtime_ns", BigInteger, nullable=False, default=0),
    Column("local_inode", BigInteger, nullable=False, default=0),
)
Index("ix_synced_remote_id", synced.c.lib, synced.c.remote_id)

# The raw items of a full remote listing in progress: names are resolved folder by folder once the
# listing is complete, so a library of any size is never held in memory.
remote_listing = Table(
    "remote_listing",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("remote_id", String, primary_key=True),
    Column("parent_id", String),
    Column("name", Text, nullable=False),
    Column("is_dir", Boolean, nullable=False, default=False),
    Column("size", BigInteger),
    Column("digest", String),
    Column("version", String, nullable=False, default=""),
    Column("modified", String),
)
Index("ix_listing_parent", remote_listing.c.lib, remote_listing.c.parent_id)

cursors = Table(
    "cursors",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("name", String, primary_key=True),
    Column("value", Text, nullable=False),
)

failures = Table(
    "failures",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("next_at", Float, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
)

# A replacement upload in flight on a provider that cannot update content in place (upload the new
# file, then delete the old one). If the process dies between the two calls, the next pass finds this
# row and finishes the job instead of leaving two remote files with one name. Added in version 2.
pending_replace = Table(
    "pending_replace",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("old_remote_id", String, nullable=False),
    Column("parent_id", String, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("digest", String, nullable=False),
    Column("new_remote_id", String),  # set once the upload returned
)

status = Table(
    "status",
    metadata,
    Column("lib", Integer, ForeignKey("libraries.id"), primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)
