"""Random trees, random edits on both sides, plan + simulated executor until nothing is left.

Checks termination, convergence, that no version is lost, and that planning again yields nothing
(two-way); PULL and PUSH runs check the weaker promises of one-way libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sync.plan import plan
from daemon.vocab import ActionKind, Direction, PlanOptions
from tests.sync.simulated import Tree, World, parents, run_until_stable

DIRS = ["d1", "d2", "d1/d3"]
NAMES = ["f1.txt", "f2.txt", "f3", "d2", "d4"]  # "d2", "d4": file names that are folder names elsewhere (kind clashes)
OPS = ["edit", "edit_same", "create", "create_same", "delete", "rmdir", "mkdir", "move", "move_dir"]
DIR_SLOTS = [*DIRS, "d4", "d2/d5"]  # where a moved folder may land
SIDES = ["local", "remote"]
MAX_ROUNDS = 6


@dataclass
class Scenario:
    base: Tree
    ops: list[tuple[str, str, int, int]]
    has_digest: bool


@st.composite
def scenarios(draw: st.DrawFn, *, dir_move_first: bool = False) -> Scenario:
    drawn = draw(st.sets(st.sampled_from(DIRS), min_size=1 if dir_move_first else 0))
    dirs = {d for d in drawn if all(p in DIRS for p in parents(d))}
    dirs = {d for d in dirs if all(p in dirs for p in parents(d))}
    slots = sorted(p for p in [*NAMES, *(f"{d}/{n}" for d in dirs for n in NAMES)] if p not in dirs)
    files = draw(st.sets(st.sampled_from(slots), max_size=6))
    base: Tree = dict.fromkeys(dirs)
    for i, path in enumerate(sorted(files)):
        base[path] = f"base-{i}".encode()
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(OPS), st.sampled_from(SIDES), st.integers(0, 63), st.integers(0, 63)),
            min_size=1,
            max_size=6,
        )
    )
    if dir_move_first:
        side = draw(st.sampled_from(SIDES))
        ops.insert(0, ("move_dir", side, draw(st.integers(0, 63)), draw(st.integers(0, 63))))
    return Scenario(base, ops, draw(st.booleans()))


class Perturber:
    """Applies user edits to one world; every new content is unique, so a digest names one version."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.n = 0

    def content(self) -> bytes:
        self.n += 1
        return f"edit-{self.n}".encode()

    def tree(self, side: str) -> Tree:
        return self.world.contents()[0 if side == "local" else 1]

    def files(self, side: str) -> list[str]:
        return sorted(p for p, c in self.tree(side).items() if c is not None)

    def free_slots(self, side: str) -> list[str]:
        tree = self.tree(side)
        dirs = ["", *sorted(p for p, c in tree.items() if c is None)]
        slots = [f"{d}/{n}" if d else n for d in dirs for n in NAMES]
        return [s for s in slots if s not in tree]

    def write(self, side: str, path: str, content: bytes | None) -> None:
        if side == "local":
            self.world.local_write(path, content)
        else:
            self.world.remote_write(path, content)

    def apply(self, op: str, side: str, i: int, j: int) -> None:
        w = self.world
        if op == "edit":
            files = self.files(side)
            if files:
                self.write(side, files[i % len(files)], self.content())
        elif op == "edit_same":
            both = sorted(set(self.files("local")) & set(self.files("remote")))
            if both:
                path, content = both[i % len(both)], self.content()
                self.write("local", path, content)
                self.write("remote", path, content)
        elif op in ("create", "create_same"):
            free = self.free_slots(side)
            if op == "create_same":
                free = sorted(set(free) & set(self.free_slots("local")) & set(self.free_slots("remote")))
                free = [p for p in free if all(w.local.get(q, None) is None for q in parents(p))]
            if free:
                path, content = free[i % len(free)], self.content()
                for s in ["local", "remote"] if op == "create_same" else [side]:
                    self.write(s, path, content)
        elif op == "delete":
            files = self.files(side)
            if files:
                (w.local_delete if side == "local" else w.remote_delete)(files[i % len(files)])
        elif op == "rmdir":
            dirs = sorted(p for p, c in self.tree(side).items() if c is None)
            if dirs:
                (w.local_delete if side == "local" else w.remote_delete)(dirs[i % len(dirs)])
        elif op == "mkdir":
            tree = self.tree(side)
            new = [d for d in DIRS if d not in tree and all(tree.get(p, b"") is None for p in parents(d))]
            if new:
                self.write(side, new[i % len(new)], None)
        elif op == "move":
            files, free = self.files(side), self.free_slots(side)
            if files and free:
                src, dst = files[i % len(files)], free[j % len(free)]
                (w.local_move if side == "local" else w.remote_move)(src, dst)
        elif op == "move_dir":
            tree = self.tree(side)
            dirs = sorted(p for p, c in tree.items() if c is None)
            if dirs:
                src = dirs[i % len(dirs)]
                free = [
                    d
                    for d in DIR_SLOTS
                    if d not in tree
                    and not (d + "/").startswith(src + "/")
                    and all(tree.get(p, b"") is None for p in parents(d))
                ]
                if free:
                    (w.local_move if side == "local" else w.remote_move)(src, free[j % len(free)])


