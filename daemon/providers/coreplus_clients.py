"""Matching local client folders to coreplus clients (pure functions, no I/O).

A coreplus library's root holds one folder per client. The folder is matched by a ``(CLIENT-GUID)``
suffix first (unambiguous, survives renames of the client), else by the exact "First Last" name.
Anything else (no such client, several clients of that name) matches nothing: uploading a patient's
document to the wrong client is far worse than not uploading it, so there is no fuzzy matching.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from daemon.vocab import InvalidResponse

GUID_SUFFIX = re.compile(r"\(\s*([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\s*\)\s*$")


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    first_name: str
    last_name: str

    @property
    def full_name(self) -> str:
        return _norm(f"{self.first_name} {self.last_name}")


@dataclass(frozen=True, slots=True)
class FolderMatch:
    """The client a folder stands for, or None and why not (for the operator's log)."""

    client: Client | None
    reason: str = ""


def _norm(text: str) -> str:
    """NFC (local names are NFC, the API's may not be) with runs of whitespace folded to one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def parse_clients_page(data: Any) -> tuple[list[Client], int]:
    """One page of ``GET /API/Core/v2/Client/``: the clients and ``paging.totalRows``."""
    if not isinstance(data, dict):
        raise InvalidResponse("coreplus client list is not an object")
    raw = data.get("clients")
    paging = data.get("paging")
    if not isinstance(raw, list):
        raise InvalidResponse("coreplus client list: field 'clients' is not a list")
    if not isinstance(paging, dict):
        raise InvalidResponse("coreplus client list: field 'paging' is not an object")
    total = paging.get("totalRows")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise InvalidResponse("coreplus client list: field 'paging.totalRows' is not a count")
    clients: list[Client] = []
    for obj in raw:
        if not isinstance(obj, dict) or not isinstance(obj.get("clientId"), str) or not obj["clientId"]:
            raise InvalidResponse("coreplus client entry lacks a 'clientId' string")
        first, last = obj.get("firstName"), obj.get("lastName")
        clients.append(
            Client(
                client_id=obj["clientId"],
                first_name=first if isinstance(first, str) else "",
                last_name=last if isinstance(last, str) else "",
            )
        )
    return clients, total


def match_folder(name: str, clients: list[Client]) -> FolderMatch:
    """The client the local folder ``name`` stands for (see the module docstring)."""
    suffix = GUID_SUFFIX.search(name)
    if suffix is not None:
        wanted = suffix.group(1).lower()
        for client in clients:
            if client.client_id.lower() == wanted:
                return FolderMatch(client)
        return FolderMatch(None, f"no coreplus client has the id {suffix.group(1)}")
    wanted_name = _norm(name)
    same = [c for c in clients if c.full_name == wanted_name]
    if len(same) == 1:
        return FolderMatch(same[0])
    if not same:
        return FolderMatch(
            None,
            f'no coreplus client is called "{wanted_name}"; name the folder "First Last" or "Any name (CLIENT-ID)"',
        )
    return FolderMatch(
        None,
        f'{len(same)} coreplus clients are called "{wanted_name}"; add the client id to the folder name, '
        f'e.g. "{wanted_name} ({same[0].client_id})"',
    )
