"""GPU nodes for the stand-in cluster, topology labels from real ``nvidia-smi topo -m`` captures.

A node is what a real GPU node looks like to the scheduler and the operator: ``nvidia.com/gpu`` in
``status.capacity``/``allocatable``, a ``Ready`` condition, NVIDIA's GPU Feature Discovery labels
(``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``) and the gpufair topology labels that the
node agent would publish, computed by the agent's own code path
(``topology_matrix.parse`` -> ``topology.from_matrix`` -> ``labels.to_labels``).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from gpufair.api import names
from gpufair.core import topology, topology_matrix
from gpufair.demo import cluster

TOPOLOGY_DIR = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "topology"


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
    text = capture_path(capture).read_text()
    return topology.from_matrix(topology_matrix.parse(text))


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
    return cluster.gpu_node_manifest(
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
