"""The local observer: walks the library folder and reports what changed since the store last looked.

Speed comes from the stat fast path: a file whose size, mtime_ns and inode equal the stored row is
neither hashed nor reported. Folders are listed, stat'ed, filtered and compared in a worker thread,
many per call in a full rescan, which knows each folder's fingerprint sum beforehand (``FolderPrints``)
and reads the stored rows of a folder only when its entries do not add up to it: an unchanged tree
costs about one ``lstat`` and a fingerprint per entry (a name meets the ignore patterns only when it
starts or ends like a name they can match). Only new or changed files are
hashed (MD5, streamed, several files in parallel, bounded by a CapacityLimiter); a file that keeps
changing while it is hashed is left for a later pass.

Rules enforced here: symlinks are never followed (DESIGN rule 6), ignored paths are invisible, names
on disk that are not NFC are renamed to NFC (library paths are NFC), and nothing unreadable or in
flux is ever reported as vanished (a vanish can end in a remote delete).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.to_thread
import structlog

from daemon.local.checks import row_from_stat
from daemon.local.ignore import IgnoreMatcher
from daemon.local.names import is_nfc, join, name_of, parent_of, safe_local_path, to_nfc
from daemon.local.once import Once
from daemon.vocab import Known, KnownLocal, LocalRow, StoredStat
from daemon.vocab.fingerprint import Fill, FolderRow, entry_fingerprint, file_fingerprint, folder_fingerprint

log = structlog.get_logger(__name__)

CHUNK = 1024 * 1024
DEFAULT_HASH_THREADS = 4
HASH_ATTEMPTS = 3
_BATCH_BYTES = 4 * CHUNK  # small files are hashed several per thread hop
_BATCH_FILES = 32
_BYTES_PER_THREAD = 16 * CHUNK  # one more hashing thread per this many bytes to hash (see _hash_files)

_symlink_once = Once()
_unreadable_once = Once()
_name_once = Once()


@dataclass(frozen=True, slots=True)
class Vanished:
    """A known path that is gone (or became a symlink, a special file, or ignored). For a folder it
    stands for the folder and everything under it."""

    path: str
    is_dir: bool


@dataclass(frozen=True, slots=True)
class Unsyncable:
    """A local entry whose name cannot be synced (not valid UTF-8): skipped with everything under it.
    ``shown`` is the path with the undecodable bytes escaped, for logs and ``status``."""

    shown: str


LocalChange = LocalRow | Vanished | Unsyncable


def _encodable(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_path(rel: str) -> str:
    """``rel`` printable: bytes that are not UTF-8 as ``\\xNN`` escapes, and so are control and other
    unprintable characters (an escape sequence in a file name must not reach an operator's terminal
    through ``status``)."""
    try:
        text = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no byte on disk decodes to
        text = rel.encode("utf-8", "backslashreplace").decode("ascii")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def _not_utf8(root: str, rel: str) -> Unsyncable:
    shown = shown_path(rel)
    if _name_once.first(("utf8", root, rel)):
        log.warning(
            "name_not_utf8",
            path=shown,
            next_step="skipped with everything under it; rename it to valid UTF-8 to sync it",
        )
    return Unsyncable(shown)


def observed_scope(rel: str) -> str:
    """What ``observe_paths`` looks at for the path ``rel``, in the form of ``Unsyncable.shown``: a name
    reported before at or under it that the observation does not report again is gone (``""``: all)."""
    rel = rel.strip("/")
    return shown_path(_first_unencodable(rel) or rel)


def _first_unencodable(rel: str) -> str | None:
    """The leading part of ``rel`` up to its first component that is not UTF-8 (None: all are)."""
    parts = rel.split("/")
    for i, part in enumerate(parts):
        if not _encodable(part):
            return "/".join(parts[: i + 1])
    return None


class KnownRows(Protocol):
    """What the store knows about the local tree, one folder at a time."""

    async def children(self, dir_path: str) -> Mapping[str, Known]:
        """Rows of the direct children of ``dir_path`` (``""`` = root), keyed by name."""
        ...


_local = threading.local()


def _buffer() -> bytearray:
    """One 1 MiB read buffer per worker thread: allocating (and zeroing) it per file would cost
    more than hashing a small file."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(CHUNK)
    return buf


