"""Config loading: defaults, paths, secrets, every kind of error, and the shipped example."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import (
    REMOTE_SCHEMAS,
    Config,
    ConfigError,
    ConfigIssue,
    CoreDataRemote,
    load_config,
)
from daemon.logs import clear_secrets, redact_text
from daemon.secrets import Secret
from daemon.vocab import Direction

REPO = Path(__file__).resolve().parent.parent
KEY = "k3y-0f-the-tenant-123"

REMOTE = """
[library.remote]
base_url = "https://tenant.coredata.is/"
root = "313ae0be-71cf-11ee-b1e9-ebd554949e29"
api_user = "sync"
api_key_env = "COREDATA_KEY"
"""


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def minimal(extra_top: str = "", extra_lib: str = "", remote: str = REMOTE) -> str:
    return f"""
state_dir = "state"
{extra_top}
[[library]]
name = "board"
provider = "coredata"
local_path = "mirror/board"
{extra_lib}
{remote}
"""


def load(path: Path, **env: str) -> Config:
    return load_config(path, environ={"COREDATA_KEY": KEY, **env})


def issues(path: Path, **env: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load(path, **env)
    return info.value.issues


def keys(found: list[ConfigIssue]) -> list[str]:
    return [i.key for i in found]


def test_minimal_config_has_defaults_and_absolute_paths(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, minimal()))
    assert cfg.path == tmp_path / "config.toml"
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.log_level == "info"
    assert cfg.allow_root is False
    (lib,) = cfg.libraries
    assert lib.name == "board"
    assert lib.provider == "coredata"
    assert lib.local_path == tmp_path / "mirror" / "board"
    assert lib.direction is Direction.TWO_WAY
    assert (lib.max_delete_percent, lib.max_delete_count) == (50.0, 500)
    assert lib.ignore == ()
    assert (lib.trash_days, lib.concurrency) == (30, 16)
    assert (lib.poll_interval, lib.full_scan_interval) == (30.0, 3600.0)
    assert (lib.settle, lib.local_rescan_interval) == (1.0, 3600.0)
    assert lib.propagate_deletes is True
    assert isinstance(lib.remote, CoreDataRemote)
    assert lib.remote.base_url == "https://tenant.coredata.is"  # trailing slash dropped
    assert lib.remote.api_key.reveal() == KEY
    assert cfg.library("board") is lib
    with pytest.raises(KeyError):
        cfg.library("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.log_level = "debug"  # type: ignore[misc]


def test_every_library_key_is_read_and_typed(tmp_path: Path) -> None:
    lib_keys = """
