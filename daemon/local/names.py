"""The one place where remote names become local names and library paths become disk paths.

DESIGN rule 6: nothing escapes the root. Every remote name passes through ``sanitize_name`` (one
path component, no separators, no control characters, no reserved device names, NFC, at most 255
UTF-8 bytes), siblings that would collide on a case-insensitive disk get stable, distinct names from
``assign_local_names``, and ``safe_local_path`` is the only way a library path turns into a ``Path``.

Library paths are NFC, ``/``-separated, without a leading slash; ``""`` is the library root.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.local.once import Once

log = structlog.get_logger(__name__)

MAX_NAME_BYTES = 255
"""Longest file name (in UTF-8 bytes) that ext4, XFS, btrfs and SMB shares all accept."""

_MARKER_NAME = ".libmirror"  # kept equal to daemon.local.marker.MARKER (no import: marker is the leaf)

_UNSAFE_CHARS = frozenset('/\\<>:"|?*')
# what a name may not hold: the unsafe characters and the C0/C1 control characters, each replaced by "_"
_REPLACED = re.compile("[" + re.escape("".join(sorted(_UNSAFE_CHARS))) + "\x00-\x1f\x7f-\x9f]")
_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{d}" for d in "123456789¹²³"}
    | {f"LPT{d}" for d in "123456789¹²³"}
)
_MAX_EXT_CHARS = 32  # a longer "extension" is not one worth keeping when truncating
_HASH_CHARS = 8
_skipped_once = Once()
_renamed_once = Once()


def is_nfc(s: str) -> bool:
    """True when ``s`` is already in Unicode NFC (ASCII always is; checked without allocating)."""
    return s.isascii() or unicodedata.is_normalized("NFC", s)


def to_nfc(s: str) -> str:
    return s if is_nfc(s) else unicodedata.normalize("NFC", s)


def _split_ext(name: str) -> tuple[str, str]:
    """Split ``name`` into stem and extension (with its dot). A leading dot is not an extension."""
    dot = name.rfind(".")
    if dot <= 0 or len(name) - dot > _MAX_EXT_CHARS:
        return name, ""
    return name[:dot], name[dot:]


def _fit_bytes(s: str, limit: int) -> str:
    """The longest prefix of ``s`` whose UTF-8 encoding fits ``limit`` bytes (cut at a code point)."""
    raw = s.encode("utf-8")
    if len(raw) <= limit:
        return s
    return raw[:limit].decode("utf-8", errors="ignore")


def _strip_edges(s: str) -> str:
    """Leading/trailing whitespace and trailing dots/spaces, until nothing more changes."""
    while True:
        t = s.strip().rstrip(". ")
        if t == s:
            return s
        s = t


def _sanitize_once(name: str) -> str | None:
    s = _REPLACED.sub("_", to_nfc(name))  # one C pass: a join character by character took 4 times as long
    s = _strip_edges(s)
    if s in ("", ".", ".."):
        return None
    stem, ext = s.split(".", 1) if "." in s[1:] else (s, "")
    if stem.rstrip(" ").upper() in _RESERVED_STEMS:
        s = stem + "_" + ("." + ext if ext else "")
    if s.casefold() == _MARKER_NAME:
        s = s + "_"  # never let a remote entry take the place of our own state folder
    if len(s.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha1(s.encode("utf-8")).hexdigest()[:_HASH_CHARS]
        stem, ext = _split_ext(s)
        tail = f"~{digest}{ext}"
        stem = _fit_bytes(stem, MAX_NAME_BYTES - len(tail.encode("utf-8")))
        s = unicodedata.normalize("NFC", stem) + tail
    return s


def sanitize_name(name: str) -> str | None:
    """Turn one raw remote name into a safe local name, or None when it must be skipped.

    Deterministic and idempotent: the pipeline is re-applied until it stops changing (normalising a
    truncated string can, in rare Unicode corners, change it again), which makes
    ``sanitize_name(sanitize_name(x)) == sanitize_name(x)`` hold by construction.
    """
    s: str | None = name
    for _ in range(8):
        assert s is not None
        t = _sanitize_once(s)
        if t is None or t == s:
            return t
        s = t
    return s


def _fold(name: str) -> str:
    """The key under which two names collide on a case-insensitive (SMB, macOS, Windows) disk."""
    return unicodedata.normalize("NFC", name.casefold())


def with_suffix(name: str, suffix: str, *, is_dir: bool = False) -> str:
    """``name`` with ``suffix`` before its extension (a folder's whole name is its stem), the stem cut
    so that the result fits ``MAX_NAME_BYTES``: every name the engine invents (conflict copies,
    `` (~XXXXXX)`` suffixes, numbered trash names) obeys the limit remote names obey."""
    stem, ext = (name, "") if is_dir else _split_ext(name)
    tail = suffix + ext
    return to_nfc(_fit_bytes(stem, MAX_NAME_BYTES - len(tail.encode("utf-8")))) + tail


def _disambiguate(name: str, remote_id: str, hash_chars: int = 6) -> str:
    """``name`` with a suffix derived only from ``remote_id``, so the same id always gets the same name."""
    tag = hashlib.sha1(remote_id.encode("utf-8")).hexdigest()[:hash_chars]
    return sanitize_name(with_suffix(name, f" (~{tag})")) or f"_ (~{tag})"


def _candidates(clean: str, remote_id: str) -> Iterator[str]:
    """The names a new entry may take, in order of preference; each made only when the one before is
    taken (most entries take their plain name: three digests each cost more than the rest of a listing)."""
    yield clean
    for hash_chars in (6, 12, 40):
        yield _disambiguate(clean, remote_id, hash_chars)


def possible_local_names(name: str, remote_id: str) -> tuple[str, ...]:
    """Every local name ``assign_local_names`` could give an entry called ``name`` with this id."""
    return tuple(_candidates(name, remote_id))


@dataclass(frozen=True, slots=True)
class NameRequest:
    """One entry of a folder asking for a local name.

    ``current`` is the local name it already has, and ``current_raw`` the server's name it had when it
    got that local name (None: not known)."""

    remote_id: str
    raw_name: str
    current: str | None = None
    current_raw: str | None = None


def assign_local_names(siblings: Sequence[NameRequest], local_only: Collection[str] = ()) -> dict[str, str]:
    """Give every entry of one folder a safe local name; new names are distinct case-insensitively.

    A mapping is decided once and then kept (DESIGN rule 6): an id whose server name has not changed
    since it got its local name keeps that name, whatever the sanitiser would say now (a name our own
    upload sent, such as ``Q3?.txt``, is never renamed on disk a pass later). Next, an id keeps its
    ``current`` name while that name is still one it is entitled to (its sanitised name, or that name
    with its own id suffix) and no other id holds it. Then the new claimants, smallest remote id first:
    the plain name if free, else the name with `` (~XXXXXX)`` (6 hex chars of sha1(remote_id)) before
    the extension; a server name that a local-only entry has exactly is taken as it is (the
    sanitiser's rewrite would make one file two). A name is not free when a sibling holds it
    case-insensitively, nor when a local
    entry of the folder that no remote id holds (``local_only``) differs from it only in case: the two
    would be one file on a case-insensitive share. The result does not depend on the order of
    ``siblings``. Names that sanitise to nothing are left out and logged once.
    """
    result: dict[str, str] = {}
    taken: set[str] = set()
    kept: set[str] = set()
    # 0. the mapping of an entry whose server name is unchanged stays as it was decided
    for req in sorted(siblings, key=lambda r: r.remote_id):
        if req.current is not None and req.current_raw is not None and req.current_raw == req.raw_name:
            if req.current in kept:
                continue
            result[req.remote_id] = req.current
            kept.add(req.current)
            taken.add(_fold(req.current))
    local_exact = set(local_only)
    local_folds = {_fold(n) for n in local_only}

    def free(candidate: str) -> bool:
        fold = _fold(candidate)
        return fold not in taken and (fold not in local_folds or candidate in local_exact)

    wanted: dict[str, str] = {}
    for req in sorted(siblings, key=lambda r: r.remote_id):
        if req.remote_id in result:
            continue
        clean = sanitize_name(req.raw_name)
        if clean is None:
            if _skipped_once.first((req.remote_id, req.raw_name)):
                log.warning(
                    "remote_name_skipped",
                    remote_id=req.remote_id,
                    raw_name=req.raw_name,
                    reason="name is empty, '.' or '..' after sanitising",
                )
            continue
        wanted[req.remote_id] = clean

    by_id = {r.remote_id: r for r in siblings}
    # 1. ids that keep the name they have
    for rid, clean in wanted.items():
        current = by_id[rid].current
        if current is None or current not in (clean, _disambiguate(clean, rid)):
            continue
        if _fold(current) in taken:
            continue
        result[rid] = current
        taken.add(_fold(current))
    # 2. new claimants, smallest id first
    for rid, clean in wanted.items():
        if rid in result:
            continue
        raw = by_id[rid].raw_name
        chosen: str | None
        if raw != clean and raw in local_exact and raw not in result.values():
            # a local entry has exactly the server's name (one the sanitiser would change, e.g. our own
            # upload of "Q3?.txt" whose answer was lost): they are one path, as on the server, even
            # when the folder already holds a case variant of it (the user made both)
            chosen = raw
        else:
            chosen = next((c for c in _candidates(clean, rid) if free(c)), None)
        if chosen is None:  # a 40-hex collision among siblings: give up on this one, loudly
            log.error(
                "local_name_collision", remote_id=rid, name=clean, next_step="entry skipped until the folder changes"
            )
            continue
        candidate = chosen
        result[rid] = candidate
        taken.add(_fold(candidate))
    for rid, local in result.items():
        raw = by_id[rid].raw_name
        if local != raw and _renamed_once.first((rid, raw, local)):
            log.info(
                "remote_name_sanitised",
                remote_id=rid,
                raw_name=raw,
                local_name=local,
                reason="the name it was synced under is kept"
                if rid not in wanted
                else "another entry of the folder has the same name (or differs only in case)"
                if local != wanted[rid]
                else "the name cannot be used on disk as it is (separators, control characters, reserved or "
                "over-long names, trailing dots or spaces, Unicode normalisation)",
            )
    return result


def join(parent: str, name: str) -> str:
    """Library path of ``name`` inside ``parent`` (``""`` is the root)."""
    return f"{parent}/{name}" if parent else name


def parent_of(path: str) -> str:
    """Library path of the folder holding ``path`` (``""`` for entries of the root)."""
    return path.rpartition("/")[0]


def name_of(path: str) -> str:
    return path.rpartition("/")[2]


def safe_local_path(root: Path, rel: str) -> Path:
    """Map a library path to a disk path under ``root``, or raise ValueError.

    Refused: absolute paths, ``.``/``..``/empty components, NUL, and any existing folder component
    below the root that is a symlink (we never go through one), or a parent that resolves outside the
    root. ``""`` maps to the root itself. Components that do not exist yet are fine (a download
    target). The last component is not resolved: callers look at it with ``lstat`` (a symlink never
    matches a planned file) and open files with ``O_NOFOLLOW``.
    """
    if "\x00" in rel:
        raise ValueError(f"path contains NUL: {rel!r}")
    if rel.startswith("/") or Path(rel).is_absolute():
        raise ValueError(f"absolute path refused: {rel!r}")
    if rel == "":
        return root
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"path component {part!r} refused in {rel!r}")
    current = os.fspath(root).rstrip("/")  # strings, not Paths: this runs for every file a pass touches
    for part in parts[:-1]:
        current = f"{current}/{part}"
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            break
        except NotADirectoryError as exc:
            raise ValueError(f"a component of {rel!r} is not a folder") from exc
        if stat.S_ISLNK(st.st_mode):
            raise ValueError(f"path {rel!r} goes through a symlink at {current}")
    # no component is "." or "..", and none that exists is a symlink (the ones after the first missing
    # one cannot exist either): the parent therefore resolves inside the root, with no realpath() of
    # the root and of the parent (a dozen more lstat calls for every file a pass touches)
    return root / rel
