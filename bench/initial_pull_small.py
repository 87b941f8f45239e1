"""Initial pull of N small files (1-8 KiB in 20 folders) from the CoreData sandbox into an empty folder.

Reference in the same run: `cp -r` + `md5sum` of the same bytes on the same disk (the local floor).
Usage: python -m bench.initial_pull_small [N]   (default 2000)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import LIBMIRROR, build_coredata_tree, run_timed, start_sandbox, write_config


def main(count: int = 2000) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="libmirror-bench-") as tmp:
        work = Path(tmp)
        build_coredata_tree(work / "sandbox", small=count, folders=20, large=0, large_size=0)
        sandbox = start_sandbox(work / "sandbox")
        try:
            mirror = work / "mirror"
            config = write_config(work, sandbox.info["remote"], mirror)
            run = run_timed([LIBMIRROR, "--config", str(config), "sync", "--once"])
            assert run.returncode == 0, run
        finally:
            sandbox.stop()
        pulled = sum(1 for p in mirror.rglob("*") if p.is_file() and ".libmirror" not in p.parts)
        assert pulled == count, pulled
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(mirror), str(work / "copy")], check=True)
        files = [str(p) for p in (work / "copy").rglob("*") if p.is_file() and ".libmirror" not in p.parts]
        for i in range(0, len(files), 500):
            subprocess.run(["md5sum", *files[i : i + 500]], check=True, stdout=subprocess.DEVNULL)
        floor = time.perf_counter() - start
        shutil.rmtree(work / "copy")
    result = {
        "files": float(count),
        "seconds": round(run.seconds, 2),
        "files_per_s": round(count / run.seconds, 1),
        "floor_files_per_s": round(count / floor, 1),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }
    print(
        f"initial pull of {count} small files: {result['files_per_s']} files/s "
        f"({result['seconds']} s, peak RSS {result['peak_rss_mb']} MB); "
        f"cp+md5sum floor {result['floor_files_per_s']} files/s"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
