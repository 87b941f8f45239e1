"""``[library.remote]`` of a TimeTap library: keys, defaults, secrets, and errors that name the fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import ConfigError, TimeTapRemote, load_config
from daemon.logs import clear_secrets
from daemon.providers import make_provider
from daemon.providers.timetap import ROOT_ID, TimeTapProvider


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


def write(tmp_path: Path, remote: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
state_dir = "state"

[[library]]
name = "forms"
provider = "timetap"
local_path = "mirror/forms"

[library.remote]
{remote}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def issues(tmp_path: Path, remote: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, remote), environ=environ or {})
    return [str(issue) for issue in info.value.issues]


def test_full_table_with_secrets_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "private.key").write_text("priv-4567890abcdef\n")
    config = load_config(
        write(
            tmp_path,
            """
base_url = "http://127.0.0.1:8080/live/"
api_key_env = "TT_KEY"
private_key_file = "private.key"
business_id = 12345
user_name = "front.desk"
root_folder = "6f1c1d2e-0000-4000-8000-000000000001"
""",
        ),
        environ={"TT_KEY": "key-1234567890"},
    )
    remote = config.libraries[0].remote
    assert isinstance(remote, TimeTapRemote)
    assert remote.base_url == "http://127.0.0.1:8080/live"
    assert remote.api_key.reveal() == "key-1234567890" and remote.private_key.reveal() == "priv-4567890abcdef"
    assert (remote.business_id, remote.user_name) == (12345, "front.desk")
    assert remote.root_folder == "6f1c1d2e-0000-4000-8000-000000000001"
    provider = make_provider(config.libraries[0].remote)
    assert isinstance(provider, TimeTapProvider) and provider.root_id == remote.root_folder


def test_defaults_and_business_id_as_string(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'api_key = "key-1234567890"\nprivate_key = "priv-1234567890"\nbusiness_id = "777"\nuser_name = "u"',
        )
    )
    remote = config.libraries[0].remote
    assert isinstance(remote, TimeTapRemote)
    assert remote.base_url == "https://api.timetap.com/live" and remote.root_folder is None
    assert remote.business_id == 777
    assert make_provider(config.libraries[0].remote).root_id == ROOT_ID


def test_missing_and_bad_keys_are_named_with_a_fix(tmp_path: Path) -> None:
    found = issues(tmp_path, 'api_key = "key-1234567890"\nbusiness_id = "12a"\nbase_url = "http://api.timetap.com"')
    text = "\n".join(found)
    assert "library[forms].remote.private_key" in text and "private_key_env" in text
    assert "library[forms].remote.user_name" in text
    assert "library[forms].remote.business_id" in text and "positive whole number" in text
    assert "library[forms].remote.base_url" in text and "https" in text


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        'api_key = "key-1234567890"\nprivate_key = "priv-1234567890"\n'
        'business_id = 1\nuser_name = "u"\nroot_foldr = "x"',
    )
    assert any("root_foldr" in i and "root_folder" in i for i in found)


def test_missing_env_secret_is_reported(tmp_path: Path) -> None:
    found = issues(
        tmp_path, 'api_key = "key-1234567890"\nprivate_key_env = "TT_PRIVATE"\nbusiness_id = 1\nuser_name = "u"'
    )
    assert any("TT_PRIVATE is not set" in i for i in found)
