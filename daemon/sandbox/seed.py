"""Deterministic sample content for a fresh sandbox: same seed number, same names and bytes.

Files are spread over a few nested folders, mix text and binary, include an empty file, and use
non-ASCII names (NFC) so that clients meet the awkward cases on day one.
"""

from __future__ import annotations

import random
from typing import Protocol

_FOLDERS: list[tuple[str, ...]] = [
    (),
    ("Berichte",),
    ("Berichte", "2023"),
    ("Projekte",),
    ("Projekte", "Ärzte & Praxis"),
    ("Bilder",),
]
_NAMES = [
    "Protokoll Größe.txt",
    "notes.md",
    "Rechnung März.pdf",
    "scan.bin",
    "photo.jpg",
    "données.csv",
    "readme.txt",
    "日本語メモ.txt",
    "empty.txt",
    "Übersicht (final).docx",
]
_TEXT_EXT = (".txt", ".md", ".csv")
_WORDS = [
    "Größe",
    "Praxis",
    "Patient",
    "Termin",
    "Bericht",
    "naïve",
    "café",
    "résumé",
    "data",
    "sync",
    "mirror",
    "2023",
    "März",
]


class _Created(Protocol):
    @property
    def id(self) -> str: ...


class SeedTarget(Protocol):
    """What seeding needs from a backend: folders and files under the library root."""

    def add_folder(self, parent: str | None, title: str) -> _Created: ...

    def add_file(self, parent: str | None, filename: str, data: bytes, *, title: str | None = None) -> object: ...


def sample_files(count: int, seed: int) -> list[tuple[tuple[str, ...], str, bytes]]:
    """``count`` (folder path, filename, content) triples, fully determined by ``seed``."""
    rng = random.Random(seed)
    out: list[tuple[tuple[str, ...], str, bytes]] = []
    for i in range(count):
        folder = _FOLDERS[0] if i == 0 else rng.choice(_FOLDERS)
        base = _NAMES[i % len(_NAMES)]
        stem, dot, ext = base.rpartition(".")
        name = base if i < len(_NAMES) else f"{stem} {i}{dot}{ext}"
        if base == "empty.txt":
            data = b""
        elif "." + ext in _TEXT_EXT:
            words = rng.randint(1, 600)
            data = (" ".join(rng.choices(_WORDS, k=words)) + "\n").encode()
        else:
            data = rng.randbytes(rng.randint(1, 24_000))
        out.append((folder, name, data))
    return out


def seed_files(target: SeedTarget, count: int, seed: int) -> None:
    """Create the sample folders and ``count`` files under the root (``parent`` None)."""
    parent_of: dict[tuple[str, ...], str | None] = {(): None}
    for folder in _FOLDERS[1:]:
        parent_of[folder] = target.add_folder(parent_of[folder[:-1]], folder[-1]).id
    for folder, name, data in sample_files(count, seed):
        target.add_file(parent_of[folder], name, data)
