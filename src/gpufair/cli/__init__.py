"""The ``gpufair`` command line: one entry point that runs every component and tool.

Subcommands import their implementation lazily, so ``gpufair topology parse`` does not pay for
importing kopf, FastAPI or matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gpufair import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpufair",
        description="Fair, topology-aware sharing of a Kubernetes GPU fleet.",
    )
    parser.add_argument("--version", action="version", version=f"gpufair {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser("demo", help="run the local demo cluster")
    demo.set_defaults(handler=_not_yet_available)
    return parser


def _not_yet_available(args: argparse.Namespace) -> int:
    print(f"gpufair {args.command}: not yet available", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result
