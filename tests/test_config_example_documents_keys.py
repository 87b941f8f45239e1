"""config.example.toml documents every declared key: the general and library keys, and every provider's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from daemon.config import GENERAL_KEYS, LIBRARY_KEYS, PROVIDER_SETTINGS
from daemon.providers.settings import Key

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
# a key set in the example, written or commented out ("# name = ..."), the comment's own "#" stripped
_ASSIGNMENT = re.compile(r"^\s*(?:#\s*)?([a-z_]+)\s*=")
_PROVIDER = re.compile(r'^\s*(?:#\s*)?provider\s*=\s*"([a-z]+)"')


def _undocumented(keys: tuple[Key, ...], written: set[str]) -> list[str]:
    return [key.name for key in keys if not set(key.spellings) & written]


def _keys_by_provider() -> dict[str, set[str]]:
    """The keys written after each ``provider = "..."`` line, up to the next one."""
    blocks: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        provider = _PROVIDER.match(line)
        if provider:
            current = blocks.setdefault(provider.group(1), set())
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and current is not None:
            current.add(assignment.group(1))
    return blocks


def test_example_sets_every_general_and_library_key() -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert _undocumented(GENERAL_KEYS, set(doc)) == []
    assert _undocumented(LIBRARY_KEYS, set(doc["library"][0])) == []


def test_example_documents_every_remote_key_of_every_provider() -> None:
    blocks = _keys_by_provider()
    assert set(blocks) == set(PROVIDER_SETTINGS), "every provider has an example block"
    missing = {
        provider: _undocumented(spec.keys, blocks[provider])
        for provider, spec in PROVIDER_SETTINGS.items()
        if _undocumented(spec.keys, blocks[provider])
    }
    assert missing == {}


def test_the_uncommented_example_library_reads_into_its_provider_settings() -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    library = doc["library"][0]
    declared = {spelling for key in PROVIDER_SETTINGS[library["provider"]].keys for spelling in key.spellings}
    assert set(library["remote"]) <= declared
    assert all(key.help for spec in PROVIDER_SETTINGS.values() for key in spec.keys)
    assert all(key.help for key in GENERAL_KEYS + LIBRARY_KEYS)
