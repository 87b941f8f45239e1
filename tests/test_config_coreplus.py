"""``[library.remote]`` for coreplus: keys, secrets, the push-only rule, and the documented example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import ConfigError, CorePlusRemote, load_config
from daemon.logs import clear_secrets
from daemon.providers import make_provider
from daemon.providers.coreplus import CorePlusProvider
from daemon.vocab import Direction

REPO = Path(__file__).resolve().parent.parent
SECRET = "c0nsumer-secret-of-the-app"
TOKEN = "acc3ss-token-of-the-app"

REMOTE = """
[library.remote]
base_url = "https://practice.example.com/"
consumer_id = "app-1"
consumer_secret_env = "CP_SECRET"
access_token = "acc3ss-token-of-the-app"
issuer = "me"
audience = ""
"""


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


def config(tmp_path: Path, lib: str = 'direction = "push"', remote: str = REMOTE) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
state_dir = "state"
[[library]]
name = "clients"
provider = "coreplus"
local_path = "clients"
{lib}
{remote}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def issues(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"CP_SECRET": SECRET} if environ is None else environ)
    return [str(i) for i in info.value.issues]


def test_valid_push_library(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path), environ={"CP_SECRET": SECRET})
    (lib,) = cfg.libraries
    remote = lib.remote
    assert isinstance(remote, CorePlusRemote) and lib.direction is Direction.PUSH
    assert remote.base_url == "https://practice.example.com"
    assert (remote.consumer_id, remote.issuer, remote.audience, remote.clock_skew) == ("app-1", "me", "", 0.0)
    assert remote.consumer_secret.reveal() == SECRET and remote.access_token.reveal() == TOKEN
    assert SECRET not in repr(remote) and TOKEN not in repr(remote)
    provider = make_provider(lib.remote)
    assert isinstance(provider, CorePlusProvider) and provider.base_url == "https://practice.example.com"


def test_an_omitted_direction_means_push(tmp_path: Path) -> None:
    (lib,) = load_config(config(tmp_path, lib=""), environ={"CP_SECRET": SECRET}).libraries
    assert lib.direction is Direction.PUSH


@pytest.mark.parametrize("direction", ["two-way", "pull"])
def test_any_direction_but_push_is_refused_with_the_reason(tmp_path: Path, direction: str) -> None:
    (problem,) = issues(config(tmp_path, lib=f'direction = "{direction}"'))
    assert "library[clients].direction" in problem
    assert f'is "{direction}"' in problem
    assert 'direction = "push"' in problem and "only uploads" in problem


def test_secrets_from_a_file_and_their_errors(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    remote = REMOTE.replace('consumer_secret_env = "CP_SECRET"', f'consumer_secret_file = "{secret_file}"')
    lib = load_config(config(tmp_path, remote=remote), environ={}).libraries[0]
    assert isinstance(lib.remote, CorePlusRemote) and lib.remote.consumer_secret.reveal() == SECRET

    both = REMOTE.replace("access_token = ", 'access_token_env = "X"\naccess_token = ')
    found = issues(config(tmp_path, remote=both), environ={"CP_SECRET": SECRET, "X": "y"})
    assert any("access_token" in i and "keep exactly one" in i for i in found)
    assert any("CP_SECRET is not set" in i for i in issues(config(tmp_path), environ={}))


def test_missing_and_wrong_keys_are_all_listed(tmp_path: Path) -> None:
    remote = """
[library.remote]
base_url = "http://practice.example.com"
issuer = 5
clock_skew = -1
consumer_key = "typo"
"""
    found = issues(config(tmp_path, remote=remote))
    joined = "\n".join(found)
    for key in ("base_url", "consumer_id", "consumer_secret", "access_token", "issuer", "clock_skew"):
        assert re.search(rf"remote\.{key}\b", joined), key
    assert "plain http" in joined and 'did you mean "consumer_id"' in joined


def test_example_section_uncommented_is_valid(tmp_path: Path) -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("# [[library]]", text.index("coreplus (push-only)"))
    end = text.find("\n# ---", start)  # the next provider's section, if any
    section = text[start : end if end >= 0 else len(text)]
    body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in section.splitlines())
    body = body.replace("https://<your coreplus server>", "https://practice.example.com")
    body = body.replace("<consumerId of the app>", "app-1")
    (tmp_path / "coreplus-token").write_text(TOKEN)
    path = tmp_path / "example.toml"
    path.write_text(f'state_dir = "/var/lib/libmirror"\n{body}\n', encoding="utf-8")
    env = {"COREPLUS_SECRET": SECRET, "CREDENTIALS_DIRECTORY": str(tmp_path)}
    (lib,) = load_config(path, environ=env).libraries
    assert lib.direction is Direction.PUSH and isinstance(lib.remote, CorePlusRemote)
    assert lib.remote.access_token.reveal() == TOKEN and lib.remote.consumer_secret.reveal() == SECRET
