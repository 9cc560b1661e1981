"""``gpufair demo``: the local demo cluster (see the e2e issue); a placeholder until it lands."""

from __future__ import annotations

import argparse
import sys


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("demo", help="run the local demo cluster")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(f"gpufair {args.command}: not yet available", file=sys.stderr)
    return 0
