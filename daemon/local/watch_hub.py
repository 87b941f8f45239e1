"""One watchfiles watcher for many library roots: the daemon's libraries share their inotify watching.

A watcher per library cost a thread in watchfiles' Rust side, a worker thread waiting in it, and a
wake-up with the GIL every ``STEP_MS`` (to look for changes and for a stop request) per library: at
200 small libraries that was most of an idle daemon's CPU and about 0.6 MB of memory per library
(``make bench-many``). Here the roots that subscribe within ``COALESCE_S`` of each other share one
watcher (a *shard*: one ``watchfiles.watch`` over all of them, in one thread of its own), whose batches
are split by root and handed to each subscriber's event loop.

A shard is never rebuilt: a root added later (a library added on reload) gets a shard of its own, a
root that leaves is dropped from its shard, and a shard without subscribers stops. A shard that fails
(a root that vanished, the inotify watch limit) is split into one shard per root, so only the root
that cannot be watched reports the failure; the others are told to rescan (their events of that moment
may be lost), as after a name that is not UTF-8, which makes watchfiles drop its whole batch.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.from_thread
import anyio.lowlevel
import watchfiles
from anyio.streams.memory import MemoryObjectSendStream

COALESCE_S = 0.2
"""Roots subscribing within this long of each other share one watcher (the daemon starts its libraries
together)."""
STEP_MS = 50
"""How long the watcher waits for further events before handing a batch over (the settle rule is the
subscriber's own)."""
DEBOUNCE_MS = 500
"""The longest the watcher groups a stream of events: one busy root must not hold back another's."""
RUST_TIMEOUT_MS = 500

RawChanges = set[tuple[watchfiles.Change, str]]


class Restarted:
    """Handed to every subscriber of a watcher that had to start again: its events of that moment may
    be lost, the root is to be rescanned."""

    def __init__(self, reason: BaseException) -> None:
        self.reason = reason


Item = RawChanges | Restarted | BaseException


def undecodable_name(exc: BaseException) -> bool:
    """watchfiles' error for a changed path that is not valid UTF-8 (its Rust side cannot decode it)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return isinstance(exc, RuntimeError) and "decode path" in str(exc).lower()


@dataclass(eq=False)
class _Subscriber:
    root: str
    send: MemoryObjectSendStream[Item]
    token: anyio.lowlevel.EventLoopToken

    def deliver(self, item: Item) -> bool:
        """Hand ``item`` to the subscriber's event loop (from a watcher thread); False once it is gone."""
        try:
            anyio.from_thread.run_sync(self._put, item, token=self.token)
        except (RuntimeError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def _put(self, item: Item) -> None:
        self.send.send_nowait(item)


@dataclass(eq=False)
class _Shard:
    """One watcher over some roots, in a thread of its own, until its last subscriber leaves."""

    hub: WatchHub
    subscribers: dict[str, list[_Subscriber]]  # changed under the hub's lock only
    stop: threading.Event = field(default_factory=threading.Event)
    roots: tuple[str, ...] = ()  # what the watcher watches: the roots it started with, for its lifetime

    def __post_init__(self) -> None:
        self.roots = tuple(sorted(self.subscribers))

    def start(self) -> None:
        name = f"libmirror watch {', '.join(self.roots)}"[:120]
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        roots = self.roots
        while not self.stop.is_set():
            try:
                for changes in watchfiles.watch(
                    *roots,
                    watch_filter=None,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=self.stop,
                    rust_timeout=RUST_TIMEOUT_MS,
                    raise_interrupt=False,
                ):
                    self.hub.dispatch(self, changes)
                return
            except Exception as exc:
                if undecodable_name(exc):  # the batch is lost: watch again, and have every root rescanned
                    self.hub.broadcast(self, Restarted(exc))
                    continue
                self.hub.failed(self, exc)
                return


class WatchHub:
    """Subscriptions to changes under library roots, served by as few watchers as the roots allow."""

    def __init__(self, coalesce_s: float = COALESCE_S) -> None:
        self.coalesce_s = coalesce_s
        self._lock = threading.Lock()
        self._shards: list[_Shard] = []
        self._pending: dict[str, list[_Subscriber]] = {}

    async def changes(self, root: str) -> AsyncIterator[RawChanges | Restarted]:
        """The raw watchfiles batches under ``root`` (a real path), until the caller stops iterating.

        Raises what the watcher failed with (``OSError``: a missing root, the watch limit...).
        """
        if not os.path.isdir(root):
            raise FileNotFoundError(f"cannot watch {root}: not a folder")
        send, receive = anyio.create_memory_object_stream[Item](max_buffer_size=math.inf)
        subscriber = _Subscriber(root, send, anyio.lowlevel.current_token())
        self._subscribe(subscriber)
        try:
            with receive:
                async for item in receive:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            self._unsubscribe(subscriber)
            send.close()

    # -- bookkeeping (under the lock: subscribers live in event loops, shards in their own threads) --

    def _subscribe(self, subscriber: _Subscriber) -> None:
        with self._lock:
            first = not self._pending
            self._pending.setdefault(subscriber.root, []).append(subscriber)
        if first:
            threading.Thread(target=self._start_pending, name="libmirror watch start", daemon=True).start()

    def _start_pending(self) -> None:
        time.sleep(self.coalesce_s)
        with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            shard = _Shard(self, pending)
            self._shards.append(shard)
        shard.start()

    def _unsubscribe(self, subscriber: _Subscriber) -> None:
        with self._lock:
            waiting = self._pending.get(subscriber.root, [])
            if subscriber in waiting:
                waiting.remove(subscriber)
                if not waiting:
                    del self._pending[subscriber.root]
                return
            for shard in self._shards:
                subs = shard.subscribers.get(subscriber.root, [])
                if subscriber in subs:
                    subs.remove(subscriber)
                    if not subs:
                        del shard.subscribers[subscriber.root]
                    if not shard.subscribers:
                        shard.stop.set()
                        self._shards.remove(shard)
                    return

    def _targets(self, shard: _Shard) -> dict[str, list[_Subscriber]]:
        with self._lock:
            return {root: list(subs) for root, subs in shard.subscribers.items()}

    def dispatch(self, shard: _Shard, changes: RawChanges) -> None:
        """Split a batch by root and hand each part to the root's subscribers."""
        targets = self._targets(shard)
        parts: dict[str, RawChanges] = {}
        for change, path in changes:
            root = _owner(path, targets)
            if root is not None:
                parts.setdefault(root, set()).add((change, path))
        for root, part in parts.items():
            for subscriber in targets[root]:
                if not subscriber.deliver(part):
                    self._unsubscribe(subscriber)

    def broadcast(self, shard: _Shard, item: Item) -> None:
        for subs in self._targets(shard).values():
            for subscriber in subs:
                if not subscriber.deliver(item):
                    self._unsubscribe(subscriber)

    def failed(self, shard: _Shard, exc: BaseException) -> None:
        """A shard of one root reports the failure; a larger one is split, one shard per root."""
        with self._lock:
            if shard in self._shards:
                self._shards.remove(shard)
            roots = dict(shard.subscribers)
            alone = len(roots) == 1 or shard.stop.is_set()
            parts = [] if alone else [_Shard(self, {root: subs}) for root, subs in roots.items()]
            self._shards.extend(parts)
        if alone:
            for subs in roots.values():
                for subscriber in subs:
                    subscriber.deliver(exc)
            return
        for part in parts:
            for subscriber in next(iter(part.subscribers.values())):
                subscriber.deliver(Restarted(exc))
            part.start()


def _owner(path: str, roots: dict[str, list[_Subscriber]]) -> str | None:
    """The watched root ``path`` lies under (roots never nest: the config refuses it)."""
    current = path
    while True:
        if current in roots:
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


HUB = WatchHub()
"""The daemon's one hub: every library's watcher subscribes here."""
