"""``libmirror demo``: a seeded CoreData sandbox mirrored into a local folder, with progress output.

Everything the demo needs lives under the mirror's own ``.libmirror/demo/`` folder (sandbox data,
state store, generated config), so running it again continues where it left off and deleting the
mirror folder removes every trace.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from daemon.config import LibraryConfig, load_config
from daemon.logs import bind_library, configure_logging
from daemon.state.lock import StateLock, StateLocked
from daemon.state.store import StateStore
from daemon.sync.library import PassSummary
from daemon.sync.runner import LibraryRunner
from daemon.vocab import Action


def _write_config(path: Path, mirror: Path, state: Path, remote: dict[str, str]) -> None:
    text = f"""# written by `libmirror demo`
state_dir = "{state}"

[[library]]
name = "demo"
provider = "coredata"
local_path = "{mirror}"
direction = "two-way"

[library.remote]
base_url = "{remote["base_url"]}"
root = "{remote["root"]}"
api_user = "{remote["api_user"]}"
api_key = "{remote["api_key"]}"
"""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _summary_table(summary: PassSummary, title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("pulled", str(summary.pulled)),
        ("pushed", str(summary.pushed)),
        ("moved", str(summary.moved)),
        ("folders created / removed", str(summary.folders)),
        ("deleted (to trash on disk)", str(summary.deleted)),
        ("conflicts", str(summary.conflicts)),
        ("skipped", str(summary.skipped)),
        ("errors", str(summary.errors)),
        ("MB down / up", f"{summary.bytes_down / 1e6:.2f} / {summary.bytes_up / 1e6:.2f}"),
        ("seconds", f"{summary.duration_ms / 1000:.2f}"),
    ]
    for what, count in rows:
        table.add_row(what, count)
    return table


async def _live(library: LibraryConfig, store: StateStore, console: Console) -> None:
    """The daemon's runner (watcher + poller) for the demo library; prints each pass that did something."""

    def changed(summary: PassSummary) -> None:
        counts = (summary.pushed, summary.pulled, summary.deleted, summary.conflicts, summary.moved, summary.folders)
        if any(counts) or summary.errors:
            console.print(_summary_table(summary, "changes synced"))

    await LibraryRunner(library, store, on_pass=changed).run()


def run_demo(directory: Path, *, once: bool, seed: int, interval: float) -> int:
    return anyio.run(_demo, directory.resolve(), once, seed, interval)


async def _demo(mirror: Path, once: bool, seed: int, interval: float) -> int:
    console = Console(stderr=False)
    configure_logging("console", "warning")
    work = mirror / ".libmirror" / "demo"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # the demo's own state dir, locked like any writer's: a second demo on the same folder refuses
        lock = StateLock.acquire(work / "state", "demo")
    except StateLocked as exc:
        from daemon.cli import EXIT_LOCKED

        console.print(f"error: {mirror} is already mirrored by another demo ({exc}); stop it first", markup=False)
        return EXIT_LOCKED
    with lock:
        return await _demo_locked(mirror, work, console, once, seed, interval)


async def _demo_locked(mirror: Path, work: Path, console: Console, once: bool, seed: int, interval: float) -> int:
    from daemon.providers import make_provider
    from daemon.sandbox.runner import start_sandbox
    from daemon.sync.library import LibrarySync

    sandbox = await start_sandbox("coredata", work / "sandbox", port=0, seed=seed)
    config_path = work / "config.toml"
    _write_config(config_path, mirror, work / "state", sandbox.remote)
    config = load_config(config_path)
    library = config.libraries[0]
    bind_library(library.name)
    store = await StateStore.open(config.state_dir)
    provider = make_provider(library.remote)
    try:
        engine = LibrarySync(library, store, await store.library_id(library.name), provider)
        console.print(f"[bold]libmirror demo[/]: CoreData sandbox at {sandbox.base_url} → {mirror}")
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("first pass", total=None)

            def planned(actions: list[Action]) -> None:
                progress.update(task, total=len(actions))

            def advanced(_action: Action, _nbytes: int) -> None:
                progress.advance(task)

            summary = await engine.run_pass(on_plan=planned, on_progress=advanced)
        console.print(_summary_table(summary, "first pass"))
        if once:
            return summary.exit_code
        remote = sandbox.remote
        console.print(
            "\nThe mirror is live. Try it:\n"
            f"  • edit, add or delete a file under {mirror} and watch it reach the sandbox;\n"
            f"  • change the remote side through the API, e.g.\n"
            f"    curl -H 'Authorization: apikey {remote['api_user']}:<key>' {sandbox.base_url}/api/v2/files/\n"
            f"    (the key is in {config_path});\n"
            f"  • deleted files end up in {mirror / '.libmirror' / 'trash'}.\n"
            f"Watching {mirror} and polling the sandbox every {interval:g} s. Press Ctrl-C to stop."
        )
        await _live(replace(library, poll_interval=max(1.0, interval)), store, console)
        return 0  # not reached: the runner runs until Ctrl-C
    finally:
        await provider.aclose()
        await store.close()
        await sandbox.stop()