direction = "pull"
max_delete_percent = 12.5
max_delete_count = 0
ignore = ["*.tmp", "~$*", "/build/"]
trash_days = 7
concurrency = 32
poll_interval = 5
full_scan_interval = 600.5
settle = 0
local_rescan_interval = 120
propagate_deletes = false
"""
    path = write(tmp_path, minimal('log_level = "debug"\nallow_root = true', lib_keys))
    cfg = load(path)
    lib = cfg.libraries[0]
    assert cfg.log_level == "debug" and cfg.allow_root is True
    assert lib.direction is Direction.PULL
    assert lib.max_delete_percent == 12.5 and lib.max_delete_count == 0
    assert lib.ignore == ("*.tmp", "~$*", "/build/")
    assert lib.trash_days == 7 and lib.concurrency == 32
    assert isinstance(lib.poll_interval, float) and lib.poll_interval == 5.0
    assert lib.full_scan_interval == 600.5 and lib.settle == 0.0 and lib.local_rescan_interval == 120.0
    assert lib.propagate_deletes is False


def test_absolute_paths_are_kept_and_dotdot_folded(tmp_path: Path) -> None:
    text = minimal().replace('"mirror/board"', f'"{tmp_path}/a/../board"')
    cfg = load(write(tmp_path, text))
    assert cfg.libraries[0].local_path == tmp_path / "board"


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "config.example.toml", environ={"COREDATA_KEY": KEY})
    (lib,) = cfg.libraries
    assert cfg.state_dir == Path("/var/lib/libmirror")
    assert lib.name == "board" and lib.local_path == Path("/srv/mirror/board")
    assert isinstance(lib.remote, CoreDataRemote) and lib.remote.api_key.reveal() == KEY


def test_example_documents_every_key() -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    fields = [f.name for f in dataclasses.fields(Config)] + [f.name for f in dataclasses.fields(cfg_lib_type())]
    for name in fields:
        if name in ("path", "libraries", "remote"):
            continue
        assert f"{name} =" in text, name
    for name in ("base_url", "root", "api_user", "api_key_env", "api_key_file"):
        assert name in text


def cfg_lib_type() -> type:
    from daemon.config import LibraryConfig

    return LibraryConfig


# --- errors --------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", environ={})
    (issue,) = info.value.issues
    assert issue.file == str(tmp_path / "nope.toml")
    assert "file not found" in str(info.value)


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'state_dir = "x"\nlog_level = \n')
    (issue,) = issues(path)
    assert "line 2" in issue.message and "column" in issue.message
    assert str(issue).startswith(f"{path}: TOML syntax error")


def test_env_secret_missing_message_is_exact(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == (
        f"{path}: library[board].remote.api_key_env: environment variable COREDATA_KEY is not set; "
        "export it or use api_key_file"
    )


def test_all_problems_reported_in_one_pass(tmp_path: Path) -> None:
    text = """
state_dir = 5
log_level = "verbose"
colour = true

[[library]]
name = "board"
provider = "coredatta"
local_path = "a"
concurency = 4
max_delete_percent = 101
max_delete_count = -1
trash_days = true
settle = "1s"
ignore = "*.tmp"
direction = "both"

[[library]]
name = "bad name!"
provider = "coredata"
local_path = "b"

[library.remote]
base_url = "http://example.com"
root = ""
api_user = "sync"
api_key_env = "COREDATA_KEY"
api_key = "inline-secret"
extra = 1
"""
    found = issues(write(tmp_path, text))
    by_key = {i.key: i.message for i in found}
    assert "expected a string, got an integer" in by_key["state_dir"]
    assert '"verbose" is not one of debug | info | warning | error' in by_key["log_level"]
    assert "unknown key" in by_key["colour"]
    assert 'did you mean "coredata"' in by_key["library[board].provider"]
    assert 'did you mean "concurrency"' in by_key["library[board].concurency"]
    assert "between 0 and 100" in by_key["library[board].max_delete_percent"]
    assert "at least 0" in by_key["library[board].max_delete_count"]
    assert "expected an integer, got a boolean" in by_key["library[board].trash_days"]
    assert "expected a number, got a string" in by_key["library[board].settle"]
    assert "expected an array of strings" in by_key["library[board].ignore"]
    assert "two-way | pull | push" in by_key["library[board].direction"]
    assert "missing table" in by_key["library[board].remote"]
    # the second library has an invalid name, so it is named by index
    assert "may only contain" in by_key["library[1].name"]
    assert "https://" in by_key["library[1].remote.base_url"]
    assert "must not be empty" in by_key["library[1].remote.root"]
    assert "keep exactly one" in by_key["library[1].remote.api_key"]
    assert "unknown key" in by_key["library[1].remote.extra"]
    assert all(i.file == str(tmp_path / "config.toml") for i in found)


def test_missing_required_keys(tmp_path: Path) -> None:
    text = '[[library]]\nprovider = "coredata"\n[library.remote]\nbase_url = "https://x.example"\n'
    found = keys(issues(write(tmp_path, text)))
    for key in (
        "state_dir",
        "library[0].name",
        "library[0].local_path",
        "library[0].remote.root",
        "library[0].remote.api_user",
        "library[0].remote.api_key",
    ):
        assert key in found


def test_no_libraries_and_single_bracket_library(tmp_path: Path) -> None:
    (issue,) = issues(write(tmp_path, 'state_dir = "s"\n'))
    assert issue.key == "library" and "[[library]]" in issue.message
    (issue,) = issues(write(tmp_path, 'state_dir = "s"\n[library]\nname = "x"\n'))
    assert "double brackets" in issue.message


def test_secret_none_set_names_all_three(tmp_path: Path) -> None:
    remote = REMOTE.replace('api_key_env = "COREDATA_KEY"', "")
    (issue,) = issues(write(tmp_path, minimal(remote=remote)))
    assert issue.key == "library[board].remote.api_key"
    for name in ("api_key_env", "api_key_file", "api_key"):
        assert name in issue.message


def test_secret_env_empty(tmp_path: Path) -> None:
    (issue,) = issues(write(tmp_path, minimal()), COREDATA_KEY="")
    assert "is empty" in issue.message


def test_duplicate_names_and_overlapping_paths(tmp_path: Path) -> None:
    lib = (
        """
