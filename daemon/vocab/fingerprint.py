"""Entry fingerprints: what lets a full rescan skip reading the stored rows of an unchanged folder.

Each local row keeps the fingerprint of the fields the scanner compares (its name, kind, and for a file
its size, mtime_ns and inode; for a folder its inode), a 63-bit integer. A folder's stored rows are
summed up in SQL (count and sum), and the walk sums the fingerprints of what it finds on disk: when the
two agree, the folder holds what the store says and none of its rows is read into Python. When they
differ, the folder's rows are read and compared one by one, as before.

The name goes in through CRC-32 (``hash()`` of a str differs between processes), the rest through
``hash()`` of a tuple of ints, which does not. A changed folder whose sum still agrees needs two 63-bit
sums to collide; a changed folder is then only seen on its next change, nothing is reported vanished.
"""

from __future__ import annotations

from zlib import crc32

FINGERPRINT_MASK = (1 << 63) - 1
"""Fingerprints are non-negative and fit SQLite's signed 64-bit integers."""
LOW_BITS = 32
"""SQL sums a folder's fingerprints in two halves (``fp & 0xffffffff`` and ``fp >> 32``), so that a sum
over even a billion rows cannot overflow SQLite's integers."""


FolderRow = tuple[str, int, int, int, int, int | None]
"""A stored local row as a rescan reads it for a folder whose sum differs: (path, is_dir, size, mtime_ns,
inode, fp); fp None where not known yet."""
Fill = tuple[str, int, int, int, int, int]
"""A fingerprint to store for a row, with the fields it was computed from: (path, is_dir, size, mtime_ns,
inode, fp)."""


def file_fingerprint(name: str, size: int, mtime_ns: int, inode: int) -> int:
    """The fingerprint of a file row (``name``: its last path component, valid UTF-8)."""
    return hash((crc32(name.encode()), size, mtime_ns, inode)) & FINGERPRINT_MASK


def folder_fingerprint(name: str, inode: int) -> int:
    """The fingerprint of a folder row: its size and times are never compared, only its inode."""
    return hash((crc32(name.encode()), -1, inode)) & FINGERPRINT_MASK


def entry_fingerprint(name: str, is_dir: bool, size: int, mtime_ns: int, inode: int) -> int:
    """The fingerprint of a stored local row's compared fields."""
    return folder_fingerprint(name, inode) if is_dir else file_fingerprint(name, size, mtime_ns, inode)


def summed(count: int, low: int | None, high: int | None) -> tuple[int, int]:
    """A folder's (count, sum) from the SQL halves (``None``: no row, the empty sum)."""
    return count, (low or 0) + ((high or 0) << LOW_BITS)
