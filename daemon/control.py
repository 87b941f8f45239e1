"""Operator requests to the running daemon: small files under ``state_dir/control/``.

The daemon holds the state store's writer lock for its whole life, so a command run beside it must not
write the store. It leaves a request file here instead; the library's next pass (within one poll
interval: a library with a held gate plans on every poll) reads it, acts on it and removes it. A request
names exactly what it applies to, so a stale one can never let something else through: a gate release
carries the text of the gate it releases, and only a pass held by that same gate (same reasons, same
counts) takes it.

A pause (``libmirror pause``) is a state, not a request: the runner and ``sync`` check it before every
pass and leave it in place; only ``libmirror resume`` removes it, so it survives restarts.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

CONTROL_DIR = "control"


@dataclass(frozen=True)
class Release:
    """``libmirror release-gate LIBRARY``: let the changes held by ``gate`` through, once."""

    gate: str
    requested_at: str
    pid: int


@dataclass(frozen=True)
class Pause:
    """``libmirror pause LIBRARY``: the daemon runs no pass of the library until ``resume`` removes it.
    Unlike a release it is not taken by a pass: it stays (across restarts) until resumed."""

    requested_at: str
    pid: int


class ControlDir:
    """The request files of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / CONTROL_DIR

    def _file(self, library: str, kind: str) -> Path:
        return self.path / f"{kind}.{quote(library, safe='')}.json"

    def request_release(self, library: str, gate: str) -> Path:
        """Write the release request atomically (temp file + rename, mode 0600); returns its path."""
        return self._write(library, "release", {"gate": gate})

    def request_pause(self, library: str) -> Path:
        """Pause ``library`` (a no-op when it is paused already: the first pause's time is kept)."""
        target = self._file(library, "pause")
        return target if self.pause(library) is not None else self._write(library, "pause", {})

    def pause(self, library: str) -> Pause | None:
        """The pause of ``library``; None when it is not paused. A pause file that cannot be parsed
        still pauses (the operator asked for it); its time reads as unknown."""
        target = self._file(library, "pause")
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            return Pause("unknown", 0)
        try:
            data = json.loads(text)
            return Pause(str(data["requested_at"]), int(data.get("pid", 0)))
        except (ValueError, KeyError, TypeError):
            return Pause("unknown", 0)

    def clear_pause(self, library: str) -> bool:
        """Resume ``library``; returns whether it was paused."""
        try:
            self._file(library, "pause").unlink()
        except FileNotFoundError:
            return False
        return True

    def _write(self, library: str, kind: str, fields: dict[str, str]) -> Path:
        """One request file, written atomically (temp file + fsync + rename, mode 0600)."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps(
            {
                **fields,
                "requested_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                "pid": os.getpid(),
            }
        )
        target = self._file(library, kind)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{kind}-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def release(self, library: str) -> Release | None:
        """The pending release of ``library``; None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self._file(library, "release").read_text(encoding="utf-8"))
            return Release(str(data["gate"]), str(data.get("requested_at", "")), int(data.get("pid", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def clear_release(self, library: str, seen: Release) -> None:
        """Remove the request the pass acted on, unless a newer one replaced it meanwhile."""
        if self.release(library) == seen:
            self._file(library, "release").unlink(missing_ok=True)
