"""The failures a ``gpufair`` command reports as one line on stderr, and their exit codes.

A subcommand raises :class:`UsageError` (exit 2: a bad flag, file, setting or input) or
:class:`RuntimeFailureError` (exit 1: the cluster cannot be reached, a port is taken); the CLI's
``main`` alone prints them, as ``gpufair COMMAND: message``. The message says what to do,
so a user never reads a traceback to find out which flag, file or ``GPUFAIR_*`` variable
was wrong. This module imports nothing heavy: every command imports it.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import pydantic

ENV_PREFIX = "GPUFAIR_"


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI reports as one line; the message says what to do."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(CliError):
    """Bad flags, a missing or unreadable file, invalid input or settings (exit 2)."""

    exit_code = ExitCode.USAGE


class RuntimeFailureError(CliError):
    """Valid input, but the command could not do its work: no cluster, a port in use (exit 1)."""

    exit_code = ExitCode.FAILURE


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ending in where to find help, not the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(ExitCode.USAGE), f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def report(command: str, error: CliError) -> int:
    """Print ``error`` as one line for ``gpufair COMMAND`` and return its exit code."""
    print(f"gpufair {command}: {one_line(str(error))}", file=sys.stderr)
    return int(error.exit_code)


def os_error_text(error: OSError) -> str:
    """``PATH: reason`` for a file error, the reason alone otherwise (no ``[Errno N]``)."""
    reason = (error.strerror or str(error)).lower()
    return f"{error.filename}: {reason}" if error.filename is not None else reason


def invalid_settings(error: pydantic.ValidationError, *, flags: Mapping[str, str]) -> UsageError:
    """One line naming each bad setting by its flag (``flags``: field -> flag) and variable.

    ``gpufair operator: invalid setting tick_seconds (--tick or GPUFAIR_TICK_SECONDS):
    Input should be a valid number, got 'abc'``.
    """
    problems = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"]) or "settings"
        sources = [flags[field]] if field in flags else []
        sources.append(ENV_PREFIX + field.upper())
        given = f", got {detail['input']!r}" if "input" in detail and field != "settings" else ""
        reason = detail["msg"].removeprefix("Value error, ")
        problems.append(f"invalid setting {field} ({' or '.join(sources)}): {reason}{given}")
    return UsageError("; ".join(problems))


def one_line(text: str) -> str:
    """``text`` with line breaks folded, so a message can never take two lines."""
    return " ".join(text.split())
