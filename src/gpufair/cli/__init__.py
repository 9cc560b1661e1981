"""The ``gpufair`` command line: one entry point that runs every component and tool.

Each subcommand lives in its own module of this package and exposes
``register(commands: argparse._SubParsersAction) -> None``, which adds its parser and sets
``handler`` to a function ``(argparse.Namespace) -> int``. Handlers import their implementation
lazily, so ``gpufair topology parse`` does not pay for importing kopf, FastAPI or matplotlib.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input (as argparse does).
Every failure is one line on stderr saying what to do: handlers raise the errors of
:mod:`gpufair.cli.errors` and :func:`main` alone prints them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gpufair import __version__
from gpufair.cli import errors

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "gpufair.cli.demo",
    "gpufair.cli.topology",
    "gpufair.cli.agent",
    "gpufair.cli.crds",
    "gpufair.cli.whatif",
    "gpufair.cli.simulate",
    "gpufair.cli.operator",
    "gpufair.cli.extender",
    "gpufair.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = errors.OneLineParser(
        prog="gpufair",
        description="Fair, topology-aware sharing of a Kubernetes GPU fleet.",
    )
    parser.add_argument("--version", action="version", version=f"gpufair {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        print("gpufair: interrupted", file=sys.stderr)
        return int(errors.ExitCode.INTERRUPTED)
    except errors.CliError as error:
        return errors.report(args.command, error)
    except OSError as error:  # a file or socket the command was given: say which, no traceback
        return errors.report(args.command, errors.RuntimeFailureError(errors.os_error_text(error)))
    return result
