"""The shared vocabulary at the bottom of the import order: rows of the three trees, plan options,
actions, remote items and capabilities, provider errors. Imports nothing of ours but itself, so every
room can speak it without depending on a room above its own."""

from daemon.vocab.actions import DESTRUCTIVE_LOCAL, DESTRUCTIVE_REMOTE, Action, ActionKind
from daemon.vocab.errors import (
    AuthError,
    DigestMismatch,
    InvalidResponse,
    NotFound,
    PreconditionFailed,
    ProviderError,
    TransientError,
    Unsupported,
)
from daemon.vocab.options import Direction, PlanOptions
from daemon.vocab.remote import Capabilities, RemoteItem
from daemon.vocab.rows import Known, KnownLocal, LocalRow, PathState, RemoteRow, SyncedRow

__all__ = [
    "DESTRUCTIVE_LOCAL",
    "DESTRUCTIVE_REMOTE",
    "Action",
    "ActionKind",
    "AuthError",
    "Capabilities",
    "DigestMismatch",
    "Direction",
    "InvalidResponse",
    "Known",
    "KnownLocal",
    "LocalRow",
    "NotFound",
    "PathState",
    "PlanOptions",
    "PreconditionFailed",
    "ProviderError",
    "RemoteItem",
    "RemoteRow",
    "SyncedRow",
    "TransientError",
    "Unsupported",
]
