"""PassProgress: what a pass planned to transfer, what it did, and the rate and ETA derived from them."""

from __future__ import annotations

from daemon.sync.progress import PassProgress, format_bytes, format_duration
from daemon.vocab import Download, LocalRow, MkdirLocal, RemoteRow, Upload


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _download(path: str, size: int) -> Download:
    return Download(path, "new remote file", remote=RemoteRow(path, f"id-{path}", size=size))


def _upload(path: str, size: int) -> Upload:
    return Upload(path, "new local file", local=LocalRow(path, size=size))


def test_only_transfers_count_and_a_path_planned_again_counts_once() -> None:
    progress = PassProgress(Clock())
    work = [_download("a", 1000), _upload("b", 3000), MkdirLocal("dir", "new remote folder")]
    progress.planned(work)
    progress.planned([_download("a", 1000), _download("c", 500)])  # a later round re-plans "a"
    assert (progress.files_total, progress.bytes_total) == (3, 4500)


def test_rate_and_eta_take_the_slower_of_files_and_bytes() -> None:
    clock = Clock()
    progress = PassProgress(clock)
    progress.planned([_download(f"f{i}", 100) for i in range(9)] + [_download("big", 9100)])
    assert progress.snapshot().eta_s is None  # nothing done yet: no estimate
    clock.now += 10
    for i in range(5):
        progress.advanced(_download(f"f{i}", 100), 100)
    snap = progress.snapshot()
    assert (snap.files_done, snap.bytes_done, snap.files_per_s, snap.rate_bytes_per_s) == (5, 500, 0.5, 50.0)
    # by files: 5 left at 0.5/s = 10 s; by bytes: 9500 left at 50 B/s = 190 s
    assert snap.eta_s == 190.0
    assert snap.line() == "5/10 files, 500 B/9.8 KiB, 50 B/s, ETA 3m10s, 0 errors"


def test_a_failure_counts_as_an_error_and_a_grown_file_never_passes_100_percent() -> None:
    progress = PassProgress(Clock())
    progress.planned([_download("a", 10), _download("b", 10)])
    progress.failed(_download("a", 10))
    progress.advanced(_download("b", 10), 25)  # grew since it was listed
    snap = progress.snapshot()
    assert (snap.errors, snap.bytes_done, snap.bytes_total) == (1, 25, 25)


def test_formats() -> None:
    assert [format_bytes(v) for v in (0, 1023, 1024, 5 * 1024**2, 3 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]
    assert [format_duration(s) for s in (0, 59.4, 61, 3600, 4568)] == ["0s", "59s", "1m01s", "1h00m", "1h16m"]
