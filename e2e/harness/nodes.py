"""GPU nodes for the stand-in cluster by capture name: a real ``nvidia-smi topo -m`` capture in
``../shared/data/topology`` (read by :mod:`gpufair.captures`) made into the Node object that
:func:`gpufair.standin.nodes.gpu_node_manifest` builds for the demo too.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from gpufair import captures
from gpufair.api import names
from gpufair.core import topology
from gpufair.standin import nodes

TOPOLOGY_DIR = captures.default_dir()


def capture_path(capture: str | pathlib.Path) -> pathlib.Path:
    """A capture by file name (``dgx-a100-8gpu-nv12-12nic-4numa.txt``), stem, or path."""
    path = pathlib.Path(capture)
    if path.is_file():
        return path
    for candidate in (TOPOLOGY_DIR / path.name, TOPOLOGY_DIR / f"{path.name}.txt"):
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in TOPOLOGY_DIR.glob("*.txt"))
    raise FileNotFoundError(f"no topology capture {capture!r} in {TOPOLOGY_DIR}; have {available}")


def topology_of(capture: str | pathlib.Path) -> topology.NodeTopology:
    return captures.load(capture_path(capture))


def gpu_node(
    name: str,
    capture: str | pathlib.Path,
    *,
    product: str = "NVIDIA-A100-SXM4-80GB",
    labels: Mapping[str, str] | None = None,
    allocatable_gpus: int | None = None,
    resource: str = names.DEFAULT_GPU_RESOURCE,
    unschedulable: bool = False,
    cpu: str = "128",
    memory: str = "1024Gi",
) -> dict[str, Any]:
    """The Node object (a dict ready for ``create_node``) for one capture."""
    return nodes.gpu_node_manifest(
        name,
        topology_of(capture),
        product=product,
        labels=labels,
        allocatable_gpus=allocatable_gpus,
        resource=resource,
        unschedulable=unschedulable,
        cpu=cpu,
        memory=memory,
    )
