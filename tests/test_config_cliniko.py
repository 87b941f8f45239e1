"""The ``[library.remote]`` table of a Cliniko library: keys, defaults, derived base URL, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import ClinikoRemote, ConfigError, load_config
from daemon.logs import clear_secrets
from daemon.providers import make_provider
from daemon.providers.cliniko import ClinikoProvider

KEY = "MS0xMjM0NTY3ODkwLWFiY2RlZmdoaWprbG1ub3A-au2"
UA = "Practice Mirror (it@practice.example)"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


def load(tmp_path: Path, remote: str, env: dict[str, str] | None = None) -> ClinikoRemote:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
state_dir = "state"

[[library]]
name = "clinic"
provider = "cliniko"
local_path = "mirror"

[library.remote]
{remote}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    config = load_config(path, environ=env or {})
    remote_config = config.libraries[0].remote
    assert isinstance(remote_config, ClinikoRemote)
    return remote_config


def issues(tmp_path: Path, remote: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, remote)
    return [str(i) for i in info.value.issues]


def test_minimal_table_derives_the_shard_from_the_key(tmp_path: Path) -> None:
    remote = load(tmp_path, f'api_key_env = "CLINIKO_KEY"\nuser_agent = "{UA}"', {"CLINIKO_KEY": KEY})
    assert remote.api_key.reveal() == KEY
    assert remote.base_url == "https://api.au2.cliniko.com/v1"
    assert remote.user_agent == UA
    assert remote.patients == ()
    assert remote.patient_folder == "{last_name}, {first_name} ({id})"
    assert (remote.rate_limit, remote.rate_limit_window) == (200, 60.0)


def test_key_without_suffix_means_au1_and_base_url_overrides(tmp_path: Path) -> None:
    remote = load(tmp_path, f'api_key = "plainkey"\nuser_agent = "{UA}"')
    assert remote.base_url == "https://api.au1.cliniko.com/v1"
    remote = load(tmp_path, f'api_key = "{KEY}"\nuser_agent = "{UA}"\nbase_url = "http://127.0.0.1:9999/v1/"')
    assert remote.base_url == "http://127.0.0.1:9999/v1"


def test_optional_keys(tmp_path: Path) -> None:
    remote = load(
        tmp_path,
        f"""api_key = "{KEY}"
user_agent = "{UA}"
patients = [1234, "5678", 1234]
patient_folder = "{{id}} {{last_name}}"
rate_limit = 100
rate_limit_window = 30
""",
    )
    assert remote.patients == ("1234", "5678")
    assert remote.patient_folder == "{id} {last_name}"
    assert (remote.rate_limit, remote.rate_limit_window) == (100, 30.0)


def test_provider_is_built_from_the_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
state_dir = "state"
[[library]]
name = "clinic"
provider = "cliniko"
local_path = "mirror"
[library.remote]
api_key = "{KEY}"
user_agent = "{UA}"
patients = [7]
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    provider = make_provider(load_config(path, environ={}).libraries[0].remote)
    assert isinstance(provider, ClinikoProvider)
    assert str(provider.base_url) == "https://api.au2.cliniko.com/v1"
    assert provider.patients == frozenset({"7"})


@pytest.mark.parametrize("agent", ["libmirror", "Mirror it@practice.example", "(it@practice.example)", "Mirror (it)"])
def test_user_agent_must_name_an_email(tmp_path: Path, agent: str) -> None:
    found = issues(tmp_path, f'api_key = "{KEY}"\nuser_agent = "{agent}"')
    assert len(found) == 1
    assert "library[clinic].remote.user_agent" in found[0] and "NAME (EMAIL)" in found[0]


def test_missing_keys_are_all_reported(tmp_path: Path) -> None:
    found = issues(tmp_path, "")
    assert any("remote.api_key" in i and "api_key_env" in i for i in found)
    assert any("remote.user_agent" in i for i in found)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('patients = "1234"', "array of patient ids"),
        ('patients = ["abc"]', "array of patient ids"),
        ('patient_folder = "{surname} ({id})"', "unknown field {surname}"),
        ('patient_folder = "{last_name}, {first_name}"', "must contain {id}"),
        ('patient_folder = "{last_name"', "not a valid format"),
        ("rate_limit = 0", "at least 1"),
        ('base_url = "http://api.au1.cliniko.com/v1"', "plain http"),
    ],
)
def test_bad_values_name_key_and_fix(tmp_path: Path, line: str, expected: str) -> None:
    found = issues(tmp_path, f'api_key = "{KEY}"\nuser_agent = "{UA}"\n{line}')
    assert len(found) == 1, found
    assert expected in found[0]
    assert found[0].startswith(str(tmp_path / "config.toml"))
