"""Paged listings that never take a partial listing for a whole one (DESIGN rule 4).

Offset (or page-number) paging under concurrent change can skip rows, so a walk that sees the
server's total count move starts over; consumers treat items as upserts keyed by id, since pages
already handed on may come again. A page whose position was already read is a paging loop and fails
the walk. Providers say only how to read one page of their API (``Page``); the rules live here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from daemon.vocab import InvalidResponse

log = structlog.get_logger(__name__)

MAX_WALK_RESTARTS = 3

T = TypeVar("T")
L = TypeVar("L")


@dataclass(frozen=True, slots=True)
class NextPage(Generic[L]):
    """The page to read next: its ``link``, its position ``key`` (None: unknown, not checked for a
    loop) and how an error message names that position (``shown``)."""

    link: L
    key: str | None
    shown: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T, L]):
    """One page as the provider read it: its ``items``, the server's ``total`` for the whole listing,
    its position ``key`` (offset, page number), and ``follow`` which finds the next page; ``follow`` is
    called only after the items were handed on, so a bad next link fails the walk after them."""

    items: list[T]
    total: int
    key: str
    follow: Callable[[], NextPage[L] | None]


@dataclass(frozen=True, slots=True)
class Walk(Generic[T, L]):
    """How to walk one API's listings: ``read`` one page at a link; ``path_of`` a link for log lines and
    messages, which name the listing ``kind`` (``"listing"``) and positions by ``unit`` (``"offset"``)."""

    read: Callable[[L], Awaitable[Page[T, L]]]
    path_of: Callable[[L], str]
    kind: str
    unit: str


class TotalMoved(Exception):
    """The server's total changed during a walk (already logged as ``listing_restarted``)."""


async def walk_once(walk: Walk[T, L], first: L) -> AsyncIterator[list[T]]:
    """The items of every page from ``first`` on, in pages; ``TotalMoved`` when the total moves."""
    link: L | None = first
    total: int | None = None
    visited: set[str] = set()
    while link is not None:
        page = await walk.read(link)
        where = walk.path_of(link)
        if total is None:
            total = page.total
        elif page.total != total:
            log.info("listing_restarted", path=where, was=total, now=page.total)
            raise TotalMoved(where)
        if page.key in visited:
            raise InvalidResponse(f"{walk.kind} {where} loops back to {walk.unit} {page.key}")
        visited.add(page.key)
        yield page.items
        nxt = page.follow()
        if nxt is not None and nxt.key is not None and nxt.key in visited:
            raise InvalidResponse(f"{walk.kind} {where} loops back to {walk.unit} {nxt.shown}")
        link = None if nxt is None else nxt.link


async def restarting_walk(walk: Walk[T, L], first: L, *, restarts: int = MAX_WALK_RESTARTS) -> AsyncIterator[list[T]]:
    """``walk_once``, started over (at most ``restarts`` times) whenever the total moves."""
    for _restart in range(restarts + 1):
        try:
            async for items in walk_once(walk, first):
                yield items
        except TotalMoved:
            continue
        return
    raise InvalidResponse(f"{walk.kind} {walk.path_of(first)} kept changing size; gave up after {restarts} restarts")
