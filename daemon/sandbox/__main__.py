"""``python -m daemon.sandbox coredata --port 0 --data DIR [--seed N] [-o KEY=VALUE ...] [--fault KIND=RATE ...]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.sandbox import registry
from daemon.sandbox.faults import add_fault_arguments, plan_from_args
from daemon.sandbox.runner import serve


def parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.replace("-", "_"), value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.sandbox", description="Run a provider sandbox.")
    parser.add_argument("provider", choices=registry.names())
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--data", type=Path, required=True, help="state directory (created when missing)")
    parser.add_argument("--seed", type=int, default=0, help="fill a new DIR with N sample files")
    parser.add_argument(
        "-o", "--option", type=parse_option, action="append", default=[], help="backend option, e.g. presign_ttl=5"
    )
    add_fault_arguments(parser)
    args = parser.parse_args(argv)
    try:
        faults = plan_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return serve(args.provider, args.data, port=args.port, seed=args.seed, faults=faults, **dict(args.option))


if __name__ == "__main__":
    sys.exit(main())
