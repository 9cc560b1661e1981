"""Subprocesses with readiness, log files, SIGTERM-then-SIGKILL and restart live in the stand-in
cluster package, shared with ``gpufair demo``: :mod:`gpufair.standin.processes`. The e2e suite
starts them here, from the repository root by default (its scenarios read ``operator/``,
``crds/`` and ``e2e/operators/`` by relative path)."""

from __future__ import annotations

import functools
import pathlib

from gpufair.standin import processes as _processes
from gpufair.standin.processes import Component, ComponentError, free_port, gpufair_command, tail

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

__all__ = [
    "REPO_ROOT",
    "Component",
    "ComponentError",
    "free_port",
    "gpufair_command",
    "start",
    "tail",
]


start = functools.partial(_processes.start, cwd=REPO_ROOT)
""":func:`gpufair.standin.processes.start`, run from the repository root unless ``cwd=`` says
otherwise."""
