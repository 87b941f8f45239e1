"""Filesystem watching for one library root: batches of changed library-relative paths.

watchfiles (inotify on Linux) hands over raw batches every ``STEP_MS`` of quiet; the settle rule is
ours: a batch goes to the caller once no new event arrived for ``settle`` seconds, so an edit reaches
the planner ``settle`` s after the folder went quiet, not up to a whole extra step later (watchfiles'
own ``step`` is checked on a fixed tick, which made the delay anywhere between 1 and 2 × settle). A
folder that never goes quiet (a big copy) still hands over what it has every ``max_wait`` seconds.

Events under ``ROOT/.libmirror/`` are dropped here: that is where the daemon's own temp downloads and
trash moves happen. The daemon's other writes (a download renamed into place, a conflict copy) do
reach the batch, but the executor has already recorded them in the local tree, so observing them
finds nothing changed and nothing bounces back as an upload.

When the watcher cannot start (typically the inotify watch limit), :class:`WatcherUnavailable` is
raised after an error naming ``fs.inotify.max_user_watches``; the caller falls back to rescans.

The watching itself is shared: every root subscribes to ``daemon.local.watch_hub.HUB``, which serves
the libraries of a daemon with one watcher thread (a watcher per library cost most of an idle
daemon's CPU at 200 libraries). Tests may hand in an ``awatch`` of their own instead.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import structlog
import watchfiles

from daemon.local.marker import MARKER
from daemon.local.once import Once
from daemon.local.watch_hub import HUB, Restarted, undecodable_name

log = structlog.get_logger(__name__)

MIN_DEBOUNCE_S = 10.0
RUST_TIMEOUT_MS = 500
WATCH_LIMIT_HINT = (
    "raise the inotify limit, e.g. `sysctl fs.inotify.max_user_watches=524288` (persist it in "
    "/etc/sysctl.d/), then restart libmirror; until then changes are found by periodic rescans"
)

AwatchFn = Callable[..., AsyncIterator[set[tuple[watchfiles.Change, str]]]]


class WatcherUnavailable(Exception):
    """The watcher could not start or died; the library must rely on periodic rescans."""


def relative_path(root: Path, path: str) -> str | None:
    """``path`` as a library-relative ``/`` path, or None for the root itself, our own folder or outside."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return None
    parts = rel.parts
    if not parts or parts[0] == MARKER:
        return None
    return "/".join(parts)


_restart_once = Once()


def _is_watch_limit(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EMFILE):
        return True
    text = str(exc).lower()
    return "watch limit" in text or "max_user_watches" in text or "too many open files" in text


STEP_MS = 50


async def watch_changes(
    root: Path,
    settle: float,
    on_batch: Callable[[set[str]], None],
    *,
    awatch: AwatchFn | None = None,
) -> None:
    """Call ``on_batch`` with each set of changed library-relative paths, once the root was quiet for
    ``settle`` s (or every ``max(MIN_DEBOUNCE_S, 10 × settle)`` s while it never is).

    Runs until cancelled. Raises :class:`WatcherUnavailable` (after logging why and what to do) when
    the watcher cannot start or stops working. ``awatch`` (tests): a watchfiles-like ``awatch`` of this
    root alone instead of the shared hub.
    """
    root = Path(os.path.realpath(root))
    marker_dir = str(root / MARKER)
    max_wait = max(MIN_DEBOUNCE_S, settle * 10)

    def keep(_change: watchfiles.Change, path: str) -> bool:
        return not (path == marker_dir or path.startswith(marker_dir + os.sep))

    # the watch thread cannot be interrupted, only timed out: a short rust_timeout bounds how long a
    # cancelled watcher (shutdown, reload) keeps the task group waiting
    kwargs: dict[str, Any] = {
        "watch_filter": keep,
        "debounce": int(max_wait * 1000),
        "step": STEP_MS,
        "rust_timeout": RUST_TIMEOUT_MS,
    }
    send, receive = anyio.create_memory_object_stream[set[str]](max_buffer_size=math.inf)

    def restarted(reason: BaseException) -> None:
        if undecodable_name(reason):
            # watchfiles cannot hand over a name that is not UTF-8 and drops the whole batch: watch
            # again, and have the whole root looked at (the scanner skips such names)
            if _restart_once.first(str(root)):
                log.warning(
                    "watch_name_not_utf8",
                    root=str(root),
                    detail="a name that is not UTF-8 changed; the watcher restarted, the folder is rescanned",
                )
        else:  # a watcher shared with a root that failed started again: events of that moment may be lost
            log.info("watcher_restarted", root=str(root), reason=str(reason)[:200], next_step="the folder is rescanned")
        send.send_nowait({""})

    async def pump() -> None:
        with send:
            while True:
                try:
                    changes = HUB.changes(str(root)) if awatch is None else awatch(root, **kwargs)
                    async with aclosing(changes):  # type: ignore[type-var]  # an async generator either way
                        async for item in changes:
                            if isinstance(item, Restarted):
                                restarted(item.reason)
                                continue
                            batch = {rel for c, p in item if keep(c, p) and (rel := relative_path(root, p)) is not None}
                            if batch:
                                send.send_nowait(batch)
                    return
                except BaseException as exc:  # awatch raises it inside an exception group
                    if not undecodable_name(exc):
                        raise
                    restarted(exc)

    async def settle_and_hand_over() -> None:
        with receive:
            async for first in receive:
                pending, started = set(first), anyio.current_time()
                # more events keep the batch open until the folder is quiet for ``settle`` (or max_wait)
                while (left := started + max_wait - anyio.current_time()) > 0:
                    with anyio.move_on_after(min(settle, left)) as quiet:
                        try:
                            pending |= await receive.receive()
                        except anyio.EndOfStream:
                            break
                    if quiet.cancelled_caught:
                        break
                log.debug("watch_batch", paths=len(pending))
                on_batch(pending)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(settle_and_hand_over)
            await pump()
            tg.cancel_scope.cancel()
    except (OSError, RuntimeError) as exc:
        _log_unavailable(root, exc)
        raise WatcherUnavailable(str(exc)) from exc
    except BaseExceptionGroup as group:
        failure = next((e for e in group.exceptions if isinstance(e, OSError | RuntimeError)), None)
        if failure is None:
            raise
        _log_unavailable(root, failure)
        raise WatcherUnavailable(str(failure)) from failure


def _log_unavailable(root: Path, exc: BaseException) -> None:
    if _is_watch_limit(exc):
        log.error(
            "watcher_unavailable",
            root=str(root),
            error=str(exc),
            reason="the inotify watch limit (fs.inotify.max_user_watches) is reached",
            next_step=WATCH_LIMIT_HINT,
        )
    else:
        log.error(
            "watcher_unavailable",
            root=str(root),
            error=f"{type(exc).__name__}: {exc}",
            next_step="changes are found by periodic rescans; restart libmirror once the folder is back",
        )
