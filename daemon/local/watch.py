"""Filesystem watching for one library root: batches of changed library-relative paths.

watchfiles (inotify on Linux) already groups events: it returns once nothing changed for ``step``
milliseconds, or after ``debounce`` milliseconds of continuous change. We use ``step = settle`` so a
batch arrives when the folder has been quiet for ``settle`` seconds, which is exactly the issue's
"batched until quiet" rule, and a longer ``debounce`` so a folder that never goes quiet (a big copy)
still yields now and then.

Events under ``ROOT/.libmirror/`` are dropped here: that is where the daemon's own temp downloads and
trash moves happen. The daemon's other writes (a download renamed into place, a conflict copy) do
reach the batch, but the executor has already recorded them in the local tree, so observing them
finds nothing changed and nothing bounces back as an upload.

When the watcher cannot start (typically the inotify watch limit), :class:`WatcherUnavailable` is
raised after an error naming ``fs.inotify.max_user_watches``; the caller falls back to rescans.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
import watchfiles

from daemon.local.marker import MARKER

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


def _is_watch_limit(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EMFILE):
        return True
    text = str(exc).lower()
    return "watch limit" in text or "max_user_watches" in text or "too many open files" in text


async def watch_changes(
    root: Path,
    settle: float,
    *,
    awatch: AwatchFn = watchfiles.awatch,
) -> AsyncIterator[set[str]]:
    """Yield sets of changed library-relative paths, each once the root was quiet for ``settle`` s.

    Runs until cancelled. Raises :class:`WatcherUnavailable` (after logging why and what to do) when
    the watcher cannot start or stops working.
    """
    root = Path(os.path.realpath(root))
    marker_dir = str(root / MARKER)

    def keep(_change: watchfiles.Change, path: str) -> bool:
        return not (path == marker_dir or path.startswith(marker_dir + os.sep))

    step_ms = max(50, int(settle * 1000))
    debounce_ms = max(int(MIN_DEBOUNCE_S * 1000), step_ms * 10)
    # the watch thread cannot be interrupted, only timed out: a short rust_timeout bounds how long a
    # cancelled watcher (shutdown, reload) keeps the task group waiting
    kwargs: dict[str, Any] = {
        "watch_filter": keep,
        "debounce": debounce_ms,
        "step": step_ms,
        "rust_timeout": RUST_TIMEOUT_MS,
    }
    try:
        async for changes in awatch(root, **kwargs):
            batch = {rel for _, p in changes if (rel := relative_path(root, p)) is not None}
            if batch:
                log.debug("watch_batch", paths=len(batch))
                yield batch
    except (OSError, RuntimeError) as exc:
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
        raise WatcherUnavailable(str(exc)) from exc
