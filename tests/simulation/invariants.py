"""The end-of-run invariants of the simulation (issue 7 §2).

- convergence: the local tree equals the remote tree as the engine maps it (remote row path → the live
  entry's content; conflict copies included; every live remote entry mapped exactly once); push-only
  libraries: every local file is on the server under its path with its content;
- no lost version: every content the ledger requires is present locally, remotely, in the local trash or
  in the remote's own trash/archive;
- no duplicates: no two live remote entries with one parent and one name; no upload of content that was
  already live under that name (what a re-upload after a crash looks like);
- quiescence: one more pass plans nothing;
- temp files cleaned up.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy import select

from daemon.state import schema
from daemon.vocab import ActionKind
from tests.simulation.remotes import CorePlusRemote
from tests.simulation.world import local_dirs, local_files, local_trash, md5, nfc, tmp_leftovers

if TYPE_CHECKING:
    from tests.simulation.driver import Simulation


async def _remote_rows(sim: Simulation) -> list[tuple[str, str, bool]]:
    t = schema.remote
    async with sim.store.engine.connect() as conn:
        rows = await conn.execute(select(t.c.path, t.c.remote_id, t.c.is_dir).where(t.c.lib == sim.lib))
        return [(r.path, r.remote_id, bool(r.is_dir)) for r in rows]


def _diff(local: dict[str, bytes], remote: dict[str, bytes]) -> list[str]:
    out = []
    for path in sorted(set(local) | set(remote)):
        if path not in remote:
            out.append(f"only local: {path!r} (md5 {md5(local[path])[:8]})")
        elif path not in local:
            out.append(f"only remote: {path!r} (md5 {md5(remote[path])[:8]})")
        elif local[path] != remote[path]:
            out.append(f"differs: {path!r} local md5 {md5(local[path])[:8]} remote md5 {md5(remote[path])[:8]}")
    return out


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _syncable(sim: Simulation, local: dict[str, bytes]) -> dict[str, bytes]:
    """The local files the provider can hold: a name it refuses is reported and stays local only, as
    does a name that is not UTF-8 (and everything under it)."""
    return {p: c for p, c in local.items() if p not in sim.unsyncable and _utf8(p)}


def _kept_for_unsynced(sim: Simulation) -> set[str]:
    """Local names that are not UTF-8 and every folder above them. Such a name is never synced, so a
    folder holding one stays when the server deletes it: the engine keeps it and fails the removal
    loudly in every pass (FolderKept, naming the entry), by design, until someone moves it out."""
    kept: set[str] = set()
    for path in [*local_files(sim.root), *local_dirs(sim.root)]:
        if not _utf8(path):
            parts = path.split("/")
            kept.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    return kept


async def check(sim: Simulation) -> list[str]:
    problems: list[str] = list(sim.problems)
    adapter = sim.adapter
    local = local_files(sim.root)
    live = adapter.live()
    kept = _kept_for_unsynced(sim)

    # quiescence: one more pass (already settled) plans nothing and fails nothing
    summary = await sim._pass(crashy=False, full=True, confirm=sim.figures.gate_confirmations > 0)
    if summary is None:
        problems.append("quiescence: the last pass failed as a whole")
    else:
        work = [
            a
            for a in summary.planned
            if a.kind is not ActionKind.SKIP
            and a.path not in sim.unsyncable
            and not (a.kind is ActionKind.RMDIR_LOCAL and a.path in kept)
        ]
        if work:
            problems.append(
                "quiescence: one more pass still plans " + ", ".join(f"{a.kind.value} {a.path!r}" for a in work[:8])
            )
        failures = [(path, why) for path, why in summary.failures if not (path in kept and "FolderKept" in why)]
        if failures or summary.errors > len(summary.failures):
            problems.append(f"quiescence: the last pass had errors: {failures[:5] or summary.failures[:5]}")
        local = local_files(sim.root)
        live = adapter.live()

    # convergence
    if adapter.two_way:
        by_id = {e.id: e for e in live}
        rows = await _remote_rows(sim)
        view: dict[str, bytes] = {}
        view_dirs: set[str] = set()
        mapped: Counter[str] = Counter()
        for path, remote_id, is_dir in rows:
            entry = by_id.get(remote_id)
            if entry is None:
                problems.append(f"convergence: the store maps {path!r} to remote {remote_id}, which is not live")
                continue
            mapped[remote_id] += 1
            if is_dir:
                view_dirs.add(path)
            else:
                view[path] = entry.content or b""
        for e in live:
            if mapped[e.id] != 1:
                problems.append(f"convergence: live remote {e.name!r} ({e.id}) is mapped {mapped[e.id]} times")
        problems += [f"convergence: {d}" for d in _diff(_syncable(sim, local), view)]
        extra_dirs = (local_dirs(sim.root) ^ view_dirs) - sim.unsyncable - (kept - view_dirs)
        if extra_dirs:
            problems.append(f"convergence: folders on one side only: {sorted(extra_dirs)[:8]}")
    else:
        assert isinstance(adapter, CorePlusRemote)
        held = {(nfc(p), c) for p, c in adapter.all_paths()}
        # a remote folder cannot be removed on coreplus: a local file that took its name cannot go there
        folders = {nfc(p) for p, e in adapter.paths().items() if e.is_dir}
        # ... nor can a file it holds: a local folder that took a file's name is skipped and reported
        files = {nfc(p) for p, e in adapter.paths().items() if not e.is_dir}
        for path, data in sorted(_syncable(sim, local).items()):
            parts = path.split("/")
            under_file = any("/".join(parts[:n]) in files for n in range(1, len(parts)))
            if (path, data) not in held and path not in folders and not under_file:
                problems.append(f"convergence (push-only): {path!r} (md5 {md5(data)[:8]}) is not on the server")

    # no lost version
    present = {md5(c) for c in local.values()} | {md5(c) for c in local_trash(sim.root)}
    present |= {md5(e.content) for e in live if e.content is not None}
    present |= {md5(c) for c in adapter.retired()}
    for key, where in sim.ledger.missing(present).items():
        problems.append(f"lost version: md5 {key[:8]} (first seen {where}) is nowhere")
    sim.figures.versions_lost += len(sim.ledger.missing(present))

    # no duplicates
    dups = 0
    if adapter.two_way:
        # entries the engine maps to other local names than their own (a case clash gets " (~hash)", a
        # name the disk cannot hold is rewritten) are distinct local paths: a local file later made
        # under the server's name is another file, uploaded under it (nothing is copied twice)
        by_id = {e.id: e for e in live}
        renamed = {
            rid
            for path, rid, _ in await _remote_rows(sim)
            if rid in by_id and path.rpartition("/")[2] != nfc(by_id[rid].name)
        }
        names = Counter((e.parent, nfc(e.name)) for e in live if e.id not in renamed)
        for (parent, name), n in names.items():
            if n > 1:
                problems.append(f"duplicate: {n} live remote entries named {name!r} in {parent}")
                dups += n - 1
    else:
        items = Counter((p, c) for p, c in adapter.all_paths() if c)  # type: ignore[attr-defined]
        for (path, content), n in items.items():
            if n > 1:
                problems.append(
                    f"duplicate: {path!r} uploaded {n} times with the same content (md5 {md5(content)[:8]})"
                )
                dups += n - 1
    for line in sim.dup_uploads:
        problems.append(f"duplicate: {line}")
        dups += 1
    sim.figures.duplicates += dups

    # temp files
    left = tmp_leftovers(sim.root)
    if left:
        problems.append(f"temp files left in .libmirror/tmp: {left}")
    return problems
