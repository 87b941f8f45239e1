"""Cliniko specifics against its sandbox: patients as folders, processing, archive feed, pacing, 429s."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from daemon.providers.cliniko import ROOT_ID, ClinikoProvider
from daemon.providers.cliniko_objects import (
    PatientRecord,
    bare_key,
    filter_timestamp,
    folder_name,
    folder_pattern,
    normalise_timestamp,
    pacing_limiter,
    patient_id_of_folder,
    reset_wait,
)
from daemon.providers.http import HttpClient
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from daemon.vocab import InvalidResponse, RemoteItem, Unsupported
from tests.providers.conftest import fault_hooks
from tests.upload_sources import write_source

pytestmark = pytest.mark.anyio


def build(sandbox: RunningSandbox, **kwargs: Any) -> ClinikoProvider:
    remote = sandbox.remote
    return ClinikoProvider(remote["base_url"], remote["api_key"], remote["user_agent"], **kwargs)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    async with await start_sandbox("cliniko", tmp_path / "sb", seed=8, processing_delay=0) as running:
        yield running


async def files_of(provider: ClinikoProvider) -> dict[str, RemoteItem]:
    return {i.remote_id: i async for page in provider.list_files() for i in page}


async def upload(provider: ClinikoProvider, tmp_path: Path, parent: str, name: str, data: bytes) -> RemoteItem:
    source = write_source(tmp_path / f"up-{hashlib.md5(name.encode()).hexdigest()}", data)
    return await provider.upload(parent, name, source)


# ---- pure helpers ---------------------------------------------------------------------------------


async def test_timestamps_sort_as_strings_whatever_the_precision() -> None:
    assert normalise_timestamp("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000000Z"
    assert normalise_timestamp("2024-05-01T10:00:00.5+00:00") == "2024-05-01T10:00:00.500000Z"
    assert normalise_timestamp("2024-05-01T12:00:00+02:00") == "2024-05-01T10:00:00.000000Z"
    assert filter_timestamp("2024-05-01T10:00:00.000000Z", 120) == "2024-05-01T09:58:00Z"
    assert filter_timestamp("2024-05-01T10:00:00.250000Z", 0) == "2024-05-01T10:00:00.250000Z"
    with pytest.raises(InvalidResponse):
        normalise_timestamp("yesterday")


async def test_folder_names_and_their_ids() -> None:
    patient = PatientRecord("1234", "Ana/Maria", "O'Brien", "", "Dr", archived=False)
    default = "{last_name}, {first_name} ({id})"
    assert folder_name(patient, default) == "O'Brien, Ana/Maria (1234)"
    assert folder_name(patient, "{id:06} {title} {last_name}") == "001234 Dr O'Brien"
    assert folder_name(patient, "{first_name:d} ({id})") == "O'Brien, Ana/Maria (1234)"  # unrenderable → default
    pattern = folder_pattern(default)
    assert patient_id_of_folder("O'Brien, Ana_Maria (1234)", pattern) == "1234"
    assert patient_id_of_folder("renamed by hand (1234)", pattern) == "1234"
    assert patient_id_of_folder("Smith, Jane", pattern) is None
    assert patient_id_of_folder("0042 - Smith", folder_pattern("{id} - {last_name}")) == "0042"


async def test_pacing_keeps_any_window_under_the_limit() -> None:
    for limit, window in ((200, 60.0), (8, 2.0), (1, 5.0), (10, 1.0)):
        limiter = pacing_limiter(f"key-{limit}-{window}-au1", limit, window)
        most = limiter.rate + window * limiter.rate / limiter.per  # the burst + one window of refill
        assert math.floor(most + 1e-9) <= limit, (limit, window, most)
    assert pacing_limiter("abc-au2", 200, 60) is pacing_limiter("abc", 200, 60)  # one budget per account
    assert bare_key("abc-au2") == "abc"
    assert reset_wait({"X-RateLimit-Reset": "1010"}, 1000.0) == 10.0
    assert reset_wait({"X-RateLimit-Reset": "990"}, 1000.0) == 0.5
    assert reset_wait({}, 1000.0) is None


@pytest.mark.parametrize(
    "link",
    [
        "https://api.cliniko.com/v1/patient_attachments?page=2&per_page=100",  # the vendor docs' own example
        "https://api.au1.cliniko.com/v1/patient_attachments?page=2",
        "https://api.uk2.cliniko.com/v1/patient_attachments?page=2",
        "https://API.Cliniko.com/v1/patient_attachments?page=2",
    ],
)
async def test_paging_links_on_cliniko_hosts_are_followed(link: str, http: HttpClient) -> None:
    provider = ClinikoProvider("https://api.au1.cliniko.com/v1", "key-au1", "t (t@example.com)", http=http)
    assert str(provider._check_link(link)) == link


@pytest.mark.parametrize(
    ("base", "link"),
    [
        ("https://api.au1.cliniko.com/v1", "https://evil.example/v1/patient_attachments?page=2"),
        ("https://api.au1.cliniko.com/v1", "https://cliniko.com.evil.example/v1/patient_attachments?page=2"),
        ("https://api.au1.cliniko.com/v1", "https://evilcliniko.com/v1/patient_attachments?page=2"),
        ("https://api.au1.cliniko.com/v1", "http://api.cliniko.com/v1/patient_attachments?page=2"),  # scheme
        ("https://api.au1.cliniko.com/v1", "https://api.cliniko.com:8443/v1/patient_attachments?page=2"),
        ("https://api.au1.cliniko.com/v1", "https://api.cliniko.com/v2/patient_attachments?page=2"),  # path
        ("https://api.au1.cliniko.com/v1", "https://me:pw@api.cliniko.com/v1/patient_attachments?page=2"),
        ("https://api.au1.cliniko.com/v1", "/v1/patient_attachments?page=2"),  # not absolute
        ("http://127.0.0.1:8080/v1", "https://api.cliniko.com/v1/patient_attachments?page=2"),  # base not Cliniko
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8081/v1/patient_attachments?page=2"),  # another port
    ],
)
async def test_paging_links_elsewhere_are_refused(base: str, link: str, http: HttpClient) -> None:
    provider = ClinikoProvider(base, "key-au1", "t (t@example.com)", http=http)
    with pytest.raises(InvalidResponse, match="leaves the API"):
        provider._check_link(link)


# ---- against the sandbox ----------------------------------------------------------------------


async def test_folders_are_patients_with_attachments(sandbox: RunningSandbox, http: HttpClient) -> None:
    backend = sandbox.backend
    provider = build(sandbox, http=http)
    try:
        folders = {f.remote_id: f for f in await provider.list_folders()}
        owners = {str(a.patient_id) for a in backend.active_attachments()}
        assert set(folders) == owners and len(owners) == 4  # the fifth patient has no attachment
        assert all(f.parent_id == ROOT_ID and f.is_dir for f in folders.values())
        muller = next(p for p in backend.patients.values() if p.last_name == "Müller")
        assert folders[str(muller.id)].name == f"Müller, Jürgen ({muller.id})"
        backend.requests.clear()
        files = await files_of(provider)  # reuses the walk list_folders just made
        assert backend.requests == []
        assert {i.remote_id for i in files.values()} == {str(a.id) for a in backend.active_attachments()}
        backend.rename_patient(muller.id, "Jürgen", "Mueller")
        renamed = {f.remote_id: f.name for f in await provider.list_folders()}
        assert renamed[str(muller.id)] == f"Mueller, Jürgen ({muller.id})"
    finally:
        await provider.aclose()


async def test_configured_patients_limit_the_library(sandbox: RunningSandbox, tmp_path: Path, http: HttpClient) -> None:
    backend = sandbox.backend
    chosen, other = sorted(backend.patients)[:2]
    provider = build(sandbox, patients=(str(chosen), "999999"), http=http)
    try:
        assert [f.remote_id for f in await provider.list_folders()] == [str(chosen)]
        files = await files_of(provider)
        assert files and {i.parent_id for i in files.values()} == {str(chosen)}
        assert await provider.get_folder(str(other)) is None
        assert await provider.resolve_local_folder(ROOT_ID, f"Someone ({other})") is None
        with pytest.raises(Unsupported):
            await upload(provider, tmp_path, str(other), "x.txt", b"x")
        with pytest.raises(Unsupported, match="patient folder"):
            await upload(provider, tmp_path, ROOT_ID, "x.txt", b"x")
    finally:
        await provider.aclose()


async def test_local_folders_resolve_to_patients_by_id(sandbox: RunningSandbox, http: HttpClient) -> None:
    lonely = next(p for p in sandbox.backend.patients.values() if p.last_name == "Nobody")
    provider = build(sandbox, http=http)
    try:
        folder = await provider.resolve_local_folder(ROOT_ID, f"whatever I typed ({lonely.id})")
        assert folder is not None and folder.remote_id == str(lonely.id)
        assert folder.name == f"Nobody, Empty ({lonely.id})"
        assert await provider.resolve_local_folder(ROOT_ID, "Nobody, Empty") is None
        assert await provider.resolve_local_folder(ROOT_ID, "ghost (424242)") is None
        assert await provider.resolve_local_folder(folder.remote_id, f"nested ({lonely.id})") is None
        sandbox.backend.archive_patient(lonely.id)
        assert await provider.resolve_local_folder(ROOT_ID, f"x ({lonely.id})") is None
    finally:
        await provider.aclose()


async def test_upload_waits_for_processing(tmp_path: Path, http: HttpClient) -> None:
    sandbox = await start_sandbox("cliniko", tmp_path / "slow", seed=1, processing_delay=0.4)
    provider = build(sandbox, http=http)
    try:
        patient = str(next(iter(sandbox.backend.patients)))
        item = await upload(provider, tmp_path, patient, "Überweisung.pdf", b"letter")
        stored = sandbox.backend.get_attachment(item.remote_id)
        assert stored.processing_completed and stored.filename == "Überweisung.pdf"
        assert (item.name, item.size, item.parent_id) == ("Überweisung.pdf", 6, patient)
        listed = (await files_of(provider))[item.remote_id]
        assert (listed.version, listed.modified) == (item.version, item.modified)
    finally:
        await provider.aclose()
        await sandbox.stop()


async def test_slow_processing_keeps_our_upload_listed(tmp_path: Path, http: HttpClient) -> None:
    sandbox = await start_sandbox("cliniko", tmp_path / "slower", seed=1, processing_delay=0.6)
    provider = build(sandbox, http=http, processing_wait=0.1, overlap_seconds=0)
    other = build(sandbox, http=http, overlap_seconds=0)
    try:
        patient = str(next(iter(sandbox.backend.patients)))
        cursor = max(i.modified or "" for i in (await files_of(provider)).values())
        item = await upload(provider, tmp_path, patient, "late.txt", b"late")
        assert not sandbox.backend.get_attachment(item.remote_id).processing_completed
        assert (await files_of(provider))[item.remote_id].version == item.version  # not taken for deleted
        assert item.remote_id not in await files_of(other)  # someone else's unfinished upload: skipped
        changed = [i async for page in other.list_changed(cursor) for i in page]
        assert changed == []
        await anyio.sleep(0.6)
        changed = [i async for page in other.list_changed(cursor) for i in page]
        assert [(i.remote_id, i.name, i.version) for i in changed] == [(item.remote_id, "late.txt", item.version)]
    finally:
        await provider.aclose()
        await other.aclose()
        await sandbox.stop()


async def test_changed_feed_reports_archives_as_leaving(
    sandbox: RunningSandbox, tmp_path: Path, http: HttpClient
) -> None:
    provider = build(sandbox, http=http, overlap_seconds=0)
    try:
        files = await files_of(provider)
        cursor = max(i.modified or "" for i in files.values())
        victim = sorted(files)[0]
        await provider.delete(files[victim])
        assert sandbox.backend.get_attachment(victim).archived_at is not None
        sandbox.backend.requests.clear()
        changed = [i async for page in provider.list_changed(cursor) for i in page]
        assert [(i.remote_id, i.parent_id) for i in changed] == [(victim, None)]
        assert len(sandbox.backend.requests) == 1
        assert "q[]=archived_at:*" in sandbox.backend.requests[0].query
        assert victim not in await files_of(provider)
    finally:
        await provider.aclose()


async def test_paging_link_to_another_host_is_refused(sandbox: RunningSandbox, http: HttpClient) -> None:
    async def hijack(request: web.Request) -> web.StreamResponse | None:
        if request.path == "/v1/patient_attachments":
            body = {
                "patient_attachments": [],
                "total_entries": 3,
                "links": {"next": "https://evil.example/v1/x?page=2"},
            }
            return web.json_response(body)
        return None

    fault_hooks(sandbox).append(hijack)
    provider = build(sandbox, http=http)
    try:
        with pytest.raises(InvalidResponse, match="leaves the API"):
            await files_of(provider)
    finally:
        await provider.aclose()


async def _busiest_window(sandbox: RunningSandbox, window: float) -> int:
    times = sorted(hit.time for hit in sandbox.backend.api_log)
    busiest, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


async def test_pacing_never_exceeds_the_limit(tmp_path: Path) -> None:
    """Count every request the sandbox saw: no rolling window holds more than the limit, and no 429."""
    limit, window = 8, 2.0
    sandbox = await start_sandbox(
        "cliniko", tmp_path / "paced", seed=12, processing_delay=0, rate_limit=limit, rate_window=window
    )
    provider = build(sandbox, rate_limit=limit, rate_window=window, per_page=2)  # its own paced client
    try:
        folders = await provider.list_folders()
        files = await files_of(provider)
        for item in list(files.values())[:6]:
            chunks: list[bytes] = []

            async def sink(chunk: bytes, chunks: list[bytes] = chunks) -> None:
                chunks.append(chunk)

            await provider.download(item, sink)
            assert b"".join(chunks) == sandbox.backend.read_content(int(item.remote_id))
        for folder in folders:
            assert await provider.get_folder(folder.remote_id) is not None
        hits = sandbox.backend.api_log
        assert len(hits) > 2 * limit  # enough traffic for the pacing to matter
        assert [h for h in hits if h.status == 429] == []
        assert await _busiest_window(sandbox, window) <= limit
    finally:
        await provider.aclose()
        await sandbox.stop()


async def test_429_storm_slows_down_without_failing(tmp_path: Path) -> None:
    """A budget shared with someone else: the server refuses, we wait for X-RateLimit-Reset and finish."""
    sandbox = await start_sandbox(
        "cliniko", tmp_path / "storm", seed=10, processing_delay=0, rate_limit=3, rate_window=1
    )
    provider = build(sandbox, per_page=2)  # believes it has 200/min
    try:
        files = await files_of(provider)
        assert set(files) == {str(a.id) for a in sandbox.backend.active_attachments()}
        statuses = [h.status for h in sandbox.backend.api_log]
        assert 429 in statuses and statuses[-1] == 200
    finally:
        await provider.aclose()
        await sandbox.stop()
