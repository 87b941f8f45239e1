"""What a provider reports about the server: its capabilities and its raw listing entries.

Providers speak in remote ids and raw names. Turning names into safe local paths is the engine's job
(``daemon.local.names``), so that every remote name passes through one sanitiser.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's API allows. The planner and the contract suite read these."""

    has_digest: bool = False  # listings carry an MD5 of the content
    changed_since: bool = False  # list_changed() is cheaper than a full listing
    can_download: bool = True
    can_upload: bool = True
    can_update: bool = False  # replace content in place (else: upload new, then delete old)
    can_move: bool = False  # rename / move a file in one call
    can_delete: bool = False
    can_mkdir: bool = False
    can_rmdir: bool = False
    can_move_dir: bool = False  # rename / move a folder in one call
    delete_is_permanent: bool = False  # a remote delete cannot be undone on the server


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One raw listing entry.

    ``parent_id`` is the id of the containing folder; the library root's own id (``Provider.root_id``)
    for entries directly under the root. ``name`` is the server's name, unsanitised.
    ``version`` is the provider's version token; ``modified`` a server timestamp usable as a
    changed-since cursor (compared only with other timestamps of the same server).
    """

    remote_id: str
    parent_id: str | None
    name: str
    is_dir: bool = False
    size: int | None = None
    digest: str | None = None
    version: str = ""
    modified: str | None = None
