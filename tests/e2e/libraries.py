"""One library per provider that pulls (CoreData, Cliniko, TimeTap) for the end-to-end tests that run
against every provider: how its sandbox process starts, and how its content reads on the server and in
the mirror, so that one test states a behaviour once for all of them."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cliniko_api import ClinikoAPI
from tests.coredata_api import CoreDataAPI
from tests.e2e.conftest import Mirror, Sandbox, running_sandbox
from tests.timetap_api import TimeTapAPI

_PATIENT_ID = re.compile(r"\((\d+)\)$")
TIMETAP_TOKEN_USES = 2  # authenticated requests per TimeTap session token: expires in the middle of most runs


def coredata_files(sandbox: Sandbox[CoreDataAPI]) -> dict[str, bytes]:
    return {path: sandbox.api.content(obj["id"]) for path, obj in sandbox.api.tree().items()}


def timetap_files(sandbox: Sandbox[TimeTapAPI]) -> dict[str, bytes]:
    return {p: sandbox.api.content(o) for p, o in sandbox.api.tree().items() if not p.endswith("/")}


def local_by_patient(mirror: Mirror, *, strict: bool = True) -> dict[str, dict[str, bytes]]:
    """Local files by the patient id in their folder's name (``... (ID)``); ``strict=False`` leaves
    out files that are in no patient folder."""
    out: dict[str, dict[str, bytes]] = {}
    for path, data in mirror.files().items():
        folder, _, name = path.partition("/")
        match = _PATIENT_ID.search(folder)
        if not strict and (match is None or not name):
            continue
        assert match and name and "/" not in name, path
        out.setdefault(match.group(1), {})[name] = data
    return out


@dataclass(frozen=True, slots=True)
class Library:
    """``seeded`` files come with the sandbox (``seed``, ``options``); ``remote(sandbox)`` and
    ``local(mirror)`` read the library's content in one shape, to compare."""

    provider: str
    api: Callable[[dict[str, Any]], Any]
    seed: int
    options: tuple[str, ...]
    seeded: int
    remote: Callable[[Any], Any]
    local: Callable[[Mirror], Any]

    def start(self, tmp_path: Path, options: tuple[str, ...] | None = None) -> AbstractContextManager[Sandbox[Any]]:
        """Its sandbox process, with its ``options`` unless others are given."""
        args = [a for option in (self.options if options is None else options) for a in ("-o", option)]
        return running_sandbox(tmp_path / "sandbox-data", self.seed, self.api, *args, provider=self.provider)


LIBRARIES = {
    "coredata": Library("coredata", CoreDataAPI, 12, (), 12, coredata_files, Mirror.files),
    "cliniko": Library(
        "cliniko", ClinikoAPI, 8, ("processing_delay=0.3",), 8, lambda s: s.api.by_patient(), local_by_patient
    ),
    "timetap": Library(
        "timetap", TimeTapAPI, 12, (f"token_uses={TIMETAP_TOKEN_USES}",), 12, timetap_files, Mirror.files
    ),
}
