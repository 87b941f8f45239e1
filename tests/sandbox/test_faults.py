"""Seeded fault injection (daemon/sandbox/faults.py): each kind does what it says, over real loopback
HTTP, the draws repeat with the seed, inspection routes are never hit, and state stays consistent."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.sandbox.faults import KINDS, TRANSIENT_KINDS, FaultInjector, FaultPlan, _drift_count, parse_rate
from daemon.sandbox.runner import RunningSandbox, start_sandbox
from tests.e2e.conftest import LIBMIRROR

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox(tmp_path: Path, anyio_backend: str) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox("coredata", tmp_path / "sbx", seed=6, page_limit_max=50)
    try:
        yield running
    finally:
        await running.stop()


def auth(sb: RunningSandbox) -> dict[str, str]:
    return {"Authorization": f"apikey {sb.remote['api_user']}:{sb.remote['api_key']}"}


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.base_url, headers=auth(sandbox)) as session:
        yield session


async def raw_exchange(sb: RunningSandbox, path: str, *, method: str = "GET", body: bytes = b"") -> tuple[bytes, str]:
    """Send one request on a fresh socket; return every byte received and how the stream ended
    ("eof" for an orderly close, "reset" for a TCP reset)."""
    host, port = sb.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth(sb)['Authorization']}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    await writer.drain()
    got = bytearray()
    ending = "eof"
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=10):
            got += chunk
    except ConnectionResetError:
        ending = "reset"
    finally:
        writer.close()
    return bytes(got), ending


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def only(kind: str, **options: Any) -> FaultPlan:
    return FaultPlan(rates={kind: 1.0}, **options)


# ---- the plan --------------------------------------------------------------------------------


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(rates={"404": 0.1})
    with pytest.raises(ValueError, match="add up to"):
        FaultPlan(rates={"500": 0.7, "503": 0.7})
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan(rates={"500": -0.1})
    assert parse_rate("503=0.05") == ("503", 0.05)
    mix = FaultPlan.mix(0.1, seed=7)
    assert abs(sum(mix.rates.values()) - 0.1) < 1e-9 and "slow" not in mix.rates


def test_count_drift_knows_tastypie_and_cliniko() -> None:
    tastypie: dict[str, Any] = {"meta": {"total_count": 4}, "objects": []}
    cliniko = {"patients": [], "total_entries": 9}
    assert _drift_count(tastypie) and tastypie["meta"]["total_count"] == 5
    assert _drift_count(cliniko) and cliniko["total_entries"] == 10
    assert not _drift_count([1, 2])


# ---- status faults answer before the handler ---------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503"])
async def test_server_errors_answer_before_the_handler(
    sandbox: RunningSandbox, http: aiohttp.ClientSession, kind: str
) -> None:
    sandbox.faults.plan = only(kind, methods=frozenset({"POST"}))
    folders = len(list(sandbox.backend.folders()))
    async with http.post("/api/v2/folders/", json={"title": "x", "parent": sandbox.remote["root"]}) as resp:
        assert resp.status == int(kind)
        if kind == "502":
            assert resp.content_type == "text/html"
        else:
            assert "error_message" in await resp.json()
    assert len(list(sandbox.backend.folders())) == folders  # the handler never ran
    async with http.get("/api/v2/folders/") as resp:
        assert resp.status == 200  # GET was not selected
    assert sandbox.faults.counts == {kind: 1}


@pytest.mark.parametrize(
    ("provider", "header"),
    [
        ("coredata", "Retry-After"),
        ("cliniko", "X-RateLimit-Reset"),
        ("timetap", "Retry-After"),
        ("coreplus", "Retry-After"),
    ],
)
async def test_429_carries_the_providers_own_headers(
    tmp_path: Path, anyio_backend: str, provider: str, header: str
) -> None:
    plan = only("429", retry_after=2)
    async with await start_sandbox(provider, tmp_path / provider, faults=plan) as sb:
        path = {"coredata": "/api/v2/files/", "cliniko": "/v1/patients", "timetap": "/live/files"}.get(
            provider, "/api/core/v2/client"
        )
        async with aiohttp.ClientSession() as s, s.get(sb.base_url + path) as resp:
            assert resp.status == 429
            value = resp.headers[header]
            body = await resp.json()
        if header == "Retry-After":
            assert value == "2"
        else:
            assert 0 < int(value) - time.time() <= 3  # the UNIX second the window resets
        assert body  # the provider's own error shape
        assert sb.faults.counts["429"] == 1


# ---- connection faults --------------------------------------------------------------------------


async def test_reset_before_sends_nothing(sandbox: RunningSandbox) -> None:
    sandbox.faults.plan = only("reset_before")
    raw, ending = await raw_exchange(sandbox, "/api/v2/files/")
    assert raw == b"" and ending == "reset"
    assert sandbox.faults.counts == {"reset_before": 1}


async def test_reset_mid_body_sends_headers_and_half_then_resets(sandbox: RunningSandbox) -> None:
    sandbox.faults.plan = only("reset_mid_body")
    raw, ending = await raw_exchange(sandbox, "/api/v2/files/")
    status, headers, body = split_response(raw)
    assert status == 200 and ending == "reset"
    assert 0 < len(body) < int(headers["content-length"])


async def test_reset_after_a_completed_post_leaves_the_object(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.faults.plan = only("reset_mid_body", match="^/api/v2/folders/$", methods=frozenset({"POST"}))
    before = {f.title for f in sandbox.backend.folders()}
    with pytest.raises(aiohttp.ClientError):
        async with http.post("/api/v2/folders/", json={"title": "made-anyway", "parent": sandbox.remote["root"]}) as r:
            await r.read()
    # the 201 has no body: half of its headers went out, then the reset; the create is complete
    assert {f.title for f in sandbox.backend.folders()} - before == {"made-anyway"}


async def test_reset_after_a_completed_json_post_with_a_body(sandbox: RunningSandbox) -> None:
    """presigned-upload-url answers a JSON body: the reservation exists though the answer broke."""
    sandbox.faults.plan = only("reset_mid_body", methods=frozenset({"POST"}))
    reserved = len(sandbox.backend.upload_blobs)
    raw, ending = await raw_exchange(
        sandbox,
        "/api/v3/blob/presigned-upload-url/?content_type=text/plain&content_length=3",
        method="POST",
        body=b"{}",
    )
    assert ending == "reset" and split_response(raw)[0] == 200
    assert len(sandbox.backend.upload_blobs) == reserved + 1
    assert sandbox.faults.counts == {"reset_mid_body": 1}


async def test_truncated_body_promises_more_than_it_sends(sandbox: RunningSandbox) -> None:
    sandbox.faults.plan = only("truncated_body")
    raw, ending = await raw_exchange(sandbox, "/api/v2/files/")
    status, headers, body = split_response(raw)
    assert status == 200 and ending == "eof"
    assert len(body) < int(headers["content-length"])
    async with aiohttp.ClientSession(headers=auth(sandbox)) as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.get(sandbox.base_url + "/api/v2/files/") as resp:
                await resp.read()


async def test_slow_stalls_past_the_read_timeout_then_answers(sandbox: RunningSandbox) -> None:
    sandbox.faults.plan = only("slow", slow_seconds=0.6, limit=1)
    impatient = aiohttp.ClientTimeout(sock_read=0.2)
    async with aiohttp.ClientSession(headers=auth(sandbox), timeout=impatient) as s:
        with pytest.raises(TimeoutError):
            async with s.get(sandbox.base_url + "/api/v2/files/") as resp:
                await resp.read()
    sandbox.faults.plan = only("slow", slow_seconds=0.3)
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=auth(sandbox)) as s, s.get(sandbox.base_url + "/api/v2/files/") as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 0.3


async def test_stopping_does_not_wait_for_a_stalled_request(tmp_path: Path, anyio_backend: str) -> None:
    sb = await start_sandbox("coredata", tmp_path / "s", faults=only("slow", slow_seconds=300))
    async with aiohttp.ClientSession(headers=auth(sb)) as s:
        pending = asyncio.ensure_future(s.get(sb.base_url + "/api/v2/files/"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await sb.stop()
        assert time.monotonic() - started < 5
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


# ---- listing faults ------------------------------------------------------------------------------


async def test_wrong_digest_spoils_one_listing_object(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    sandbox.faults.plan = only("wrong_digest")
    async with http.get("/api/v2/files/") as resp:
        objects = (await resp.json())["objects"]
    truth = {f.id: f.digest for f in sandbox.backend.files()}
    wrong = [o["id"] for o in objects if o["digest"] != truth[o["id"]]]
    assert len(wrong) == 1 and len(objects) > 1
    async with http.get(f"/api/v2/files/{wrong[0]}/content/", allow_redirects=False) as resp:
        assert resp.status == 302  # not a listing: nothing to spoil, nothing counted
    assert sandbox.faults.counts == {"wrong_digest": 1}


async def test_total_count_drifts(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    sandbox.faults.plan = only("total_count_drift")
    async with http.get("/api/v2/files/?limit=2") as resp:
        meta = (await resp.json())["meta"]
    assert meta["total_count"] == len(list(sandbox.backend.files())) + 1


async def test_total_entries_drift_on_cliniko(tmp_path: Path, anyio_backend: str) -> None:
    async with await start_sandbox("cliniko", tmp_path / "c", seed=3, faults=only("total_count_drift")) as sb:
        from tests.cliniko_api import ClinikoAPI

        api = ClinikoAPI(sb.remote)
        sb.faults.enabled = False
        truth = await asyncio.to_thread(api.call, "GET", "/patients")
        sb.faults.enabled = True
        drifted = await asyncio.to_thread(api.call, "GET", "/patients")
        assert drifted.json()["total_entries"] == truth.json()["total_entries"] + 1


async def test_presigned_url_expires_mid_download(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    file_id = next(f.id for f in sandbox.backend.files() if f.size > 1)
    sandbox.faults.plan = only("presign_expire_mid_download", limit=1)
    async with http.get(f"/api/v2/files/{file_id}/content/", allow_redirects=False) as resp:
        location = resp.headers["Location"]  # an API call: not eligible, no draw
    path = location.removeprefix(sandbox.base_url)
    raw, ending = await raw_exchange(sandbox, path)
    status, headers, body = split_response(raw)
    assert status == 200 and ending == "reset" and len(body) < int(headers["content-length"])
    raw, _ = await raw_exchange(sandbox, path)
    status, _, body = split_response(raw)
    assert status == 403 and b"Request has expired" in body and b"<Error>" in body
    async with http.get(f"/api/v2/files/{file_id}/content/", allow_redirects=False) as resp:
        fresh = resp.headers["Location"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(fresh) as blob:
        assert await blob.read() == sandbox.backend.read_content(file_id)
    assert sandbox.faults.counts == {"presign_expire_mid_download": 1}


# ---- seeding, inspection, plumbing ------------------------------------------------------------


async def _statuses(tmp_path: Path, seed: int) -> tuple[list[int], list[str]]:
    plan = FaultPlan(rates={"500": 0.2, "503": 0.2, "429": 0.1}, seed=seed, retry_after=0)
    async with await start_sandbox("coredata", tmp_path, faults=plan) as sb:
        async with aiohttp.ClientSession(headers=auth(sb)) as s:
            statuses = []
            for i in range(40):
                async with s.get(sb.base_url + f"/api/v2/files/?limit={i + 1}") as resp:
                    statuses.append(resp.status)
        return statuses, [f.kind for f in sb.faults.injected]


async def test_the_same_seed_repeats_the_same_faults(tmp_path: Path, anyio_backend: str) -> None:
    first = await _statuses(tmp_path / "a", 7)
    again = await _statuses(tmp_path / "b", 7)
    other = await _statuses(tmp_path / "c", 8)
    assert first == again
    assert first != other
    assert 5 <= len(first[1]) <= 35 and set(first[0]) == {200, 500, 503, 429}


async def test_inspection_routes_are_never_hit(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    sandbox.faults.plan = only("503")
    async with http.get("/api/v2/files/") as resp:
        assert resp.status == 503
    async with http.get("/_sandbox/faults") as resp:
        assert resp.status == 200
        summary = await resp.json()
    assert summary["counts"] == {"503": 1} and summary["plan"]["rates"] == {"503": 1.0}
    async with http.post("/_sandbox/faults", json={"enabled": False}) as resp:
        assert (await resp.json())["enabled"] is False
    async with http.get("/api/v2/files/") as resp:
        assert resp.status == 200
    async with http.post("/_sandbox/faults", json={"enabled": True, "rates": {"500": 1.0}, "seed": 3}) as resp:
        assert (await resp.json())["plan"]["rates"] == {"500": 1.0}
    async with http.get("/api/v2/files/") as resp:
        assert resp.status == 500
    assert set(KINDS) >= set(sandbox.faults.counts)


async def test_cliniko_inspection_route_is_exempt(tmp_path: Path, anyio_backend: str) -> None:
    async with await start_sandbox("cliniko", tmp_path / "c", faults=only("reset_before")) as sb:
        async with aiohttp.ClientSession() as s, s.get(sb.base_url + "/_sandbox/api_log") as resp:
            assert resp.status == 200
        assert not sb.faults.counts


def test_cli_takes_fault_options(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            LIBMIRROR,
            "sandbox",
            "coredata",
            "--port",
            "0",
            "--data",
            str(tmp_path / "d"),
            "--fault",
            "503=1",
            "--fault-seed",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        request = urllib.request.Request(info["base_url"] + "/api/v2/files/")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 503
        with urllib.request.urlopen(info["base_url"] + "/_sandbox/faults", timeout=10) as resp:
            summary = json.load(resp)
        assert summary["counts"] == {"503": 1} and summary["plan"]["seed"] == 4
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_refuses_a_bad_fault(tmp_path: Path) -> None:
    for bad in (["--fault", "teapot=0.1"], ["--fault", "500=2"], ["--fault", "500=0.6", "--fault", "503=0.6"]):
        result = subprocess.run(
            [LIBMIRROR, "sandbox", "coredata", "--port", "0", "--data", str(tmp_path / "d"), *bad],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, (bad, result.stderr)
        assert result.stdout == ""


def test_injector_without_a_plan_draws_nothing() -> None:
    injector = FaultInjector("coredata")
    assert not injector.plan.active and injector.summary()["total"] == 0


# ---- the CoreData provider survives a 10% mix of transient faults ----------------------------------


def _converge(mirror: Any, runs: int = 8) -> list[int]:
    codes: list[int] = []
    for _ in range(runs):
        codes.append(mirror.sync(check=None).returncode)
        if codes[-1] == 0:
            break
    assert codes[-1] == 0, codes
    return codes


def test_sync_once_converges_under_a_10_percent_fault_mix(tmp_path: Path) -> None:
    """Every transient kind at 1/10 of 10%: each `sync --once` either finishes or leaves work that the
    next run completes; nothing is lost or duplicated, and a fault-free run then has nothing to do."""
    from tests.coredata_api import CoreDataAPI
    from tests.e2e.conftest import start_sandbox_process, write_config

    share = 0.1 / len(TRANSIENT_KINDS)
    fault_args = [arg for kind in TRANSIENT_KINDS for arg in ("--fault", f"{kind}={share}")]
    proc, info = start_sandbox_process(
        tmp_path / "sbx", 40, *fault_args, "--fault-seed", "3", "--fault-retry-after", "0"
    )
    try:
        mirror = write_config(tmp_path, info["remote"])
        mirror.root.mkdir()
        (mirror.root / "notes").mkdir()
        for i in range(8):
            (mirror.root / "notes" / f"local-{i}.txt").write_bytes(bytes([65 + i]) * (20_000 * (i + 1)))
        codes = _converge(mirror)
        for i in range(4):  # a second round of changes: edits and deletes pushed through the faults
            (mirror.root / "notes" / f"local-{i}.txt").write_bytes(b"edited %d" % i)
        (mirror.root / "notes" / "local-7.txt").unlink()
        codes += _converge(mirror)
        base = info["base_url"]
        with urllib.request.urlopen(base + "/_sandbox/faults", timeout=10) as resp:
            summary = json.load(resp)
        assert summary["total"] >= 5, summary
        off = urllib.request.Request(
            base + "/_sandbox/faults", data=b'{"enabled": false}', headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(off, timeout=10).close()
        quiet = mirror.sync()  # without faults: nothing left to do
        passes = [e for e in mirror.events(quiet) if e.get("event") == "pass"]
        assert passes and all(p["pushed"] == p["pulled"] == p["errors"] == 0 for p in passes), passes
        api = CoreDataAPI(info["remote"])
        tree = api.tree()
        remote = {path: api.content(obj["id"]) for path, obj in tree.items()}
        assert remote == mirror.files()
        assert len(remote) == 40 + 7 and remote["notes/local-0.txt"] == b"edited 0"
        print("fault mix:", codes, summary["counts"], summary["drawn"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_coredata_provider_rides_out_slow_answers(tmp_path: Path, anyio_backend: str) -> None:
    """`slow` past a short read timeout: the idempotent listing requests are retried and complete."""
    from daemon.providers.coredata import CoreDataProvider
    from daemon.providers.http import HttpClient, RetryPolicy

    plan = FaultPlan(rates={"slow": 0.4, "503": 0.1}, seed=4, slow_seconds=1.0)
    async with await start_sandbox("coredata", tmp_path / "s", seed=12, page_limit_max=5, faults=plan) as sb:
        remote = sb.remote
        http = HttpClient(read_timeout=0.25, retry=RetryPolicy(attempts=8, base=0.01, cap=0.05))
        provider = CoreDataProvider(
            remote["base_url"], remote["root"], remote["api_user"], remote["api_key"], http=http, page_size=5
        )
        try:
            await provider.list_folders()
            files = [item async for page in provider.list_files() for item in page]
        finally:
            await provider.aclose()
            await http.aclose()
        assert len({f.remote_id for f in files}) == 12
        assert sb.faults.counts["slow"] >= 1
