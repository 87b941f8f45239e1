"""What the TOML configuration reads into: frozen typed dataclasses, and the error listing every problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.bandwidth import NO_LIMIT, Schedule
from daemon.providers.settings import RemoteConfig
from daemon.providers.settings_reader import ConfigIssue
from daemon.vocab import Direction


class ConfigError(Exception):
    """The configuration cannot be used. ``issues`` lists every problem found in one pass."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class LibraryConfig:
    """One ``[[library]]``: a local folder mirrored with one remote container."""

    name: str
    provider: str
    local_path: Path
    remote: RemoteConfig
    direction: Direction = Direction.TWO_WAY
    max_delete_percent: float = 50.0
    max_delete_count: int = 500
    max_overwrite_percent: float = 50.0
    max_overwrite_count: int = 500
    ignore: tuple[str, ...] = ()
    trash_days: int = 30
    concurrency: int = 16
    poll_interval: float = 30.0
    full_scan_interval: float = 3600.0
    settle: float = 1.0
    local_rescan_interval: float = 3600.0
    propagate_deletes: bool = True
    filesystem: str = "auto"  # auto | network | local: whether rescans run beside the watcher
    network_rescan_interval: float = 120.0
    bwlimit: Schedule = NO_LIMIT


@dataclass(frozen=True)
class Config:
    """The whole file. ``path`` is absolute; every path inside is absolute too."""

    path: Path
    state_dir: Path
    log_level: str
    allow_root: bool
    libraries: tuple[LibraryConfig, ...]
    stop_timeout: float = 30.0
    metrics_listen: str = ""  # HOST:PORT of the /metrics endpoint of `run`; "" = none
    bwlimit: Schedule = NO_LIMIT

    def library(self, name: str) -> LibraryConfig:
        """The library called ``name``; ``KeyError`` when there is none."""
        for lib in self.libraries:
            if lib.name == name:
                return lib
        raise KeyError(name)


__all__ = ["Config", "ConfigError", "Direction", "LibraryConfig"]