def prepare(scenario: Scenario) -> tuple[World, Tree, Tree]:
    world = World.in_sync(scenario.base, has_digest=scenario.has_digest)
    perturber = Perturber(world)
    for op in scenario.ops:
        perturber.apply(*op)
    local, remote = world.contents()
    return world, local, remote


def file_contents(*trees: Tree) -> set[bytes]:
    return {c for tree in trees for c in tree.values() if c is not None}


def assert_nothing_lost(world: World, start_local: Tree, start_remote: Tree, base: Tree) -> None:
    end_local, end_remote = world.contents()
    kept = file_contents(end_local, end_remote) | set(world.trash)
    base_contents = file_contents(base)
    # Local content is only ever moved, uploaded or trashed: all of it survives.
    assert file_contents(start_local) <= kept
    # The remote only ever loses content that was synced and that the user replaced or deleted locally.
    assert set(world.remote_retired) <= base_contents
    assert file_contents(start_remote) - base_contents <= kept


def covered(path: str, skipped: set[str]) -> bool:
    """A SKIP of a folder (a folder move that cannot be made) stands for everything under it."""
    return path in skipped or any(p in skipped for p in parents(path))


def differing(world: World) -> set[str]:
    local, remote = world.contents()
    return {p for p in set(local) | set(remote) if local.get(p, b"<absent>") != remote.get(p, b"<absent>")}


@settings(max_examples=500, deadline=None)
@given(scenarios(), st.booleans(), st.booleans(), st.booleans())
def test_two_way_converges_without_loss(scenario: Scenario, can_move: bool, can_update: bool, move_dirs: bool) -> None:
    options = PlanOptions(can_move_remote=can_move, can_update_remote=can_update, can_move_remote_dir=move_dirs)
    world, start_local, start_remote = prepare(scenario)

    rounds = run_until_stable(world, options, max_rounds=MAX_ROUNDS + 1)

    assert rounds <= MAX_ROUNDS
    local, remote = world.contents()
    assert local == remote
    assert_nothing_lost(world, start_local, start_remote, scenario.base)
    assert plan(world.states(), options, now_label="2024-05-02 000000") == []


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_pull_never_touches_the_remote(scenario: Scenario) -> None:
    options = PlanOptions(direction=Direction.PULL, can_move_remote_dir=True)
    world, start_local, start_remote = prepare(scenario)
    remote_before = {p: (o.remote_id, o.content, o.version) for p, o in world.remote.items()}

    rounds = run_until_stable(world, options, max_rounds=MAX_ROUNDS + 1)

    assert rounds <= MAX_ROUNDS
    assert {p: (o.remote_id, o.content, o.version) for p, o in world.remote.items()} == remote_before
    assert world.remote_retired == []
    assert_nothing_lost(world, start_local, start_remote, scenario.base)
    final = plan(world.states(), options, now_label="2024-05-02 000000")
    assert all(a.kind is ActionKind.SKIP for a in final)
    skipped = {a.path for a in final}
    assert {p for p in differing(world) if not covered(p, skipped)} == set()


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_push_never_touches_the_local_tree(scenario: Scenario) -> None:
    options = PlanOptions(direction=Direction.PUSH, can_move_remote_dir=True)
    world, start_local, start_remote = prepare(scenario)

    rounds = run_until_stable(world, options, max_rounds=MAX_ROUNDS + 1)

    assert rounds <= MAX_ROUNDS
    assert world.contents()[0] == start_local
    assert world.trash == []
    assert_nothing_lost(world, start_local, start_remote, scenario.base)
    final = plan(world.states(), options, now_label="2024-05-02 000000")
    assert all(a.kind is ActionKind.SKIP for a in final)
    skipped = {a.path for a in final}
    assert {p for p in differing(world) if not covered(p, skipped)} == set()


@settings(max_examples=300, deadline=None)
@given(scenarios(dir_move_first=True), st.booleans())
def test_folder_moves_converge_without_loss(scenario: Scenario, move_dirs: bool) -> None:
    """A folder renamed on one side (plus random edits) ends with both sides equal, nothing lost."""
    options = PlanOptions(can_move_remote_dir=move_dirs)
    world, start_local, start_remote = prepare(scenario)

    rounds = run_until_stable(world, options, max_rounds=MAX_ROUNDS + 1)

    assert rounds <= MAX_ROUNDS
    local, remote = world.contents()
    assert local == remote
    assert_nothing_lost(world, start_local, start_remote, scenario.base)
    assert plan(world.states(), options, now_label="2024-05-02 000000") == []
