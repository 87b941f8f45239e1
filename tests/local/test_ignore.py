from __future__ import annotations

import pytest

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