def md5_file(path: str | Path) -> tuple[int, str]:
    """(size, MD5 hex) of the file at ``path``, streamed in 1 MiB chunks, never through a symlink.

    ``O_NONBLOCK`` keeps a FIFO that slipped in from blocking the thread; it is then refused as not a
    regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        md5 = hashlib.md5(usedforsecurity=False)
        buf = _buffer()
        view = memoryview(buf)
        size = 0
        while True:
            n = os.readv(fd, [buf])
            if not n:
                break
            md5.update(view[:n])
            size += n
        return size, md5.hexdigest()
    finally:
        os.close(fd)


# --- one directory, in a worker thread ---------------------------------------------------------


@dataclass(slots=True)
class _ToHash:
    rel: str
    size: int


@dataclass(slots=True)
class _Listing:
    dir_rel: str
    known: Mapping[str, StoredStat]  # the stored rows of its children
    ok: bool = True
    entries: int = 0  # directory entries looked at
    present: set[str] = field(default_factory=set)  # names that must not be reported vanished
    rows: list[LocalChange] = field(default_factory=list)  # folder rows, kind-change vanishes, unsyncable
    to_hash: list[_ToHash] = field(default_factory=list)
    subdirs: list[str] = field(default_factory=list)
    dir_to_file: list[str] = field(default_factory=list)  # known folders that are files now
    missing: list[str] = field(default_factory=list)  # known names not seen (or no longer syncable)

    @property
    def news(self) -> int:
        return len(self.rows) + len(self.to_hash) + len(self.missing)


def _abs(root: str, rel: str) -> str:
    return f"{root}/{rel}" if rel else root


def _normalize_name(dir_abs: str, dir_rel: str, name: str) -> str | None:
    """Rename a non-NFC entry to its NFC form; None when that is impossible (skip it this pass)."""
    rel = join(dir_rel, name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        if _name_once.first(("utf8", dir_abs, name)):
            log.warning(
                "name_not_utf8",
                path=rel.encode("utf-8", "backslashreplace").decode("ascii"),
                next_step="skipped; rename it to valid UTF-8 to sync it",
            )
        return None
    nfc = to_nfc(name)
    target = Path(dir_abs, nfc)
    if os.path.lexists(target):
        if _name_once.first(("nfc", dir_abs, name)):
            log.warning(
                "name_not_nfc_skipped",
                path=rel,
                nfc_path=join(dir_rel, nfc),
                next_step="skipped because an NFC twin exists; rename one of them",
            )
        return None
    try:
        Path(dir_abs, name).rename(target)
    except OSError as exc:
        log.warning("name_normalize_failed", path=rel, error=str(exc))
        return None
    log.info("name_normalized", path=join(dir_rel, nfc), old_path=rel)
    return nfc


def _stored(row: Known) -> StoredStat:
    """The fields of a stored row the scanner compares, as a tuple."""
    if isinstance(row, tuple):
        return row
    return KnownLocal(row.path, row.is_dir, row.size, row.mtime_ns, row.inode)


def _stored_children(children: Mapping[str, Known]) -> Mapping[str, StoredStat]:
    return {name: _stored(row) for name, row in children.items()}


def _classify(out: _Listing, rel: str, name: str, st: os.stat_result, known: Mapping[str, StoredStat]) -> None:
    mode = st.st_mode
    k = known.get(name)
    _, k_dir, k_size, k_mtime_ns, k_inode = k if k is not None else ("", -1, -1, -1, -1)
    if stat.S_ISDIR(mode):
        out.present.add(name)
        out.subdirs.append(rel)
        if k is None or not k_dir or k_inode != st.st_ino:
            out.rows.append(row_from_stat(rel, st, None))  # replaces a file row of the same path
    elif stat.S_ISREG(mode):
        out.present.add(name)
        if k is not None and not k_dir and (k_size, k_mtime_ns, k_inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return
        if k is not None and k_dir:
            out.dir_to_file.append(rel)
        out.to_hash.append(_ToHash(rel, st.st_size))
    # sockets, FIFOs, devices: not content we can sync; a known row there has vanished


def _warn_symlink(root: str, rel: str) -> None:
    if _symlink_once.first((root, rel)):
        log.warning("symlink_skipped", path=rel, next_step="symlinks are never followed or synced")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@contextmanager
def _entries(root: str, dir_rel: str) -> Iterator[Iterator[os.DirEntry[str]] | None]:
    """The entries of a folder, open for the ``with`` block; None when it is gone or unreadable
    (logged once)."""
    try:
        # listed through a descriptor: each entry is then stat'ed relative to it (fstatat), not by its
        # full path from / (which the kernel walks component by component: most of a rescan's time)
        dir_fd = os.open(_abs(root, dir_rel), _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    except PermissionError:
        if _unreadable_once.first((root, dir_rel)):
            log.warning("dir_unreadable", path=dir_rel, next_step="skipped; fix its permissions")
        yield None
        return
    try:
        with os.scandir(dir_fd) as it:  # on a duplicate of dir_fd, closed with the iterator
            yield it
    finally:
        os.close(dir_fd)


def _list_dir(root: str, dir_rel: str, ignore: IgnoreMatcher, known: Mapping[str, StoredStat]) -> _Listing:
    """List, stat, filter and compare one folder. Runs in a worker thread."""
    out = _Listing(dir_rel, known)
    with _entries(root, dir_rel) as it:
        if it is None:
            out.ok = False
        else:
            _list_entries(out, root, dir_rel, _abs(root, dir_rel), it, ignore, known)
    return out


def _list_printed(root: str, dir_rel: str, ignore: IgnoreMatcher, prints: FolderPrints) -> _Listing:
    """``_list_dir`` for a walk that knows each folder's fingerprint sum (a full rescan): a folder whose
    entries add up to it yields only its subfolders; any other is listed again against its stored rows,
    read now (none for a folder the store holds no rows of: all of a first scan). Runs in a worker thread."""
    expected = prints.expected(dir_rel)
    if expected is not None and expected[0] == 0:
        return _list_dir(root, dir_rel, ignore, {})
    if expected is not None:
        with _entries(root, dir_rel) as it:
            if it is None:
                return _Listing(dir_rel, {}, ok=False)
            unchanged = _unchanged(dir_rel, it, ignore, expected)
        if unchanged is not None:
            return unchanged
    return _list_dir(root, dir_rel, ignore, prints.rows_now(dir_rel))


def _unchanged(
    dir_rel: str, it: Iterator[os.DirEntry[str]], ignore: IgnoreMatcher, expected: tuple[int, int]
) -> _Listing | None:
    """The listing of a folder whose entries add up to ``expected`` (count, fingerprint sum): its
    subfolders and nothing to report; None as soon as it cannot be one (then its rows are compared).

    Each entry is stat'ed while the iterator is open: a ``DirEntry`` of a descriptor-based scandir stats
    relative to the iterator's descriptor, which the iterator closes once it is exhausted."""
    prefix = f"{dir_rel}/" if dir_rel else ""
    screen = ignore.screen(dir_rel)
    starts, ends = screen.prefixes, screen.suffixes
    ignored = ignore.dir_checker(dir_rel)
    is_reg, is_dir = stat.S_ISREG, stat.S_ISDIR
    subdirs: list[str] = []
    entries = count = total = 0
    for entry in it:  # the hot loop of a full rescan: one lstat and a fingerprint per entry
        entries += 1
        name = entry.name
        if not name.isascii() and not (is_nfc(name) and _encodable(name)):
            return None  # a name to normalise or report: the full comparison does that
        if (name.startswith(starts) or name.endswith(ends)) and ignored(name, entry.is_dir(follow_symlinks=False)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        mode = st.st_mode
        if is_reg(mode):
            total += file_fingerprint(name, st.st_size, st.st_mtime_ns, st.st_ino)
        elif is_dir(mode):
            total += folder_fingerprint(name, st.st_ino)
            subdirs.append(prefix + name)
        else:
            return None  # a symlink or a special file: the full comparison warns or reports it
        count += 1
    if (count, total) != expected:
        return None
    return _Listing(dir_rel, {}, entries=entries, subdirs=subdirs)


def _list_entries(
    out: _Listing,
    root: str,
    dir_rel: str,
    dir_abs: str,
    it: Iterator[os.DirEntry[str]],
    ignore: IgnoreMatcher,
    known: Mapping[str, StoredStat],
) -> None:
    """The body of ``_list_dir`` once the folder is open (``it``: its entries)."""
    odd: list[str] = []
    prefix = f"{dir_rel}/" if dir_rel else ""
    screen = ignore.screen(dir_rel)
    starts, ends = screen.prefixes, screen.suffixes
    ignored = ignore.dir_checker(dir_rel)
    present_add = out.present.add
    known_get = known.get
    is_reg = stat.S_ISREG
    entries = 0
    for entry in it:  # the hot loop: one lstat and a few C calls per unchanged file
        entries += 1
        name = entry.name
        if not name.isascii() and not (is_nfc(name) and _encodable(name)):
            odd.append(name)
            continue
        if (name.startswith(starts) or name.endswith(ends)) and ignored(name, entry.is_dir(follow_symlinks=False)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError:
            present_add(name)  # there but not stat-able: never call that vanished
            continue
        k = known_get(name)  # (path, is_dir, size, mtime_ns, inode)
        if (
            k is not None
            and k[3] == st.st_mtime_ns
            and k[2] == st.st_size
            and k[4] == st.st_ino
            and not k[1]
            and is_reg(st.st_mode)
        ):
            present_add(name)
            continue
        if stat.S_ISLNK(st.st_mode):
            _warn_symlink(root, prefix + name)
            continue
        _classify(out, prefix + name, name, st, known)
    out.entries = entries
    for name in odd:
        if not _encodable(name):
            bad = _unsyncable_entry(root, dir_abs, dir_rel, name, ignore)
            if bad is not None:
                out.rows.append(bad)
            continue
        fixed = _normalize_name(dir_abs, dir_rel, name)
        if fixed is None:
            out.present.add(to_nfc(name))  # left as it is: its NFC row must not read as vanished
            continue
        rel = join(dir_rel, fixed)
        try:
            st = os.lstat(Path(dir_abs, fixed))
        except OSError:
            continue
        if ignore.matches_entry(rel, stat.S_ISDIR(st.st_mode)):
            continue
        if stat.S_ISLNK(st.st_mode):
            _warn_symlink(root, rel)
            continue
        _classify(out, rel, fixed, st, known)
    if not known.keys() <= out.present:
        out.missing = [name for name in known if name not in out.present]


def _unsyncable_entry(root: str, dir_abs: str, dir_rel: str, name: str, ignore: IgnoreMatcher) -> Unsyncable | None:
    """The report for an entry whose name is not UTF-8, unless it is gone or ignored (an ignored name
    is invisible, whatever its bytes)."""
    try:
        st = os.lstat(Path(dir_abs, name))
    except OSError:
        return None
    rel = join(dir_rel, name)
    if ignore.matches_entry(rel, stat.S_ISDIR(st.st_mode)):
        return None
    return _not_utf8(root, rel)


# --- hashing -------------------------------------------------------------------------------------


class _Skip(Enum):
    GONE = "gone"  # disappeared before we could hash it
    UNREADABLE = "unreadable"
    UNSTABLE = "unstable"  # kept changing, or changed kind, while hashed


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_mode) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_mode)


