"""Which local paths the daemon never syncs: our own state folder, editor and office lock/temp files,
OS litter, plus the library's own gitignore-style patterns.

Matching uses pathspec's gitignore flavour (anchoring with ``/``, ``**``, negation, last match wins).
Because the scanner asks once per directory entry (hundreds of thousands per pass), it first screens
names by the literal start or end every ignored name must have (``screen``: two C-level string tests,
``~$``, ``.swp``...); a name that passes the screen meets a combined regular expression of every
*including* pattern, and only a hit of that goes through pathspec for the exact verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pathspec

DEFAULT_PATTERNS: tuple[str, ...] = (
    "/.libmirror",  # our state: marker, tmp downloads, trash
    "~$*",  # MS Office owner files
    ".~lock.*#",  # LibreOffice locks
    "~*.tmp",  # MS Office temp saves
    "*.swp",
    "*.swx",
    ".*.sw?",  # vim swap files
    "*~",  # editor backups
    ".#*",  # emacs locks
    ".goutputstream-*",  # GNOME atomic-save temp files
    "4913",  # vim's write-permission probe
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "._*",  # macOS resource forks on foreign filesystems
    ".Trash-*",  # freedesktop trash on removable media
)

_ANY_DIR_PREFIX = "^(?:.+/)?"
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")
_GLOB_CHARS = frozenset("*?[]")


@dataclass(frozen=True, slots=True)
class NameScreen:
    """What every name a folder's ignore patterns can match starts or ends with: a name for which
    ``name.startswith(prefixes) or name.endswith(suffixes)`` is False is not ignored (the converse does
    not hold; ``""`` among the prefixes lets every name through)."""

    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]


def _literal_ends(text: str) -> tuple[str, str]:
    """The literal start and end of a glob (before its first and after its last wildcard); the whole
    text twice when it has none."""
    first = next((i for i, ch in enumerate(text) if ch in _GLOB_CHARS), len(text))
    last = next((i for i in range(len(text) - 1, -1, -1) if text[i] in _GLOB_CHARS), -1)
    return text[:first], text[last + 1 :]


def _shortest(parts: set[str], covers: Callable[[str, str], bool]) -> tuple[str, ...]:
    """``parts`` without those another part covers (``.#`` when ``.`` is there): fewer tests per name."""
    kept: list[str] = []
    for part in sorted(parts, key=len):
        if not any(covers(part, shorter) for shorter in kept):
            kept.append(part)
    return tuple(kept)


def _pattern_text(pattern: object) -> str | None:
    """The glob text of an including pattern without its trailing slashes (a name holds none); None
    when it holds an escape or starts or ends with blanks (its literal parts are then not simply its
    characters as written: the screen lets every name through)."""
    text = getattr(pattern, "pattern", None)
    if not isinstance(text, str) or "\\" in text or text != text.strip():
        return None
    return text.rstrip("/")


class IgnoreMatcher:
    """Built-in defaults plus ``patterns`` (gitignore syntax, one pattern per item)."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns: tuple[str, ...] = (*DEFAULT_PATTERNS, *patterns)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)
        name_alts: list[str] = []
        path_alts: list[str] = []
        name_starts: set[str] = set()
        name_ends: set[str] = set()
        self._path_starts: list[str] = []  # literal starts of the anchored patterns, library-relative
        for pat in self._spec.patterns:
            regex = getattr(pat, "regex", None)
            if not pat.include or regex is None:
                continue  # negations and comments cannot make a path ignored
            src = _NAMED_GROUP.sub("(?:", regex.pattern)
            text = _pattern_text(pat)
            if src.startswith(_ANY_DIR_PREFIX):
                name_alts.append(src[len(_ANY_DIR_PREFIX) :])
                while text is not None and text.startswith("**/"):
                    text = text[3:]
                if text is None or "/" in text:
                    name_starts.add("")
                    continue
                start, end = _literal_ends(text)
                if start:
                    name_starts.add(start)
                elif end:
                    name_ends.add(end)
                else:
                    name_starts.add("")
            else:
                path_alts.append(src)
                self._path_starts.append(_literal_ends(text.lstrip("/"))[0] if text is not None else "")
        self._name_ends = _shortest(name_ends, str.endswith)
        self._name_screen = NameScreen(_shortest(name_starts, str.startswith), self._name_ends)
        self._name_rx = re.compile("|".join(f"(?:{a})" for a in name_alts)) if name_alts else None
        self._path_rx = re.compile("|".join(f"(?:{a})" for a in path_alts)) if path_alts else None

    def _maybe(self, rel_path: str, name: str, is_dir: bool) -> bool:
        """Cheap test that never says False for a path the full spec would ignore."""
        tail = "/" if is_dir else ""
        if self._name_rx is not None and self._name_rx.match(name + tail):
            return True
        return self._path_rx is not None and self._path_rx.match(rel_path + tail) is not None

    def matches_entry(self, rel_path: str, is_dir: bool) -> bool:
        """Whether this entry itself is ignored, assuming its parent folders are not (the scanner
        prunes ignored folders, so it never needs to look at ancestors)."""
        name = rel_path.rpartition("/")[2]
        if not self._maybe(rel_path, name, is_dir):
            return False
        return bool(self._spec.match_file(rel_path + ("/" if is_dir else "")))

    def screen(self, dir_rel: str) -> NameScreen:
        """The cheap first test for the entries of folder ``dir_rel`` (see :class:`NameScreen`): an
        anchored pattern adds its literal start only in the folders that start could reach."""
        prefix = f"{dir_rel}/" if dir_rel else ""
        starts: set[str] = set()
        for literal in self._path_starts:
            if literal.startswith(prefix):
                starts.add(literal[len(prefix) :].partition("/")[0])
            elif prefix.startswith(literal):
                starts.add("")  # the literal part ends above this folder: any name may match
        if not starts:
            return self._name_screen
        return NameScreen(_shortest(starts.union(self._name_screen.prefixes), str.startswith), self._name_ends)

    def dir_checker(self, dir_rel: str) -> Callable[[str, bool], bool]:
        """A fast ``(name, is_dir) -> ignored`` test for the entries of one folder (same verdict as
        ``matches_entry``), with the per-call work cut to the bone for the scanner's hot loop."""
        prefix = f"{dir_rel}/" if dir_rel else ""
        name_match = self._name_rx.match if self._name_rx is not None else None
        path_match = self._path_rx.match if self._path_rx is not None else None
        spec_match = self._spec.match_file

        def ignored(name: str, is_dir: bool) -> bool:
            key = name + "/" if is_dir else name
            if (name_match is None or name_match(key) is None) and (
                path_match is None or path_match(prefix + key) is None
            ):
                return False
            return bool(spec_match(prefix + key))

        return ignored

    def matches(self, rel_path: str, is_dir: bool) -> bool:
        """Whether ``rel_path`` (library path, no leading slash) is ignored, itself or through an
        ignored parent folder (as git does: nothing inside an ignored folder is seen)."""
        rel_path = rel_path.strip("/")
        if not rel_path:
            return False
        parts = rel_path.split("/")
        for i in range(1, len(parts)):
            if self.matches_entry("/".join(parts[:i]), True):
                return True
        return self.matches_entry(rel_path, is_dir)
