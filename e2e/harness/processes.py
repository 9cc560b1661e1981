"""Subprocesses with readiness, log files, SIGTERM-then-SIGKILL and restart live in the stand-in
cluster package, shared with ``gpufair demo``: :mod:`gpufair.standin.processes`. The e2e suite
starts them here, from the repository root by default (its scenarios read ``operator/``,
``crds/`` and ``e2e/operators/`` by relative path)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

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


def start(
    argv: Sequence[str],
    *,
    name: str,
    log_dir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    ready_log: str | None = None,
    ready_timeout: float = 30.0,
    cwd: pathlib.Path | None = None,
) -> Component:
    """:func:`gpufair.standin.processes.start`, run from the repository root by default."""
    return _processes.start(
        argv,
        name=name,
        log_dir=log_dir,
        env=env,
        ready_url=ready_url,
        ready_log=ready_log,
        ready_timeout=ready_timeout,
        cwd=cwd or REPO_ROOT,
    )
