"""The rooms of ``daemon/`` import downward only: a room may import its own modules and the rooms on
its floor or below, never a room above it. The order is written once, here, bottom to top."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DAEMON = Path(__file__).resolve().parent.parent / "daemon"

ORDER: tuple[tuple[str, ...], ...] = (
    ("vocab",),
    ("logs", "secrets", "sdnotify", "control", "exit_codes", "health", "example_config"),
    ("local", "state", "metrics", "bandwidth"),
    ("providers",),
    ("config",),
    ("sync",),
    ("gate_release", "pause", "status", "service"),
    ("sandbox",),
    ("demo", "cli", "progress_display"),
)
"""Floors, bottom to top. A room imports rooms of its own floor or below."""

ONLY: dict[str, frozenset[str]] = {"sandbox": frozenset({"vocab", "logs"})}
"""Rooms that may import no more than these other rooms, whatever their floor (the sandbox stands in
for the servers: it must not share the engine's code)."""

KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()
"""(importing module, imported module) pairs that point upward and are known, each with its reason."""

FLOOR = {room: floor for floor, rooms in enumerate(ORDER) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(DAEMON.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str | None:
    """``daemon.sync.plan`` -> ``sync``; the package ``daemon`` itself belongs to no room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imported(module: str, path: Path) -> list[str]:
    """Every module ``path`` imports (at any depth: function bodies and TYPE_CHECKING blocks count)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(DAEMON.rglob("*.py"))}


def test_every_room_has_a_floor() -> None:
    rooms = {room for module in modules() if (room := room_of(module)) is not None}
    assert sorted(rooms - FLOOR.keys()) == [], "place each new room of daemon/ in ORDER"
    assert sorted(FLOOR.keys() - rooms) == [], "ORDER names a room daemon/ no longer has"


def test_no_room_imports_a_room_above_it() -> None:
    upward: set[tuple[str, str]] = set()
    for module, path in modules().items():
        room = room_of(module)
        if room is None:
            continue
        for target in imported(module, path):
            target_room = room_of(target) if target.startswith("daemon.") else None
            if target_room is None or target_room == room:
                continue
            allowed = ONLY.get(room)
            if FLOOR[target_room] > FLOOR[room] or (allowed is not None and target_room not in allowed):
                upward.add((module, target))
    unknown = sorted(upward - KNOWN_UPWARD)
    assert unknown == [], "imports against the room order (move the shared part into daemon/vocab):\n" + "\n".join(
        f"  {module} ({room_of(module)}) imports {target} ({room_of(target)})" for module, target in unknown
    )
    assert sorted(KNOWN_UPWARD - upward) == [], "a known upward import is gone: remove its KNOWN_UPWARD entry"


def test_vocabulary_imports_only_the_standard_library() -> None:
    foreign: list[str] = []
    for module, path in modules().items():
        if room_of(module) != "vocab":
            continue
        for target in imported(module, path):
            top = target.partition(".")[0]
            if top != "__future__" and top not in sys.stdlib_module_names and not target.startswith("daemon.vocab"):
                foreign.append(f"{module} imports {target}")
    assert foreign == []