[[library]]
name = "{name}"
provider = "coredata"
local_path = "{path}"
"""
        + REMOTE
    )
    text = 'state_dir = "data/state"\n' + "".join(
        lib.format(name=n, path=p)
        for n, p in [("a", "data"), ("a", "other"), ("b", "data/inner"), ("c", "same"), ("d", "same/")]
    )
    found = issues(write(tmp_path, text))
    messages = [str(i) for i in found]
    assert any("library[1].name" in m and "already used" in m for m in messages)
    assert any("library[a].local_path" in m and "contains library[b]" in m for m in messages)
    assert any("library[c].local_path" in m and "same folder" in m for m in messages)
    assert any(i.key == "state_dir" and "inside library[a]" in i.message for i in found)


def test_invalid_ignore_pattern(tmp_path: Path) -> None:
    (issue,) = issues(write(tmp_path, minimal(extra_lib='ignore = ["ok", "!"]')))
    assert issue.key == "library[board].ignore" and "'!'" in issue.message


def test_concurrency_range(tmp_path: Path) -> None:
    (issue,) = issues(write(tmp_path, minimal(extra_lib="concurrency = 0")))
    assert "between 1 and 32" in issue.message


def test_unknown_provider_lists_choices(tmp_path: Path) -> None:
    text = minimal().replace('provider = "coredata"', 'provider = "dropbox"')
    found = issues(write(tmp_path, text))
    assert [i.key for i in found] == ["library[board].provider"]
    assert "coredata" in found[0].message


# --- base_url ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:1234/", "http://[::1]:9000", "https://tenant.example.com"],
)
def test_base_url_accepted(tmp_path: Path, url: str) -> None:
    remote = REMOTE.replace("https://tenant.coredata.is/", url)
    cfg = load(write(tmp_path, minimal(remote=remote)))
    remote_cfg = cfg.libraries[0].remote
    assert isinstance(remote_cfg, CoreDataRemote) and remote_cfg.base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://tenant.coredata.is", "only allowed for 127.0.0.1"),
        ("http://10.0.0.1", "use https://"),
        ("ftp://tenant.coredata.is", "not an http(s) URL"),
        ("tenant.coredata.is", "not an http(s) URL"),
        ("https://user:pw@tenant.coredata.is", "must not contain user or password"),
        ("https://tenant.coredata.is:99999", "not a valid URL"),
        ("https://tenant.coredata.is/?a=1", "query string"),
    ],
)
def test_base_url_refused(tmp_path: Path, url: str, words: str) -> None:
    remote = REMOTE.replace("https://tenant.coredata.is/", url)
    (issue,) = issues(write(tmp_path, minimal(remote=remote)))
    assert issue.key == "library[board].remote.base_url"
    assert words in issue.message


# --- secrets -------------------------------------------------------------------------------------


def test_secret_from_relative_file_strips_one_newline(tmp_path: Path) -> None:
    (tmp_path / "keyfile").write_text(KEY + "\n\n", encoding="utf-8")
    remote = REMOTE.replace('api_key_env = "COREDATA_KEY"', 'api_key_file = "keyfile"')
    cfg = load_config(write(tmp_path, minimal(remote=remote)), environ={})
    remote_cfg = cfg.libraries[0].remote
    assert isinstance(remote_cfg, CoreDataRemote)
    assert remote_cfg.api_key.reveal() == KEY + "\n"


def test_secret_from_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "coredata-key").write_text(KEY + "\n", encoding="utf-8")
    remote = REMOTE.replace('api_key_env = "COREDATA_KEY"', 'api_key_file = "$CREDENTIALS_DIRECTORY/coredata-key"')
    path = write(tmp_path, minimal(remote=remote))
    cfg = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    remote_cfg = cfg.libraries[0].remote
    assert isinstance(remote_cfg, CoreDataRemote) and remote_cfg.api_key.reveal() == KEY
    # without the variable: a clear error, not a file called "$CREDENTIALS_DIRECTORY"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "CREDENTIALS_DIRECTORY" in str(info.value) and "LoadCredential" in str(info.value)


def test_secret_file_missing_or_empty(tmp_path: Path) -> None:
    remote = REMOTE.replace('api_key_env = "COREDATA_KEY"', 'api_key_file = "nokey"')
    path = write(tmp_path, minimal(remote=remote))
    (issue,) = issues(path)
    assert issue.key == "library[board].remote.api_key_file" and "does not exist" in issue.message
    (tmp_path / "nokey").write_text("\n", encoding="utf-8")
    (issue,) = issues(path)
    assert "is empty" in issue.message


def test_inline_secret_in_readable_file_warns(tmp_path: Path) -> None:
    remote = REMOTE.replace('api_key_env = "COREDATA_KEY"', f'api_key = "{KEY}"')
    path = write(tmp_path, minimal(remote=remote), mode=0o644)
    with capture_logs() as logs:
        cfg = load_config(path, environ={})
    (warning,) = [e for e in logs if e["event"] == "config_secret_world_readable"]
    assert warning["log_level"] == "warning"
    assert warning["key"] == "library[board].remote.api_key"
    assert f"chmod 600 {path}" in warning["fix"]
    assert KEY not in repr(logs)
    remote_cfg = cfg.libraries[0].remote
    assert isinstance(remote_cfg, CoreDataRemote) and remote_cfg.api_key.reveal() == KEY

    path.chmod(0o600)
    with capture_logs() as logs:
        load_config(path, environ={})
    assert not [e for e in logs if e["event"] == "config_secret_world_readable"]


def test_loaded_secrets_are_registered_for_redaction(tmp_path: Path) -> None:
    assert redact_text(f"key is {KEY}") == f"key is {KEY}"
    cfg = load(write(tmp_path, minimal()))
    assert redact_text(f"key is {KEY}") == "key is [redacted]"
    assert KEY not in repr(cfg) and KEY not in str(cfg)


def test_secret_wrapper() -> None:
    s = Secret("hunter22")
    assert repr(s) == str(s) == "Secret('***')"
    assert f"{s}" == "Secret('***')"
    assert s.reveal() == "hunter22"
    assert s == Secret("hunter22") and s != Secret("other")
    assert hash(s) == hash(Secret("hunter22"))


def test_registry_holds_coredata() -> None:
    assert set(REMOTE_SCHEMAS) >= {"coredata"}


def test_unreadable_issue_string_without_key() -> None:
    assert str(ConfigIssue("/x.toml", "", "boom")) == "/x.toml: boom"
    assert str(ConfigIssue("/x.toml", "a.b", "boom")) == "/x.toml: a.b: boom"