def _hash_stable(root: str, rel: str) -> LocalRow | _Skip:
    """Hash a file and make sure the digest belongs to the stat we report (re-hash if it moved)."""
    path = _abs(root, rel)  # a str: a Path object per file cost more than its open and stats
    for _ in range(HASH_ATTEMPTS):
        try:
            before = os.lstat(path)
            if not stat.S_ISREG(before.st_mode):
                return _Skip.UNSTABLE
            size, digest = md5_file(path)
            after = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return _Skip.GONE
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a symlink under us
                return _Skip.UNSTABLE
            if _unreadable_once.first((root, rel)):
                log.warning(
                    "file_unreadable",
                    path=rel,
                    error=exc.strerror or str(exc),
                    next_step="skipped until readable; check its permissions",
                )
            return _Skip.UNREADABLE
        if _same(before, after) and size == after.st_size:
            _unreadable_once.forget((root, rel))
            return row_from_stat(rel, after, digest)
    log.info("file_unstable", path=rel, attempts=HASH_ATTEMPTS, next_step="retried on the next pass")
    return _Skip.UNSTABLE


def _hash_batch(root: str, rels: list[str]) -> list[LocalRow | _Skip]:
    return [_hash_stable(root, rel) for rel in rels]


def _batches(items: list[_ToHash]) -> list[list[str]]:
    out: list[list[str]] = []
    cur: list[str] = []
    cur_bytes = 0
    for item in items:
        cur.append(item.rel)
        cur_bytes += item.size
        if cur_bytes >= _BATCH_BYTES or len(cur) >= _BATCH_FILES:
            out.append(cur)
            cur, cur_bytes = [], 0
    if cur:
        out.append(cur)
    return out


