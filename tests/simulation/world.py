"""What the simulation knows about the world: the local tree on disk, the ledger of contents that must
survive, and the trace of operations that a failing seed prints.

The ledger implements "no lost version" without modelling the engine: every content seen on either
side at an observation point (after each pass, finished or crashed) must still exist at the end —
locally, remotely, in the local trash or in the remote's own trash/archive. Only the *user* may destroy
a version: a local overwrite or delete by the driver releases that content (the user threw it away; the
engine may propagate that), and a remote overwrite or delete releases it only when no local copy exists
at that moment (otherwise the engine must keep the local copy, in place or in the trash).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

MARKER = ".libmirror"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def local_files(root: Path) -> dict[str, bytes]:
    """NFC library path → content of every local file, our own .libmirror folder excluded."""
    out: dict[str, bytes] = {}
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and MARKER in dirnames:
            dirnames.remove(MARKER)
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            try:
                out[nfc(p.relative_to(root).as_posix())] = p.read_bytes()
            except FileNotFoundError:  # taken away while listed (a daemon at work): not there
                continue
    return out


def local_dirs(root: Path) -> set[str]:
    out: set[str] = set()
    if not root.is_dir():
        return out
    for dirpath, dirnames, _ in os.walk(root):
        if Path(dirpath) == root and MARKER in dirnames:
            dirnames.remove(MARKER)
        for name in dirnames:
            out.add(nfc((Path(dirpath) / name).relative_to(root).as_posix()))
    return out


def local_trash(root: Path) -> list[bytes]:
    base = root / MARKER / "trash"
    if not base.is_dir():
        return []
    return [p.read_bytes() for p in base.rglob("*") if p.is_file() and not p.is_symlink()]


def tmp_leftovers(root: Path) -> list[str]:
    base = root / MARKER / "tmp"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir())


@dataclass
class Ledger:
    """Contents (by MD5) that must still exist somewhere when the run ends."""

    required: dict[str, str] = field(default_factory=dict)  # md5 -> where it was first seen
    released: set[str] = field(default_factory=set)

    def observe(self, contents: dict[str, bytes], where: str) -> None:
        for path, data in contents.items():
            if not data:
                continue  # every empty file is the same content: nothing to lose
            key = md5(data)
            if key not in self.required and key not in self.released:
                self.required[key] = f"{where}:{path}"

    def release(self, data: bytes) -> None:
        key = md5(data)
        self.required.pop(key, None)
        self.released.add(key)

    def missing(self, present: set[str]) -> dict[str, str]:
        return {k: v for k, v in self.required.items() if k not in present}


@dataclass
class Trace:
    """The operations of one run, in order: printed when a seed fails."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def render(self, last: int = 400) -> str:
        shown = self.lines[-last:]
        skipped = len(self.lines) - len(shown)
        head = [f"... {skipped} earlier operations"] if skipped else []
        return "\n".join(head + [f"  {i + 1 + skipped:4}. {line}" for i, line in enumerate(shown)])


@dataclass
class Figures:
    """Counts one run (or many) reports."""

    seeds: int = 0
    operations: int = 0
    passes: int = 0
    actions: int = 0
    faults: int = 0
    crashes: int = 0
    mid_pass_edits: int = 0
    remote_races: int = 0
    watcher_passes: int = 0
    gates_held: int = 0
    mass_overwrites: int = 0
    second_writers: int = 0
    gate_confirmations: int = 0
    versions_lost: int = 0
    duplicates: int = 0
    failures: int = 0

    def add(self, other: Figures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
