from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.local.ignore import IgnoreMatcher


@pytest.mark.parametrize(
    ("path", "is_dir"),
    [
        (".libmirror", True),
        (".libmirror/tmp/dl-1.part", False),
        ("~$budget.xlsx", False),
        ("a/.~lock.report.odt#", False),
        ("~WRL0001.tmp", False),
        ("notes.txt.swp", False),
        ("a/.notes.txt.swo", False),
        ("draft.txt~", False),
        (".#draft.txt", False),
        (".goutputstream-ABC123", False),
        ("sub/4913", False),
        (".DS_Store", False),
        ("pics/Thumbs.db", False),
        ("desktop.ini", False),
        ("._photo.jpg", False),
        (".Trash-1000", True),
    ],
)
def test_defaults_ignore(path: str, is_dir: bool) -> None:
    assert IgnoreMatcher().matches(path, is_dir)


@pytest.mark.parametrize("path", ["report.pdf", "a/b/notes.txt", "sub/.libmirror", "4913.txt", "x.swpx"])
def test_defaults_keep(path: str) -> None:
    assert not IgnoreMatcher().matches(path, False)


def test_gitignore_semantics() -> None:
    m = IgnoreMatcher(["/top.txt", "build/", "docs/**/*.pdf", "*.log", "!keep.log", "a/**/z"])
    assert m.matches("top.txt", False)
    assert not m.matches("sub/top.txt", False)  # a leading slash anchors to the root
    assert m.matches("build", True)
    assert not m.matches("build", False)  # trailing slash: folders only
    assert m.matches("x/build/out.o", False)  # inside an ignored folder
    assert m.matches("docs/a/b/c.pdf", False)
    assert m.matches("docs/c.pdf", False)  # ** matches zero folders
    assert not m.matches("other/c.pdf", False)
    assert m.matches("deep/x.log", False)
    assert not m.matches("keep.log", False)  # negation, last match wins
    assert m.matches("a/z", False) and m.matches("a/b/c/z", False)


def test_matches_entry_agrees_with_pathspec_on_many_names() -> None:
    m = IgnoreMatcher(["*.bak", "/root-only", "x/y/"])
    names = ["a.bak", "b.bak.txt", "root-only", "d/root-only", "x/y", "q/x/y", "plain", "~$x", "4913"]
    expected = {"a.bak", "root-only", "x/y", "~$x", "4913"}
    for n in names:
        assert m.matches(n, n.endswith("y")) == (n in expected), n


_SCREEN_PATTERNS = [
    "*.bak",
    "/root-only",
    "x/y/",
    "build/",
    "docs/**/*.pdf",
    "a/**/z",
    "**/cache",
    "*.sw[px]",
    "deep/er/*.tmp",
    "lit\\*eral",
    "!keep.bak",
    "trailing   ",
    " lead",
    "*.log\t",
]
_SCREEN_ALPHABET = "ab.~$#*_/xyzAZ -lgoed\t"


@given(
    patterns=st.lists(st.sampled_from(_SCREEN_PATTERNS), max_size=5),
    folder=st.sampled_from(["", "x", "docs", "docs/a", "a", "a/b", "deep", "deep/er", "deep/er/x", "sub"]),
    name=st.text(alphabet=_SCREEN_ALPHABET.replace("/", ""), min_size=1, max_size=12),
    is_dir=st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_name_screen_never_hides_an_ignored_name(patterns: list[str], folder: str, name: str, is_dir: bool) -> None:
    m = IgnoreMatcher(patterns)
    rel = f"{folder}/{name}" if folder else name
    screen = m.screen(folder)
    if m.matches_entry(rel, is_dir):
        assert name.startswith(screen.prefixes) or name.endswith(screen.suffixes), (patterns, rel)


def test_name_screen_lets_ordinary_names_skip_the_patterns() -> None:
    m = IgnoreMatcher(["*.bak", "/top.txt", "docs/*.tmp"])
    plain = m.screen("folder 001")
    assert not any(n.startswith(plain.prefixes) or n.endswith(plain.suffixes) for n in ["file 1.txt", "report.pdf"])
    assert "top.txt".startswith(m.screen("").prefixes)  # an anchored pattern counts in its own folder
    assert "" in m.screen("docs").prefixes  # ... and lets every name of a folder it reaches into through


@pytest.mark.parametrize("pattern", _SCREEN_PATTERNS)
def test_name_screen_lets_through_what_each_pattern_ignores(pattern: str) -> None:
    m = IgnoreMatcher([pattern])
    names = ["x.log", "lead", " lead", "trailing", "a.bak", "cache", "z", "y", "b.swp", "c.swx", "lit*eral", "q.tmp"]
    folders = ["", "x", "docs", "docs/a", "a/b", "deep/er", "sub"]
    for folder in folders:
        screen = m.screen(folder)
        for name in names:
            for is_dir in (False, True):
                rel = f"{folder}/{name}" if folder else name
                if m.matches_entry(rel, is_dir):
                    assert name.startswith(screen.prefixes) or name.endswith(screen.suffixes), (pattern, rel)