async def _hash_files(root: str, items: list[_ToHash], limiter: anyio.CapacityLimiter) -> dict[str, LocalRow | _Skip]:
    """Hash ``items`` in worker threads, at most ``limiter`` at once; rel → row or reason skipped."""
    results: dict[str, LocalRow | _Skip] = {}
    pending = iter(_batches(items))

    async def worker() -> None:
        for rels in pending:
            outcome = await anyio.to_thread.run_sync(_hash_batch, root, rels, limiter=limiter)
            results.update(zip(rels, outcome, strict=True))

    tokens = limiter.total_tokens
    # threads pay where bytes are hashed (MD5 and reads of large buffers let go of the GIL); small files
    # are mostly per-file Python and system calls, which threads only make contend for the GIL (100,000
    # files of 6 KB: 3.5 s with one thread, 5.9 s with four)
    wanted = sum(item.size for item in items) // _BYTES_PER_THREAD + 1
    workers = max(1, min(len(items), wanted, 16 if tokens == float("inf") else int(tokens)))
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return results


# --- public --------------------------------------------------------------------------------------


class FolderPrints:
    """A full rescan's knowledge of the stored tree: per folder, its rows' count and fingerprint sum
    (``StateStore.local_folder_prints``: one aggregate query, nothing per file held in memory). The walk
    reads a folder's rows only when what it finds there does not add up to the same (a change, or a
    fingerprint not known yet: see ``daemon/vocab/fingerprint.py``).

    Rows read whose fingerprint was missing or stale are kept in ``fills``, for ``flush`` to store."""

    def __init__(
        self,
        prints: dict[str, tuple[int, int] | None],
        read: Callable[[str], Coroutine[Any, Any, list[FolderRow]]],
        fill: Callable[[list[Fill]], Awaitable[None]],
    ) -> None:
        self._prints = prints
        self._read = read
        self._fill = fill
        self.fills: list[Fill] = []

    def expected(self, dir_path: str) -> tuple[int, int] | None:
        """The (count, sum) of ``dir_path``'s stored rows, handed out once (a folder without rows: 0, 0)."""
        return self._prints.pop(dir_path, (0, 0))

    def rows_now(self, dir_path: str) -> Mapping[str, StoredStat]:
        """The stored rows of ``dir_path``'s children, read from the walk's worker thread."""
        rows = anyio.from_thread.run(self._read, dir_path)
        out: dict[str, StoredStat] = {}
        for path, is_dir, size, mtime_ns, inode, fp in rows:
            name = path.rpartition("/")[2]
            out[name] = (path, is_dir, size, mtime_ns, inode)
            want = entry_fingerprint(name, bool(is_dir), size, mtime_ns, inode)
            if fp != want:
                self.fills.append((path, is_dir, size, mtime_ns, inode, want))
        return out

    async def children(self, dir_path: str) -> Mapping[str, Known]:
        return {row[0].rpartition("/")[2]: row[:5] for row in await self._read(dir_path)}

    async def flush(self) -> None:
        """Store the fingerprints gathered so far."""
        if self.fills:
            fills, self.fills = self.fills, []
            await self._fill(fills)


