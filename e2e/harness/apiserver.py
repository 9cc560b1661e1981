"""Start the stand-in API server as a process: :mod:`gpufair.demo.standin` (shared with
``gpufair demo``), run from this checkout. Re-exported here for the e2e suite."""

from __future__ import annotations

import pathlib

from e2e.harness import processes
from gpufair.demo import standin as _standin
from gpufair.demo.standin import StandInServer

__all__ = ["StandInServer", "start"]


AUDIT_LOG = "audit.jsonl"
"""The file in the stand-in's workdir where it records who made which call."""


def start(*, workdir: pathlib.Path, kubelet: bool = True, timeout: float = 20.0) -> StandInServer:
    """Start ``python -m e2e.standin`` on a free port; returns once ``/readyz`` answers.

    It records every distinct call per identity in ``workdir/audit.jsonl`` (``server.audit_log``):
    the evidence ``e2e/test_rbac_least_privilege.py`` checks the chart's RBAC against."""
    return _standin.start(
        workdir=workdir,
        repo_root=processes.REPO_ROOT,
        kubelet=kubelet,
        timeout=timeout,
        audit_log=workdir / AUDIT_LOG,
    )
