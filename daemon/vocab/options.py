"""Library settings the planner reads: which way a library syncs and what its provider can do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    TWO_WAY = "two-way"
    PULL = "pull"
    PUSH = "push"


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Library settings that change what the planner decides."""

    direction: Direction = Direction.TWO_WAY
    propagate_deletes: bool = True  # False: a local delete never deletes remotely
    can_move_remote: bool = True  # provider renames/moves files in one call
    can_update_remote: bool = True  # provider replaces content in place
    has_remote_dirs: bool = True  # provider has folders we can create
    can_move_remote_dir: bool = False  # provider renames/moves a folder (with its contents) in one call