_STRETCH_ENTRIES = 20_000
"""Directory entries one worker-thread call of the walk looks at, at most (about 0.1 s of stats)."""
_STRETCH_NEWS = 2_000
"""Changes one call collects before it hands them over (a first scan: files to hash)."""


@dataclass(slots=True)
class _Walk:
    """A depth-first walk (names in order) that runs in a worker thread one stretch at a time."""

    root: str
    ignore: IgnoreMatcher
    stack: list[str]

    def stretch(self, lister: Callable[[str], _Listing], max_dirs: int) -> list[_Listing]:
        """List folders off the stack with ``lister`` until one of the budgets is spent; the listings
        with news."""
        out: list[_Listing] = []
        entries = news = dirs = 0
        stack = self.stack
        while stack and dirs < max_dirs and entries < _STRETCH_ENTRIES and news < _STRETCH_NEWS:
            dir_rel = stack.pop()
            listing = lister(dir_rel)
            dirs += 1
            if not listing.ok:
                continue
            listing.subdirs.sort(reverse=True)
            stack.extend(listing.subdirs)
            entries += listing.entries
            if listing.news:
                out.append(listing)
                news += listing.news
        return out

    def printed(self, prints: FolderPrints) -> Callable[[str], _Listing]:
        """How this walk lists a folder in a full rescan (see ``_list_printed``)."""
        root, ignore = self.root, self.ignore
        return lambda dir_rel: _list_printed(root, dir_rel, ignore, prints)

    def given(self, children: Mapping[str, Known]) -> Callable[[str], _Listing]:
        """How this walk lists one folder whose rows were read beforehand."""
        stored = _stored_children(children)
        return lambda dir_rel: _list_dir(self.root, dir_rel, self.ignore, stored)


