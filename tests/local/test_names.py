from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.local.names import (
    MAX_NAME_BYTES,
    NameRequest,
    assign_local_names,
    is_nfc,
    join,
    parent_of,
    safe_local_path,
    sanitize_name,
    to_nfc,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../x", ".._.._x"),
        ("/abs", "_abs"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("a\x00b", "a_b"),
        ("tab\there\n", "tab_here_"),  # control characters become "_", which is kept
        ("del\x7fc1\x85", "del_c1_"),
        ("CON", "CON_"),
        ("con", "con_"),
        ("nul.txt", "nul_.txt"),
        ("LPT9.tar.gz", "LPT9_.tar.gz"),
        ("COM0", "COM0"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("trailing. . .", "trailing"),
        ("name.  ", "name"),
        ("  padded  ", "padded"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        (".hidden", ".hidden"),
        (".libmirror", ".libmirror_"),
        (".", None),
        ("..", None),
        ("", None),
        ("   ", None),
        ("...", None),
    ],
)
def test_sanitize_cases(raw: str, expected: str | None) -> None:
    assert sanitize_name(raw) == expected


def test_nfd_becomes_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Café.txt")
    assert not is_nfc(nfd)
    assert sanitize_name(nfd) == "Café.txt"
    assert is_nfc(sanitize_name(nfd) or "")
    assert to_nfc(nfd) == "Café.txt"


def test_long_names_are_truncated_distinct_and_keep_extension() -> None:
    a = "é" * 150 + "a.pdf"  # 305 bytes
    b = "é" * 150 + "b.pdf"
    sa, sb = sanitize_name(a), sanitize_name(b)
    assert sa is not None and sb is not None
    assert len(sa.encode()) <= MAX_NAME_BYTES and len(sb.encode()) <= MAX_NAME_BYTES
    assert sa.endswith(".pdf") and sb.endswith(".pdf")
    assert sa != sb
    assert sanitize_name(a) == sa  # deterministic
    assert sanitize_name(sa) == sa  # idempotent
    plain = "x" * 300
    sp = sanitize_name(plain)
    assert sp is not None and len(sp.encode()) <= MAX_NAME_BYTES


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_sanitize_idempotent_and_safe(raw: str) -> None:
    s = sanitize_name(raw)
    if s is None:
        return
    assert sanitize_name(s) == s
    assert s not in ("", ".", "..")
    assert "/" not in s and "\\" not in s and "\x00" not in s
    assert len(s.encode("utf-8")) <= MAX_NAME_BYTES
    assert is_nfc(s)
    assert s == s.strip() and not s.endswith(".")


@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_sanitized_names_never_escape_root(tmp_path_factory: pytest.TempPathFactory, raws: list[str]) -> None:
    root = tmp_path_factory.getbasetemp() / "root"
    root.mkdir(exist_ok=True)
    rel = ""
    for raw in raws:
        name = sanitize_name(raw)
        if name is None:
            continue
        rel = join(rel, name)
    path = safe_local_path(root, rel)
    real_root = root.resolve()
    assert path.resolve() == real_root or real_root in path.resolve().parents


def test_assign_duplicates_stable_and_order_independent() -> None:
    reqs = [
        NameRequest("id-b", "Report.pdf"),
        NameRequest("id-a", "report.pdf"),
        NameRequest("id-c", "REPORT.pdf"),
        NameRequest("id-d", "other"),
    ]
    first = assign_local_names(reqs)
    assert first == assign_local_names(list(reversed(reqs)))
    assert first["id-a"] == "report.pdf"  # smallest id keeps the plain name
    assert first["id-b"].startswith("Report (~") and first["id-b"].endswith(").pdf")
    assert first["id-c"].startswith("REPORT (~")
    assert first["id-d"] == "other"
    folded = {n.casefold() for n in first.values()}
    assert len(folded) == 4
    # the suffix depends on the id only: the same id gets the same name next time
    again = assign_local_names([NameRequest(r.remote_id, r.raw_name, first[r.remote_id]) for r in reqs])
    assert again == first


def test_assign_keeps_current_name_against_new_smaller_id() -> None:
    before = assign_local_names([NameRequest("id-5", "a.txt")])
    assert before == {"id-5": "a.txt"}
    after = assign_local_names([NameRequest("id-5", "a.txt", "a.txt"), NameRequest("id-1", "A.TXT")])
    assert after["id-5"] == "a.txt"
    assert after["id-1"].startswith("A (~")


def test_assign_drops_stale_current_after_remote_rename() -> None:
    out = assign_local_names([NameRequest("id-1", "new.txt", "old.txt")])
    assert out == {"id-1": "new.txt"}


def test_assign_nfd_and_nfc_duplicates_and_skips() -> None:
    nfd = unicodedata.normalize("NFD", "é.txt")
    out = assign_local_names([NameRequest("1", nfd), NameRequest("2", "é.txt"), NameRequest("3", "..")])
    assert out["1"] == "é.txt"
    assert out["2"] != out["1"] and out["2"].endswith(".txt")
    assert "3" not in out


def test_join_and_parent() -> None:
    assert join("", "a") == "a"
    assert join("a/b", "c") == "a/b/c"
    assert parent_of("a/b/c") == "a/b"
    assert parent_of("a") == ""


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\x00b", "a/", ".."])
def test_safe_local_path_refuses(tmp_path: Path, rel: str) -> None:
    with pytest.raises(ValueError):
        safe_local_path(tmp_path, rel)


def test_safe_local_path_refuses_symlinked_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        safe_local_path(root, "link/file.txt")
    (root / "real").mkdir()
    assert safe_local_path(root, "real/new/file.txt") == root / "real/new/file.txt"
    assert safe_local_path(root, "") == root


def test_each_changed_remote_name_is_logged_once() -> None:
    from structlog.testing import capture_logs

    siblings = [
        NameRequest("id-log-1", "report.pdf"),
        NameRequest("id-log-2", "REPORT.pdf"),  # differs only in case: gets a suffix
        NameRequest("id-log-3", "a/b:c.txt"),  # not usable on disk as it is
        NameRequest("id-log-4", "plain.txt"),
    ]
    with capture_logs() as logs:
        first = assign_local_names(siblings)
        again = assign_local_names(siblings)  # the next poll: nothing new to say
    assert first == again
    changed = [e for e in logs if e["event"] == "remote_name_sanitised"]
    assert sorted(e["remote_id"] for e in changed) == ["id-log-2", "id-log-3"]
    by_id = {e["remote_id"]: e for e in changed}
    assert by_id["id-log-2"]["local_name"] == first["id-log-2"] and "same name" in by_id["id-log-2"]["reason"]
    assert by_id["id-log-3"]["raw_name"] == "a/b:c.txt" and "cannot be used" in by_id["id-log-3"]["reason"]


def test_a_mapping_is_kept_while_the_server_name_is_unchanged() -> None:
    """Our upload of ``Q3?.txt`` comes back from the listing under that raw name: it keeps the local name
    it was synced under, though the sanitiser would map it to ``Q3_.txt`` (issue 13 §2)."""
    from daemon.local.names import NameRequest, assign_local_names

    kept = assign_local_names([NameRequest("id-1", "Q3?.txt", current="Q3?.txt", current_raw="Q3?.txt")])
    assert kept == {"id-1": "Q3?.txt"}
    renamed = assign_local_names([NameRequest("id-1", "Q4?.txt", current="Q3?.txt", current_raw="Q3?.txt")])
    assert renamed == {"id-1": "Q4_.txt"}  # renamed on the server: mapped afresh


def test_a_new_name_avoids_a_local_only_case_variant() -> None:
    from daemon.local.names import NameRequest, assign_local_names

    names = assign_local_names([NameRequest("id-1", "hello.txt")], local_only=["Hello.txt"])
    assert names["id-1"].startswith("hello (~") and names["id-1"].endswith(").txt")
    same = assign_local_names([NameRequest("id-1", "hello.txt")], local_only=["hello.txt"])
    assert same == {"id-1": "hello.txt"}  # the same name on both sides is one path: the planner decides


def test_a_server_name_a_local_file_has_exactly_is_that_file() -> None:
    """Our upload of ``Q3?.txt`` whose answer was lost shows up in the next listing: it must map onto the
    local ``Q3?.txt`` (recognised as ours), not onto the sanitised ``Q3_.txt`` (a second copy)."""
    from daemon.local.names import NameRequest, assign_local_names

    assert assign_local_names([NameRequest("id-1", "Q3?.txt")], local_only=["Q3?.txt"]) == {"id-1": "Q3?.txt"}
    assert assign_local_names([NameRequest("id-1", "Q3?.txt")]) == {"id-1": "Q3_.txt"}


def test_every_name_the_engine_invents_fits_the_limit() -> None:
    """A 250-byte name (which the sanitiser accepts) gave a 286-byte conflict copy and OSError 36."""
    from daemon.local.names import MAX_NAME_BYTES, NameRequest, assign_local_names, sanitize_name
    from daemon.sync.plan import conflict_copy_name

    long = "é" * 100 + "x" * 45 + ".txt"  # 249 bytes
    assert sanitize_name(long) == long
    copy = conflict_copy_name(f"dir/{long}", "2026-12-05 101010", lambda p: False)
    assert len(copy.rpartition("/")[2].encode()) <= MAX_NAME_BYTES and copy.endswith(
        " (conflicted copy 2026-12-05 101010).txt"
    )
    second = conflict_copy_name(f"dir/{long}", "2026-12-05 101010", lambda p: p == copy)
    assert second != copy and len(second.rpartition("/")[2].encode()) <= MAX_NAME_BYTES
    folder = conflict_copy_name("x" * 250, "2026-12-05 101010", lambda p: False, is_dir=True)
    assert len(folder.encode()) <= MAX_NAME_BYTES
    names = assign_local_names([NameRequest("id-1", long), NameRequest("id-2", long)])
    assert len(set(names.values())) == 2 and all(len(n.encode()) <= MAX_NAME_BYTES for n in names.values())
