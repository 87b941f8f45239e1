"""The `libmirror` command's public surface: exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LIBMIRROR = str(Path(sys.executable).with_name("libmirror"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIBMIRROR, *args], capture_output=True, text=True, timeout=120, env=env)


def test_demo_once_mirrors_into_the_given_folder(tmp_path: Path) -> None:
    result = run("demo", "--once", "--dir", str(tmp_path / "demo"), "--seed", "8")
    assert result.returncode == 0, result.stderr
    files = [p for p in (tmp_path / "demo").rglob("*") if p.is_file() and ".libmirror" not in p.parts]
    assert len(files) == 8
    assert "pulled" in result.stdout


def test_check_config_names_file_key_and_fix(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        'state_dir = "state"\n[[library]]\nname = "x"\nprovider = "coredata"\nlocal_path = "m"\n'
        'direction = "sideways"\nmax_delet_count = 3\n[library.remote]\nbase_url = "https://t.coredata.is"\n'
        'root = "r"\napi_user = "u"\napi_key_env = "NOPE_NOT_SET"\n'
    )
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    err = result.stderr
    assert str(config) in err
    assert "direction" in err and "max_delet_count" in err and "max_delete_count" in err  # did you mean
    assert "NOPE_NOT_SET" in err


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    env = {"COREDATA_KEY": "k" * 20, "PATH": "/usr/bin:/bin"}
    result = run("check-config", "--config", str(example), env=env)
    assert result.returncode == 0, result.stderr


def test_sync_with_missing_config_exits_2(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "none.toml"), "sync", "--once")
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_sync_unknown_library_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/s"\n[[library]]\nname = "x"\nprovider = "coredata"\nlocal_path = "{tmp_path}/m"\n'
        '[library.remote]\nbase_url = "http://127.0.0.1:9"\nroot = "r"\napi_user = "u"\napi_key = "kkkkkkkk"\n'
    )
    config.chmod(0o600)
    result = run("--config", str(config), "sync", "--once", "--library", "nope")
    assert result.returncode == 2
    assert "no library named nope" in result.stderr


def test_stdout_stays_json_when_the_config_warns_while_loading(tmp_path: Path) -> None:
    """A readable config with an inline key warns, and that warning is a JSON line like every other."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/s"\n[[library]]\nname = "x"\nprovider = "coredata"\nlocal_path = "{tmp_path}/m"\n'
        '[library.remote]\nbase_url = "http://127.0.0.1:9"\nroot = "r"\napi_user = "u"\napi_key = "kkkkkkkk"\n'
    )
    config.chmod(0o644)
    result = run("--config", str(config), "--log-format", "json", "status", "--json")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("<")]
    events = [json.loads(line[line.index(">") + 1 :])["event"] for line in lines]
    assert "config_secret_world_readable" in events
    assert "kkkkkkkk" not in result.stdout + result.stderr