async def _settle(
    root: str, listing: _Listing, known_rows: KnownRows, limiter: anyio.CapacityLimiter
) -> list[LocalChange]:
    """One folder's batch: its listing's rows, the files it found new or changed hashed, the vanished."""
    batch: list[LocalChange] = list(listing.rows)
    gone: list[str] = []
    if listing.to_hash:
        hashed = await _hash_files(root, listing.to_hash, limiter)
        for item in listing.to_hash:
            outcome = hashed[item.rel]
            if isinstance(outcome, LocalRow):
                if item.rel in listing.dir_to_file:
                    batch.extend(await _children_vanished(known_rows, item.rel))
                batch.append(outcome)
            elif outcome is _Skip.GONE:
                gone.append(name_of(item.rel))
    known, dir_rel = listing.known, listing.dir_rel
    for name in [*listing.missing, *gone]:
        row = known.get(name)
        if row is not None:
            batch.append(Vanished(join(dir_rel, name), bool(row[1])))
    return batch


async def scan_tree(
    root: Path,
    ignore: IgnoreMatcher,
    known: KnownRows,
    *,
    start: str = "",
    hash_limiter: anyio.CapacityLimiter | None = None,
) -> AsyncIterator[list[LocalChange]]:
    """Walk ``root/start`` (depth first, names in order) and yield, per folder with news, a batch of
    new/changed ``LocalRow`` and ``Vanished`` entries for its direct children.

    A path that changed kind is reported by its new row only (it replaces the old row); when a
    folder became a file, its former children are reported ``Vanished`` as well. No batch holds a
    row and a ``Vanished`` for the same path, so the order in which a consumer applies them does
    not matter. Folders
    with nothing to report yield nothing. A folder that cannot be listed (missing, EACCES) is
    skipped without reporting its children as vanished: only a readable listing can prove a
    deletion. ``start`` itself is not reported, only what is below it.

    With :class:`FolderPrints` the walk goes through many folders per worker-thread call (an unchanged
    100,000-file tree in a handful of calls); other ``known`` rows are asked for one folder at a time.
    """
    limiter = hash_limiter or anyio.CapacityLimiter(DEFAULT_HASH_THREADS)
    safe_local_path(root, start)
    root_s = os.fspath(root)
    walk = _Walk(root_s, ignore, [start])
    lister = walk.printed(known) if isinstance(known, FolderPrints) else None
    while walk.stack:
        if lister is not None:
            listings = await anyio.to_thread.run_sync(walk.stretch, lister, _STRETCH_ENTRIES)
        else:
            listings = await anyio.to_thread.run_sync(walk.stretch, walk.given(await known.children(walk.stack[-1])), 1)
        if isinstance(known, FolderPrints):
            await known.flush()
        for listing in listings:
            batch = await _settle(root_s, listing, known, limiter)
            if batch:
                yield batch


async def _children_vanished(known: KnownRows, rel: str) -> list[LocalChange]:
    """A folder at ``rel`` became a file: everything the store holds below it is gone."""
    return [Vanished(join(rel, name), bool(_stored(row)[1])) for name, row in (await known.children(rel)).items()]


class _KnownCache:
    """Memoises ``children`` for one observe_paths call (many watcher paths share a folder)."""

    def __init__(self, known: KnownRows) -> None:
        self._known = known
        self._cache: dict[str, Mapping[str, StoredStat]] = {}

    async def row(self, rel: str) -> StoredStat | None:
        parent = parent_of(rel)
        if parent not in self._cache:
            self._cache[parent] = _stored_children(await self._known.children(parent))
        return self._cache[parent].get(name_of(rel))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


