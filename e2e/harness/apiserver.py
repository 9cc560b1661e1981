"""Start the stand-in API server as a process: :mod:`gpufair.demo.standin` (shared with
``gpufair demo``), run from this checkout. Re-exported here for the e2e suite."""

from __future__ import annotations

import pathlib

from e2e.harness import processes
from gpufair.demo import standin as _standin
from gpufair.demo.standin import StandInServer

__all__ = ["StandInServer", "start"]


def start(*, workdir: pathlib.Path, kubelet: bool = True, timeout: float = 20.0) -> StandInServer:
    """Start ``python -m e2e.standin`` on a free port; returns once ``/readyz`` answers."""
    return _standin.start(
        workdir=workdir, repo_root=processes.REPO_ROOT, kubelet=kubelet, timeout=timeout
    )
