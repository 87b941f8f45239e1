"""Blob files on disk, named by blob name, written atomically and streamed in and out.

Blobs are immutable once written: a content change makes a new blob, so a presigned download URL
handed out before the change still returns the old bytes (like a versioned object store).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024
RECEIVE_CHUNK = 1024 * 1024  # request bodies are read this much at a time (fewer loop turns)
_BLOB_NAME = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class BlobWritten:
    """What a finished write produced: the stored size and the MD5 hex of the bytes."""

    name: str
    size: int
    digest: str


def new_blob_name() -> str:
    return uuid.uuid4().hex


def is_blob_name(name: str) -> bool:
    return bool(_BLOB_NAME.match(name))


class BlobStore:
    """A directory of blobs fanned out by the first two characters of their name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not is_blob_name(name):
            raise KeyError(name)
        return self.root / name[:2] / name

    def exists(self, name: str) -> bool:
        try:
            return self.path(name).is_file()
        except KeyError:
            return False

    def size(self, name: str) -> int:
        return self.path(name).stat().st_size

    async def write_stream(
        self, name: str, chunks: AsyncIterable[bytes], *, expect_size: int | None = None
    ) -> BlobWritten:
        """Stream ``chunks`` into blob ``name`` while hashing; nothing is visible until complete.

        Not fsynced: a sandbox outlives its own restarts through the page cache, and an fsync per
        upload made the sandbox, not the client under test, the slowest part of a large push.

        With ``expect_size``, raises ``ValueError`` (and stores nothing) unless exactly that many
        bytes arrive; it stops reading as soon as there are too many.
        """
        target = self.path(name)
        tmp = self._tmp / f"{name}.{uuid.uuid4().hex}"
        md5 = hashlib.md5()
        size = 0
        try:
            with open(tmp, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if expect_size is not None and size > expect_size:
                        raise ValueError(f"body longer than the announced {expect_size} bytes")
                    md5.update(chunk)
                    out.write(chunk)
            if expect_size is not None and size != expect_size:
                raise ValueError(f"body of {size} bytes, announced {expect_size}")
            target.parent.mkdir(exist_ok=True)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return BlobWritten(name=name, size=size, digest=md5.hexdigest())

    def write_bytes(self, name: str, data: bytes) -> BlobWritten:
        """Synchronous write for seeding and test mutation (small contents only)."""
        target = self.path(name)
        tmp = self._tmp / f"{name}.{uuid.uuid4().hex}"
        with open(tmp, "wb") as out:
            out.write(data)
        target.parent.mkdir(exist_ok=True)
        tmp.replace(target)
        return BlobWritten(name=name, size=len(data), digest=hashlib.md5(data).hexdigest())

    def remove(self, name: str) -> None:
        """Drop a blob nothing refers to (an upload whose commit failed)."""
        self.path(name).unlink(missing_ok=True)

    def read_bytes(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    async def read_range(self, name: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield ``length`` bytes from ``start`` in chunks (the whole file never sits in memory)."""
        with open(self.path(name), "rb") as src:
            src.seek(start)
            left = length
            while left > 0:
                chunk = src.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
