"""A CoreData sandbox in its own process that the benchmark can question over stdin/stdout.

``libmirror sandbox`` keeps its request log in memory, out of reach of another process; the
benchmarks need to count requests (idle polls) and to play "someone edited a file on the server"
(latency) without going through the HTTP API they are measuring. This wrapper serves the same
sandbox (``daemon.sandbox.runner.start_sandbox``) and answers one JSON line per command line:

- ``count``: ``{"requests": N, "by_route": {"GET /api/v2/files/": n, ...}}`` since the last ``clear``
- ``stats``: ``{"files": N, "bytes": B}`` of the files outside the trash
- ``clear``: forget the recorded requests
- ``digest PATH``: ``{"digest": MD5 or null}`` of the file at library path PATH
- ``set PATH SIZE``: give the file at PATH SIZE new random bytes; ``{"digest": ...}``
- ``quit``: stop serving

Usage: python -m bench.sandbox_ctl DATA_DIR   (prints the start-up JSON line first, like the CLI)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from daemon.sandbox.runner import RunningSandbox, start_sandbox


def _answer(sandbox: RunningSandbox, line: str) -> dict[str, Any]:
    backend = sandbox.backend
    cmd, _, rest = line.strip().partition(" ")
    if cmd == "count":
        routes = {f"{m} {p}": n for (m, p), n in backend.requests.by_route().most_common(20)}
        return {"requests": len(backend.requests), "by_route": routes}
    if cmd == "clear":
        backend.requests.clear()
        return {"ok": True}
    if cmd == "stats":
        live = [n for n in backend.files() if n.parent != backend.trash_id]
        return {"files": len(live), "bytes": sum(n.size or 0 for n in live)}
    if cmd == "digest":
        try:
            return {"digest": backend.file_by_path(rest).digest}
        except KeyError:
            return {"digest": None}
    if cmd == "set":
        path, _, size = rest.rpartition(" ")
        node = backend.set_content(backend.file_by_path(path).id, os.urandom(int(size)))
        return {"digest": node.digest}
    return {"error": f"unknown command {line.strip()!r}"}


async def _main(data_dir: Path) -> None:
    sandbox = await start_sandbox("coredata", data_dir, port=0)
    loop = asyncio.get_running_loop()
    try:
        print(json.dumps({"provider": "coredata", "base_url": sandbox.base_url, "remote": sandbox.remote}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            try:
                reply = _answer(sandbox, line)
            except Exception as exc:  # a bad command must not kill the sandbox mid-benchmark
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)
    finally:
        await sandbox.stop()


if __name__ == "__main__":
    import logging

    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    asyncio.run(_main(Path(sys.argv[1])))