async def _ancestor_rows(root: str, rel: str, cache: _KnownCache) -> list[LocalChange]:
    """Folder rows for ancestors of ``rel`` the store has not seen yet (a watcher may report a file
    before, or instead of, the folder that holds it)."""
    out: list[LocalChange] = []
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        anc = "/".join(parts[:i])
        k = await cache.row(anc)
        if k is not None and k[1]:  # a folder the store knows
            continue
        st = await anyio.to_thread.run_sync(_lstat, _abs(root, anc))
        if st is None or not stat.S_ISDIR(st.st_mode):
            break
        out.append(row_from_stat(anc, st, None))
    return out


async def _observe_one(
    root: Path,
    rel: str,
    ignore: IgnoreMatcher,
    known: KnownRows,
    cache: _KnownCache,
    limiter: anyio.CapacityLimiter,
) -> list[LocalChange]:
    root_s = os.fspath(root)
    parent, name = parent_of(rel), name_of(rel)
    if not _encodable(name):  # (observe_paths cut the path at its first such name)
        # reported once, whatever changed below it; nothing when it is gone by now (renamed to a good
        # name: that name's own event brings it in) or ignored
        found = await anyio.to_thread.run_sync(_unsyncable_entry, root_s, _abs(root_s, parent), parent, name, ignore)
        return [found] if found is not None else []
    if not (parent.isascii() or is_nfc(parent)):
        return []  # the folder's own event (or the next scan) renames it first
    stored = await cache.row(to_nfc(rel))
    k = None if stored is None else KnownLocal(stored[0], bool(stored[1]), *stored[2:])  # one path: named fields
    st = await anyio.to_thread.run_sync(_lstat, _abs(root_s, rel))
    if not (name.isascii() or is_nfc(name)):
        if st is not None:
            fixed = await anyio.to_thread.run_sync(_normalize_name, _abs(root_s, parent), parent, name)
            if fixed is None:
                return []
        # gone or renamed just now: what counts is the NFC path (the one the store knows)
        rel = join(parent, to_nfc(name))
        st = await anyio.to_thread.run_sync(_lstat, _abs(root_s, rel))
    if st is not None and stat.S_ISLNK(st.st_mode):
        _warn_symlink(root_s, rel)
    if (
        st is None
        or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode))
        or ignore.matches(rel, stat.S_ISDIR(st.st_mode))
    ):
        return [Vanished(rel, k.is_dir)] if k is not None else []
    out = await _ancestor_rows(root_s, rel, cache)
    if stat.S_ISDIR(st.st_mode):
        if k is None or not k.is_dir or k.inode != st.st_ino:
            out.append(row_from_stat(rel, st, None))
        async for batch in scan_tree(root, ignore, known, start=rel, hash_limiter=limiter):
            out.extend(batch)
        return out
    if k is not None and not k.is_dir and (k.size, k.mtime_ns, k.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
        return out
    outcome = await anyio.to_thread.run_sync(_hash_stable, root_s, rel, limiter=limiter)
    if isinstance(outcome, LocalRow):
        if k is not None and k.is_dir:
            out.extend(await _children_vanished(known, rel))
        out.append(outcome)
    elif outcome is _Skip.GONE and k is not None:
        out.append(Vanished(rel, k.is_dir))
    return out


async def observe_paths(
    root: Path,
    rel_paths: Iterable[str],
    ignore: IgnoreMatcher,
    known: KnownRows,
    *,
    hash_limiter: anyio.CapacityLimiter | None = None,
) -> list[LocalChange]:
    """The scanner's logic for specific library paths (the watcher's events): each path is reported
    as changed, vanished or nothing; a path that is a folder is scanned recursively; unknown parent
    folders get rows too. Unsafe paths (``..``, through a symlink) are refused with a warning."""
    limiter = hash_limiter or anyio.CapacityLimiter(DEFAULT_HASH_THREADS)
    cache = _KnownCache(known)
    out: list[LocalChange] = []
    seen: set[str] = set()
    for raw in rel_paths:
        rel = raw.strip("/")
        rel = _first_unencodable(rel) or rel  # under a name that is not UTF-8: that name is what counts
        if rel in seen:
            continue
        seen.add(rel)
        if rel == "":
            async for batch in scan_tree(root, ignore, known, hash_limiter=limiter):
                out.extend(batch)
            continue
        try:
            safe_local_path(root, rel)
        except ValueError as exc:
            log.warning("path_refused", path=rel, reason=str(exc))
            continue
        out.extend(await _observe_one(root, rel, ignore, known, cache, limiter))
    return out
