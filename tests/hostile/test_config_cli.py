"""Configuration mistakes at the command line: every command that reads the config answers each mistake
with one message naming the file, the key and the fix, does nothing else, and exits 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import LIBMIRROR

GOOD_REMOTE = """[library.remote]
base_url = "https://tenant.coredata.is"
root = "313ae0be-71cf-11ee-b1e9-ebd554949e29"
api_user = "sync"
api_key_env = "K1_TEST_KEY"
"""


def config_text(*, top: str = "", lib: str = "", remote: str = GOOD_REMOTE, provider: str = "coredata") -> str:
    library = f'[[library]]\nname = "board"\nprovider = "{provider}"\nlocal_path = "m"\n{lib}\n'
    return f'state_dir = "state"\n{top}\n{library}{remote}'


# (case, config text, the key the message must name, words of the fix)
CASES: list[tuple[str, str, str, str]] = [
    ("toml syntax", 'state_dir = "state"\nlog_level = \n', "TOML syntax error", "line 2"),
    ("typo in a top key", config_text(top="trash_dayz = 3"), "trash_dayz", "unknown key"),
    ("wrong type", config_text(lib='trash_days = "7"'), "library[board].trash_days", "expected an integer"),
    ("unknown provider", config_text(provider="coredatta"), "library[board].provider", 'did you mean "coredata"'),
    ("bad direction", config_text(lib='direction = "sideways"'), "library[board].direction", "two-way | pull | push"),
    ("percent out of range", config_text(lib="max_delete_percent = 150"), "max_delete_percent", "between 0 and 100"),
    (
        "missing remote key",
        config_text(remote=GOOD_REMOTE.replace('root = "313ae0be-71cf-11ee-b1e9-ebd554949e29"\n', "")),
        "library[board].remote.root",
        "missing",
    ),
    (
        "secret env var not set",
        config_text(remote=GOOD_REMOTE.replace("K1_TEST_KEY", "K1_UNSET_VARIABLE")),
        "library[board].remote.api_key_env",
        "export it or use api_key_file",
    ),
    (
        "secret file missing",
        config_text(remote=GOOD_REMOTE.replace('api_key_env = "K1_TEST_KEY"', 'api_key_file = "/nonexistent/k1-key"')),
        "library[board].remote.api_key_file",
        "/nonexistent/k1-key",
    ),
    (
        "plain http to a remote host",
        config_text(remote=GOOD_REMOTE.replace("https://tenant", "http://tenant")),
        "library[board].remote.base_url",
        "https://",
    ),
    (
        "push-only provider set to two-way",
        config_text(
            provider="coreplus",
            lib='direction = "two-way"',
            remote='[library.remote]\nbase_url = "https://cp.example"\nconsumer_id = "c"\n'
            'consumer_secret_env = "K1_TEST_KEY"\naccess_token_env = "K1_TEST_KEY"\n'
            'issuer = "i"\naudience = "a"\n',
        ),
        "library[board].direction",
        "push",
    ),
    ("no library at all", 'state_dir = "state"\n', "library", "[[library]]"),
]


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "K1_TEST_KEY": "k" * 24}
    return subprocess.run(
        [LIBMIRROR, "--config", str(config), *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize(("case", "text", "key", "fix"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_gives_one_message_and_exit_2(tmp_path: Path, case: str, text: str, key: str, fix: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    config.chmod(0o600)
    commands = [["check-config"], ["sync", "--once"]]
    if case in ("typo in a top key", "secret env var not set"):  # every command loads the config the same way
        commands += [["run"], ["status"], ["sync", "--once", "--dry-run"]]
    for command in commands:
        result = run(config, *command)
        assert result.returncode == 2, (case, command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (case, command, result.stderr)
        assert str(config) in errors[0] and key in errors[0] and fix in errors[0], (case, errors[0])
        assert result.stdout == "", (case, command)  # no log line, no pass: nothing was done
    assert not (tmp_path / "state").exists() and not (tmp_path / "m").exists()


def test_missing_config_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    for command in (["check-config"], ["sync", "--once"], ["run"]):
        result = run(missing, *command)
        assert result.returncode == 2
        assert str(missing) in result.stderr and "not found" in result.stderr


def test_several_mistakes_are_all_listed_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(top="trash_dayz = 3", lib='direction = "sideways"\nmax_delete_count = -1'))
    config.chmod(0o600)
    result = run(config, "check-config")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "3 problem(s)" in result.stderr
