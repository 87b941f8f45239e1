"""The ``libmirror`` command: run, sync, check-config, status, release-gate, example-config, demo, sandbox.

Exit codes: see ``daemon/exit_codes.py`` (each command's ``--help`` prints its own). ``run`` and
``sync`` are the store's only writers, one at a time (``daemon/state/lock.py``); ``status`` only reads.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from daemon.config import Config, ConfigError, LibraryConfig, load_config
from daemon.control import ControlDir
from daemon.exit_codes import (
    CHECK_UNKNOWN,
    EPILOGS,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
)
from daemon.logs import LEVELS, bind_library, configure_logging
from daemon.sandbox import registry as sandbox_registry
from daemon.sandbox.__main__ import parse_option as sandbox_option
from daemon.sandbox.faults import add_fault_arguments, plan_from_args
from daemon.state.lock import StateLock, StateLocked

if TYPE_CHECKING:
    from daemon.bandwidth import Bandwidth
    from daemon.state.store import StateStore
    from daemon.sync.progress import PassProgress

log = structlog.get_logger(__name__)

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_GATE", "EXIT_LOCKED", "EXIT_OK", "build_parser", "main"]

DEFAULT_CONFIG = "/etc/libmirror/config.toml"


def _add_config_arg(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=(os.environ.get("LIBMIRROR_CONFIG") or DEFAULT_CONFIG) if top else argparse.SUPPRESS,
        help=f"config file (default: $LIBMIRROR_CONFIG or {DEFAULT_CONFIG})",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("libmirror")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` ends with its exit codes."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=EPILOGS[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="libmirror",
        description="Mirror SaaS file libraries (CoreData, Cliniko, TimeTap, coreplus) to local folders, both ways.",
        epilog=EPILOGS["libmirror"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"libmirror {_version()}")
    _add_config_arg(parser, top=True)
    parser.add_argument("--log-format", choices=("json", "console"), default=None, help="default: json unless a TTY")
    parser.add_argument(
        "--log-level", choices=tuple(LEVELS), default=None, help="default: the config's log_level, else info"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_sync = _command(sub, "sync", "observe both sides, plan and apply the changes: one pass, then exit")
    _add_config_arg(p_sync, top=False)
    p_sync.add_argument("--once", action="store_true", help="accepted for scripts; `sync` always does one pass")
    p_sync.add_argument("--library", action="append", help="only this library (repeatable)")
    p_sync.add_argument("--dry-run", action="store_true", help="print the plan; change nothing anywhere")
    p_sync.add_argument(
        "--confirm-deletes", action="store_true", help="let the deletes and overwrites a safety gate holds through"
    )

    p_release = _command(
        sub, "release-gate", "let the changes a safety gate holds back through, in the running service"
    )
    _add_config_arg(p_release, top=False)
    p_release.add_argument("library", help="the library whose held changes you checked and accept")

    for name, text in (
        ("pause", "stop syncing a library (the running service too) until `resume`, across restarts"),
        ("resume", "sync a paused library again"),
    ):
        p_pause = _command(sub, name, text)
        _add_config_arg(p_pause, top=False)
        p_pause.add_argument("library", help="the library's name in the config")

    p_run = _command(sub, "run", "the daemon: watch, poll and sync every library until stopped")
    _add_config_arg(p_run, top=False)

    p_check = _command(sub, "check-config", "validate the config file and exit")
    _add_config_arg(p_check, top=False)

    p_status = _command(sub, "status", "show each library's state from the state store (read-only)")
    _add_config_arg(p_status, top=False)
    p_status.add_argument("--json", action="store_true", help="machine-readable output (shape: see the README)")
    p_status.add_argument(
        "--check",
        action="store_true",
        help="one line per library and a monitoring exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
    )
    p_status.add_argument(
        "--metrics",
        action="store_true",
        help="Prometheus text format, for node_exporter's textfile collector (families: see the README)",
    )

    _command(sub, "example-config", "print the annotated example configuration (redirect it into a file)")

    p_demo = _command(sub, "demo", "mirror a seeded CoreData sandbox into a local folder")
    p_demo.add_argument(
        "--dir", type=Path, default=Path("libmirror-demo"), help="mirror folder (default ./libmirror-demo)"
    )
    p_demo.add_argument("--once", action="store_true", help="one pass, then exit")
    p_demo.add_argument("--seed", type=int, default=40, help="sample files in the sandbox (default 40)")
    p_demo.add_argument("--interval", type=float, default=3.0, help="seconds between passes (default 3)")

    p_sandbox = _command(sub, "sandbox", "run a provider's API emulator on 127.0.0.1")
    p_sandbox.add_argument("provider", choices=sandbox_registry.names())
    p_sandbox.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p_sandbox.add_argument("--data", type=Path, required=True, help="folder holding the sandbox's state")
    p_sandbox.add_argument("--seed", type=int, default=0, help="fill a new sandbox with N sample files")
    p_sandbox.add_argument(
        "--presign-ttl", type=float, default=None, help="presigned URL lifetime in seconds (default 300)"
    )
    p_sandbox.add_argument(
        "-o", "--option", type=sandbox_option, action="append", default=[], help="backend option KEY=VALUE"
    )
    add_fault_arguments(p_sandbox)
    return parser


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) in the configuration; nothing was done.", file=sys.stderr)
        return None


def _setup_logging(args: argparse.Namespace, config: Config | None) -> None:
    level = args.log_level or (config.log_level if config else "info")
    configure_logging(args.log_format, level)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from daemon.sandbox.runner import serve

        # stdout carries exactly one line (the start-up JSON); logs go to stderr
        configure_logging(args.log_format, args.log_level or "info", stream=sys.stderr)
        options = dict(args.option)
        if args.presign_ttl is not None:
            options["presign_ttl"] = args.presign_ttl
        try:
            faults = plan_from_args(args)
        except ValueError as exc:
            print(f"libmirror sandbox: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return serve(args.provider, args.data, port=args.port, seed=args.seed, faults=faults, **options)
    if args.command == "example-config":
        from daemon.example_config import example_text

        sys.stdout.write(example_text())
        return EXIT_OK
    if args.command == "demo":
        from daemon.demo import run_demo

        return run_demo(args.dir, once=args.once, seed=args.seed, interval=args.interval)

    if args.command == "check-config":
        _setup_logging(args, None)
        config = _load(args)
        if config is None:
            return EXIT_CONFIG
        print(f"{config.path}: OK, {len(config.libraries)} librar{'y' if len(config.libraries) == 1 else 'ies'}")
        if not config.bwlimit.unlimited:
            print(f"  bwlimit of all libraries together: {config.bwlimit.describe()}")
        for lib in config.libraries:
            limit = "" if lib.bwlimit.unlimited else f", bwlimit {lib.bwlimit.describe()}"
            print(f"  {lib.name}: {lib.provider} {lib.direction.value} {lib.local_path}{limit}")
        return EXIT_OK

    _setup_logging(args, None)  # warnings raised while loading (e.g. a readable secret) use the chosen format
    config = _load(args)
    if config is None:
        if args.command == "status" and args.check:
            print(f"UNKNOWN: the configuration {args.config} is invalid (see the errors on stderr)")
            return CHECK_UNKNOWN
        return EXIT_CONFIG
    _setup_logging(args, config)
    if args.command == "sync":
        libraries = _selected(config, args.library)
        if libraries is None:
            return EXIT_CONFIG
        return _as_writer(config, "sync --once", lambda: anyio.run(_sync_once, config, libraries, args))
    if args.command == "status":
        from daemon.status import show_metrics, show_status

        if args.metrics:
            if args.json or args.check:
                print("error: status --metrics cannot be combined with --json or --check", file=sys.stderr)
                return EXIT_CONFIG
            return anyio.run(show_metrics, config)
        return anyio.run(show_status, config, args.json, args.check)
    if args.command in ("release-gate", "pause", "resume"):
        return _control_request(config, args.command, args.library)
    if args.command == "run":
        return _as_writer(config, "run", lambda: _run_daemon(config, args))
    raise AssertionError(args.command)


def _as_writer(config: Config, command: str, body: Callable[[], int]) -> int:
    """Run ``body`` as the one writer of the config's state store (DESIGN rule 9).

    Refuses root without ``allow_root`` (exit 2), then takes the store's lock for the rest of the
    process's life (exit 4 when another process holds it): a second ``sync`` or ``run`` on the same
    store would upload and download the same files again, or die on "database is locked".
    """
    if os.geteuid() == 0 and not config.allow_root:
        print(
            f"error: {config.path}: refusing to run as root; run as a dedicated user "
            "(see deploy/README.md) or set allow_root = true",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        lock = StateLock.acquire(config.state_dir, command)
    except StateLocked as exc:
        print(f"error: {locked_message(exc)}", file=sys.stderr)
        return EXIT_LOCKED
    except OSError as exc:
        print(
            f"error: {config.path}: cannot lock the state store in state_dir {config.state_dir}: {exc}; "
            "check that the folder belongs to the user libmirror runs as",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    with lock:  # held until the process is done (released by the kernel, too, if it dies)
        return body()


def locked_message(exc: StateLocked) -> str:
    """What a refused writer prints: who holds the store and what to do instead."""
    holder = exc.holder
    who = f"libmirror pid {holder.pid}" if holder.pid is not None else "another libmirror process (pid unknown)"
    if holder.command:
        who += f" (`libmirror {holder.command}`)"
    if holder.command and holder.command.startswith("sync"):
        todo = "wait for that pass to finish and run again"
    else:
        todo = "stop that process first (systemctl stop libmirror)"
    return (
        f"the state store {exc.state_dir} is in use by {who}; nothing was done. "
        f"{todo[0].upper()}{todo[1:]}, or use `libmirror status` to look at it while it runs."
    )


def _control_request(config: Config, command: str, name: str) -> int:
    """``release-gate``, ``pause``, ``resume``: write only a request file under ``state_dir/control/``
    (never the store, never the lock). They refuse root like the writers, since a root-owned request
    (or control folder) could not be removed or written by the service user."""
    libraries = _selected(config, [name])
    if libraries is None:
        return EXIT_CONFIG
    if os.geteuid() == 0 and not config.allow_root:
        print(
            f"error: {config.path}: refusing to run as root; run as the service's user "
            f"(sudo -u libmirror libmirror {command} ...) or set allow_root = true",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if command == "release-gate":
        from daemon.gate_release import release_gate

        return anyio.run(release_gate, config, libraries[0])
    from daemon.pause import pause_library, resume_library

    return (pause_library if command == "pause" else resume_library)(config, libraries[0])


def _run_daemon(config: Config, args: argparse.Namespace) -> int:
    from daemon.metrics.server import MetricsBindError
    from daemon.service import run_service

    def reconfigure(new: Config) -> None:
        if not args.log_level:
            configure_logging(args.log_format, new.log_level)

    try:
        return anyio.run(lambda: run_service(config, on_reload=reconfigure))
    except MetricsBindError as exc:
        print(
            f'error: {config.path}: metrics_listen = "{config.metrics_listen}": {exc}; choose a free port '
            "(or stop the process using it), or remove metrics_listen. No library was started.",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _selected(config: Config, names: list[str] | None) -> list[LibraryConfig] | None:
    if not names:
        return list(config.libraries)
    known = {lib.name: lib for lib in config.libraries}
    missing = [n for n in names if n not in known]
    if missing:
        print(
            f"error: {config.path}: no library named {', '.join(missing)}; configured: {', '.join(known) or '(none)'}",
            file=sys.stderr,
        )
        return None
    return [known[n] for n in names]


async def _sync_once(config: Config, libraries: list[LibraryConfig], args: argparse.Namespace) -> int:
    from daemon.bandwidth import Bandwidth

    bandwidth = Bandwidth()
    bandwidth.configure(config.bwlimit, {lib.name: lib.bwlimit for lib in libraries})
    async with bandwidth.following():
        return await _sync_each(config, libraries, args, bandwidth)


async def _sync_each(
    config: Config, libraries: list[LibraryConfig], args: argparse.Namespace, bandwidth: Bandwidth
) -> int:
    from daemon.bandwidth import set_throttle
    from daemon.providers import make_provider
    from daemon.state.store import StateStore
    from daemon.sync.library import LibrarySync, LocalRootMissing, PassSummary
    from daemon.sync.progress import PassProgress
    from daemon.vocab import AuthError, ProviderError

    store = await StateStore.open(config.state_dir)
    worst = EXIT_OK
    results: list[tuple[str, PassSummary | None, str]] = []
    paused: list[tuple[str, str]] = []  # (library, since): `libmirror pause` keeps every pass away
    try:
        for library in libraries:
            bind_library(library.name)
            set_throttle(bandwidth.throttle(library.name))
            pause = ControlDir(config.state_dir).pause(library.name)
            if pause is not None:
                log.warning("library_paused", since=pause.requested_at, next_step=f"libmirror resume {library.name}")
                paused.append((library.name, pause.requested_at))
                structlog.contextvars.unbind_contextvars("library")
                continue
            provider = make_provider(library.remote)
            try:
                lib_id = await store.library_id(library.name)
                control = ControlDir(config.state_dir)
                engine = LibrarySync(library, store, lib_id, provider, control=control)
                progress = PassProgress()
                with _progress_shown(library.name, progress, args, config):
                    summary = await engine.run_pass(
                        dry_run=args.dry_run, confirm_deletes=args.confirm_deletes, progress=progress
                    )
                results.append((library.name, summary, ""))
                if args.dry_run:
                    _print_plan(library.name, summary)
                worst = max(worst, summary.exit_code, key=_severity)
            except (AuthError, ProviderError, LocalRootMissing, OSError) as exc:
                log.error("pass_failed", error=str(exc), next_step="fix the cause and run again")
                results.append((library.name, None, str(exc)))
                if not args.dry_run:
                    await _note_failure(store, library.name, exc)
                worst = max(worst, EXIT_FAILED, key=_severity)
            finally:
                await provider.aclose()
                structlog.contextvars.unbind_contextvars("library")
    finally:
        await store.close()
    _print_summary(results, dry_run=args.dry_run)
    for name, since in paused:
        print(f"[{name}] paused since {since}: not synced (`libmirror resume {name}`)", file=_out())
    return worst


def _progress_shown(
    name: str, progress: PassProgress, args: argparse.Namespace, config: Config
) -> AbstractContextManager[None]:
    """The terminal progress display of one library's pass (nothing when stdout is not a terminal, with
    ``--log-format json`` or for a dry run)."""
    from daemon import progress_display

    if args.dry_run or not progress_display.wanted(args.log_format):
        return nullcontext()
    return progress_display.shown(name, progress, args.log_format, args.log_level or config.log_level)


async def _note_failure(store: StateStore, name: str, exc: Exception) -> None:
    """Leave the failure where ``status --check`` finds it (until a later pass succeeds)."""
    from daemon.health import LAST_FAILURE, failure_note
    from daemon.vocab import AuthError

    note = failure_note(f"{type(exc).__name__}: {exc}", auth=isinstance(exc, AuthError), at=datetime.now().astimezone())
    async with store.transaction(await store.library_id(name)) as tx:
        await tx.set_status(LAST_FAILURE, note)


def _severity(code: int) -> int:
    return {EXIT_OK: 0, EXIT_GATE: 1, EXIT_FAILED: 2}.get(code, 3)


def _out() -> Any:
    """Human output goes to stdout on a terminal, else to stderr so stdout stays JSON lines."""
    return sys.stdout if sys.stdout.isatty() else sys.stderr


def _print_plan(name: str, summary: Any) -> None:
    from daemon.vocab import moved_from

    out = _out()
    print(f"[{name}] dry run: {len(summary.planned)} action(s) planned, nothing changed", file=out)
    for action in summary.planned:
        moved = moved_from(action)
        src = f"{moved} -> " if moved else ""
        print(f"  {action.kind.value:14} {src}{action.path}  ({action.reason})", file=out)
        log.info("planned", action=action.kind.value, path=action.path, src=moved, reason=action.reason)


def _print_summary(results: list[tuple[str, Any, str]], *, dry_run: bool) -> None:
    out = _out()
    for name, summary, error in results:
        if summary is None:
            print(f"[{name}] failed: {error}", file=out)
            continue
        line = (
            f"[{name}] pushed {summary.pushed}, pulled {summary.pulled}, conflicts {summary.conflicts}, "
            f"deleted {summary.deleted}, moved {summary.moved}, folders {summary.folders}, "
            f"skipped {summary.skipped}, errors {summary.errors}"
        )
        if summary.held:
            line += f", held back {summary.held}"
        print(line + (" (dry run)" if dry_run else ""), file=out)
        for reason in summary.gate_reasons:
            print(f"  safety gate: {reason}", file=out)
        for path, message in summary.failures:
            print(f"  failed: {path}: {message}", file=out)


if __name__ == "__main__":
    main()
