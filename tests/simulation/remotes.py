"""One adapter per provider: what the simulation may do to the remote side, and how it reads it back.

The driver mutates the remote side through the sandbox backend's own helpers (in-process, as "another
user of the web app" would), and reads the raw server state back for the invariants: every live entry
(id, parent, raw name, content) and every content the server still keeps out of sight (CoreData's trash
folder, Cliniko's archived attachments, TimeTap's soft-deleted objects).

Capabilities decide what the remote mutator can do: coreplus has no remote side to mutate (push-only),
Cliniko attachments are immutable and live in patient folders (no rename, no edit in place: a new
version is archive + re-add), TimeTap has folders and permanent deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.providers.base import Provider
from daemon.providers.cliniko import ClinikoProvider
from daemon.providers.coredata import CoreDataProvider
from daemon.providers.coreplus import CorePlusProvider
from daemon.providers.http import HttpClient
from daemon.providers.timetap import TimeTapProvider
from daemon.sandbox.runner import RunningSandbox

ROOT = "<root>"


@dataclass(frozen=True, slots=True)
class Entry:
    """One live remote entry as the server holds it (raw name, not sanitised)."""

    id: str
    parent: str  # ROOT for the library root
    name: str
    is_dir: bool
    content: bytes | None = None


class SimRemote:
    """Base adapter. Subclasses fill in the provider-specific parts."""

    name = ""
    two_way = True  # False: push-only (no remote mutations, one-way assertions)
    sandbox_options: dict[str, Any] = {}  # noqa: RUF012 - read-only class default
    fixed_top: bool = False  # top-level folders are given (patients, clients): no local mkdir/rmdir there
    subdirs: bool = True  # local folders below the top level are allowed
    root_files: bool = True  # files directly in the root are allowed
    remote_rename = True
    remote_edit = True
    remote_mkdir = True
    remote_trash = True  # a remote delete keeps the content on the server (trash/archive)
    upload_calls = ("upload",)

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.sandbox = sandbox
        self.backend: Any = sandbox.backend
        self.top_names: list[str] = []

    def setup(self) -> None:
        """Create what the library needs before the first pass (patients, clients)."""

    def build(self, http: HttpClient) -> Provider:
        raise NotImplementedError

    def live(self) -> list[Entry]:
        raise NotImplementedError

    def retired(self) -> list[bytes]:
        """Contents the server keeps out of the library (trash, archive)."""
        return []

    # -- mutations (ids are those of ``live()``; ``parent`` ROOT = the library root) -----------------
    def create(self, parent: str, name: str, data: bytes) -> None:
        raise NotImplementedError

    def edit(self, entry: Entry, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, entry: Entry) -> None:
        raise NotImplementedError

    def rename(self, entry: Entry, parent: str, name: str) -> None:
        raise NotImplementedError

    def mkdir(self, parent: str, name: str) -> None:
        raise NotImplementedError

    def rmdir(self, entry: Entry) -> None:
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------------------------
    def paths(self) -> dict[str, Entry]:
        """Raw path → entry for every live entry (first one wins on duplicate raw paths)."""
        entries = self.live()
        by_id = {e.id: e for e in entries}
        out: dict[str, Entry] = {}
        for e in entries:
            parts = [e.name]
            parent = e.parent
            while parent != ROOT and parent in by_id:
                parts.append(by_id[parent].name)
                parent = by_id[parent].parent
            if parent != ROOT:
                continue  # under something that is not live: not in the library
            out.setdefault("/".join(reversed(parts)), e)
        return out


class CoreDataRemote(SimRemote):
    name = "coredata"

    def build(self, http: HttpClient) -> Provider:
        r = self.sandbox.remote
        return CoreDataProvider(
            r["base_url"], r["root"], r["api_user"], r["api_key"], http=http, page_size=4, overlap_seconds=0
        )

    def _parent(self, parent: str) -> str:
        return str(self.backend.root_id) if parent == ROOT else parent

    def live(self) -> list[Entry]:
        b = self.backend
        root, trash = b.root_id, b.trash_id
        out: list[Entry] = []
        for node in b.folders():
            if node.kind == "folder":
                out.append(Entry(node.id, ROOT if node.parent == root else node.parent, node.title, True))
        for node in b.files():
            if node.parent != trash:
                parent = ROOT if node.parent == root else node.parent
                out.append(Entry(node.id, parent, node.filename, False, b.read_content(node.id)))
        return out

    def retired(self) -> list[bytes]:
        b = self.backend
        return [b.read_content(n.id) for n in b.files() if n.parent == b.trash_id]

    def create(self, parent: str, name: str, data: bytes) -> None:
        self.backend.add_file(self._parent(parent), name, data, title=name)

    def edit(self, entry: Entry, data: bytes) -> None:
        self.backend.set_content(entry.id, data)

    def delete(self, entry: Entry) -> None:
        self.backend.delete_file(entry.id)

    def rename(self, entry: Entry, parent: str, name: str) -> None:
        if entry.is_dir:
            self.backend.update_folder(entry.id, name, self._parent(parent))
        else:
            self.backend.update_file(entry.id, name, name, self._parent(parent))

    def mkdir(self, parent: str, name: str) -> None:
        self.backend.add_folder(self._parent(parent), name)

    def rmdir(self, entry: Entry) -> None:
        self.backend.delete_folder(entry.id)


class TimeTapRemote(SimRemote):
    name = "timetap"
    remote_trash = False  # DELETE is permanent (soft deletes from TimeTap's own UI keep the blob)

    def build(self, http: HttpClient) -> Provider:
        r = self.sandbox.remote
        return TimeTapProvider(
            r["base_url"],
            r["api_key"],
            r["private_key"],
            business_id=int(r["business_id"]),
            user_name=r["user_name"],
            http=http,
        )

    def live(self) -> list[Entry]:
        b = self.backend
        out: list[Entry] = []
        for obj in list(b.objects.values()):
            if obj.deleted:
                continue
            parent = obj.parentFileLibraryUUID or ROOT
            if obj.is_folder:
                out.append(Entry(obj.id, parent, obj.fileName, True))
            else:
                out.append(Entry(obj.id, parent, obj.fileName, False, b.read_content(obj.id)))
        return out

    def retired(self) -> list[bytes]:
        b = self.backend
        return [b.read_content(o.id) for o in list(b.objects.values()) if o.deleted and not o.is_folder]

    def create(self, parent: str, name: str, data: bytes) -> None:
        self.backend.add_file(None if parent == ROOT else parent, name, data)

    def edit(self, entry: Entry, data: bytes) -> None:
        self.backend.set_content(entry.id, data)

    def delete(self, entry: Entry) -> None:
        self.backend.delete(entry.id)

    def soft_delete(self, entry: Entry) -> None:
        self.backend.soft_delete(entry.id)

    def rename(self, entry: Entry, parent: str, name: str) -> None:
        self.backend.rename(entry.id, name, None if parent == ROOT else parent, keep_parent=False)

    def mkdir(self, parent: str, name: str) -> None:
        self.backend.add_folder(None if parent == ROOT else parent, name)

    def rmdir(self, entry: Entry) -> None:
        self.backend.delete(entry.id)


PATIENTS = (("Ada", "Lovelace"), ("Émile", "Zola"), ("Grace", "Hopper"))


class ClinikoRemote(SimRemote):
    name = "cliniko"
    sandbox_options = {"processing_delay": 0, "rate_limit": 1_000_000}  # noqa: RUF012
    fixed_top = True
    subdirs = False
    root_files = False
    remote_rename = False
    remote_edit = False  # immutable: a "new version" is archive + re-add under the same name
    remote_mkdir = False

    def setup(self) -> None:
        self.patient_ids: list[int] = []
        for first, last in PATIENTS:
            p = self.backend.add_patient(first, last)
            self.patient_ids.append(p.id)
            self.top_names.append(f"{last}, {first} ({p.id})")

    def build(self, http: HttpClient) -> Provider:
        r = self.sandbox.remote
        return ClinikoProvider(
            r["base_url"],
            r["api_key"],
            r["user_agent"],
            patients=tuple(str(i) for i in self.patient_ids),
            rate_limit=1_000_000,
            http=http,
            per_page=4,
            overlap_seconds=0,
            processing_wait=0.0,  # do not sleep-poll: exercises the "still processing" path instead
        )

    def live(self) -> list[Entry]:
        b = self.backend
        b.tick()
        out = [Entry(str(pid), ROOT, name, True) for pid, name in zip(self.patient_ids, self.top_names, strict=True)]
        for a in b.active_attachments():
            if a.patient_id in self.patient_ids and a.processing_completed:
                out.append(Entry(str(a.id), str(a.patient_id), a.filename or "", False, b.read_content(a.id)))
        return out

    def retired(self) -> list[bytes]:
        b = self.backend
        return [b.read_content(a.id) for a in list(b.attachments.values()) if a.archived_at is not None]

    def create(self, parent: str, name: str, data: bytes) -> None:
        self.backend.add_attachment(int(parent), name, data)

    def edit(self, entry: Entry, data: bytes) -> None:
        self.backend.archive(entry.id)
        self.backend.add_attachment(int(entry.parent), entry.name, data)

    def delete(self, entry: Entry) -> None:
        self.backend.archive(entry.id)


CLIENTS = (("Marie", "Curie"), ("Alan", "Turing"))


class CorePlusRemote(SimRemote):
    name = "coreplus"
    two_way = False
    sandbox_options = {"rate_limit": 1_000_000}  # noqa: RUF012
    fixed_top = True
    root_files = False

    def setup(self) -> None:
        self.client_ids: list[str] = []
        for first, last in CLIENTS:
            c = self.backend.add_client(first, last)
            self.client_ids.append(c.id)
            self.top_names.append(f"{first} {last}")

    def build(self, http: HttpClient) -> Provider:
        r = self.sandbox.remote
        return CorePlusProvider(
            r["base_url"],
            r["consumer_id"],
            r["consumer_secret"],
            r["access_token"],
            issuer=r["issuer"],
            audience=r["audience"],
            http=http,
            page_size=50,
        )

    def live(self) -> list[Entry]:
        b = self.backend
        out = [Entry(cid, ROOT, name, True) for cid, name in zip(self.client_ids, self.top_names, strict=True)]
        for cid in self.client_ids:
            for item in b.items_of(cid):
                parent = item.parent or cid
                out.append(
                    Entry(item.id, parent, item.name, item.is_folder, None if item.is_folder else b.content(item))
                )
        return out

    def all_paths(self) -> list[tuple[str, bytes]]:
        """Every uploaded file (old versions included: coreplus keeps them all) by raw path."""
        entries = self.live()
        by_id = {e.id: e for e in entries}
        out: list[tuple[str, bytes]] = []
        for e in entries:
            if e.is_dir or e.content is None:
                continue
            parts, parent = [e.name], e.parent
            while parent != ROOT:
                parts.append(by_id[parent].name)
                parent = by_id[parent].parent
            out.append(("/".join(reversed(parts)), e.content))
        return out


ADAPTERS: dict[str, type[SimRemote]] = {
    "coredata": CoreDataRemote,
    "timetap": TimeTapRemote,
    "cliniko": ClinikoRemote,
    "coreplus": CorePlusRemote,
}
