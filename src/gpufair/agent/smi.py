"""The ``nvidia-smi topo -m`` path of discovery: run the command, parse its matrix.

Called by :mod:`gpufair.agent.discovery` when NVML is unavailable (or asked for), and for
``--from-file`` captures. The matrix goes through the same
:func:`gpufair.core.topology.from_link_matrix` as the NVML facts, so the two sources agree.
"""

from __future__ import annotations

import shutil
import subprocess

from gpufair.core import topology, topology_matrix

COMMAND = ("nvidia-smi", "topo", "-m")
TIMEOUT_SECONDS = 60.0


class SmiUnavailableError(Exception):
    """``nvidia-smi`` is missing, or says it cannot reach a GPU."""


class SmiError(Exception):
    """``nvidia-smi`` ran and failed for a reason other than "no GPU"."""


NO_GPU_MARKERS = (
    "No devices were found",
    "couldn't communicate with the NVIDIA driver",
    "NVIDIA-SMI has failed",
)
"""What ``nvidia-smi`` prints when the node has no usable NVIDIA GPU or driver."""


def run_topo(executable: str = COMMAND[0], *, timeout: float = TIMEOUT_SECONDS) -> str:
    """The output of ``nvidia-smi topo -m``."""
    path = shutil.which(executable)
    if path is None:
        raise SmiUnavailableError(f"{executable} not found on PATH")
    try:
        completed = subprocess.run(
            [path, *COMMAND[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SmiError(f"{path} {' '.join(COMMAND[1:])} timed out after {timeout:g}s") from error
    except OSError as error:
        raise SmiUnavailableError(f"{path} could not run: {error}") from error
    said = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        message = f"{path} {' '.join(COMMAND[1:])} exited {completed.returncode}: {said}"
        if any(marker in said for marker in NO_GPU_MARKERS):
            raise SmiUnavailableError(message)
        raise SmiError(message)
    return completed.stdout


def to_topology(text: str) -> topology.NodeTopology:
    """The node's topology from a ``nvidia-smi topo -m`` matrix.

    Raises :class:`gpufair.core.topology_matrix.TopologyParseError` for text that is not one.
    """
    matrix = topology_matrix.parse(text)
    return topology.from_link_matrix(matrix.levels, numa=matrix.numa)
