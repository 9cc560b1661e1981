"""The demo's embedded default cluster: five 8-GPU nodes of real topologies, one pool, three
tenants.

Nodes are built the way the node agent would label them: each from a real
``nvidia-smi topo -m`` capture (``../shared/data/topology/`` beside a checkout, or
``--topology-dir``), read by :mod:`gpufair.captures` and labelled by
:mod:`gpufair.standin.nodes` (the same path as ``e2e/harness/nodes.py``). The pool and
quotas are a YAML manifest, applied through the API as an admin would ``kubectl apply`` it;
``gpufair demo --print-manifest`` shows it.

The fleet mixes NVLink shapes on purpose: two NVSwitch machines (one island of 8), a DGX-1
(hybrid cube-mesh: two islands of 4) and two PCIe-only machines (no island at all), so where a
multi-GPU pod lands matters and the placement column of the table means something.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

from gpufair import captures
from gpufair.api import names
from gpufair.core import topology
from gpufair.standin import nodes

POOL = "demo"
POOL_LABEL = "demo.gpufair.dev/pool"
PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF = "gpufair-demo"


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    name: str
    capture: str
    product: str
    shape: str  # what the topology is, for the table


NODES: tuple[NodeSpec, ...] = (
    NodeSpec("dgx-a100", "dgx-a100-8gpu-nv12-12nic-4numa.txt", "NVIDIA-A100-SXM4-80GB", "NVSwitch"),
    NodeSpec("hgx-h200", "hgx-h200-8gpu-nv18-10nic.txt", "NVIDIA-H200", "NVSwitch"),
    NodeSpec("dgx1-v100", "dgx1-v100-8gpu-mlx5.txt", "Tesla-V100-SXM2-32GB", "cube-mesh"),
    NodeSpec("pcie-4090", "vastai-8x-rtx4090-pcie-2numa.txt", "NVIDIA-GeForce-RTX-4090", "PCIe"),
    NodeSpec("pcie-rtx6000", "pcie-8x-quadro-rtx6000-pix-pxb.txt", "Quadro-RTX-6000", "PCIe"),
)

MANIFEST = f"""\
# gpufair demo: one pool over every demo node, three tenants with different weights.
apiVersion: gpufair.dev/v1alpha1
kind: GPUPool
metadata:
  name: {POOL}
spec:
  nodeSelector:
    matchLabels:
      {POOL_LABEL}: {POOL}
  placement:
    mode: Pack
    topology: Preferred
  costPerGPUHour: "2.00"
---
# Research: the biggest weight and guarantee; reclaims its guarantee from borrowers.
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata:
  name: research
spec:
  namespaces: [research]
  weight: 3
  pools:
    - name: {POOL}
      guaranteed: 16
      limit: 32
  preemption:
    reclaim: true
    minRuntimeSeconds: 2
---
# Vision: a middle weight and guarantee.
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata:
  name: vision
spec:
  namespaces: [vision]
  weight: 2
  pools:
    - name: {POOL}
      guaranteed: 12
      limit: 28
  preemption:
    reclaim: true
    minRuntimeSeconds: 2
---
# Batch: a small guarantee, may borrow the whole pool while nobody else needs it.
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata:
  name: batch
spec:
  namespaces: [batch]
  weight: 1
  pools:
    - name: {POOL}
      guaranteed: 4
  preemption:
    reclaim: true
    minRuntimeSeconds: 2
"""


@dataclasses.dataclass(frozen=True)
class Tenant:
    name: str
    namespace: str
    weight: float
    guaranteed: int
    limit: int | None


def objects() -> list[dict[str, Any]]:
    """The pool and quota objects of :data:`MANIFEST`."""
    return [doc for doc in yaml.safe_load_all(MANIFEST) if doc]


def tenants() -> list[Tenant]:
    """The tenants of :data:`MANIFEST`, in manifest order."""
    found = []
    for doc in objects():
        if doc["kind"] != names.TENANT_QUOTA_KIND:
            continue
        spec = doc["spec"]
        pool = next(entry for entry in spec["pools"] if entry["name"] == POOL)
        found.append(
            Tenant(
                name=doc["metadata"]["name"],
                namespace=spec["namespaces"][0],
                weight=float(spec.get("weight", 1)),
                guaranteed=int(pool.get("guaranteed", 0)),
                limit=pool.get("limit"),
            )
        )
    return found


def capture_path(topology_dir: pathlib.Path, spec: NodeSpec) -> pathlib.Path:
    path = topology_dir / spec.capture
    if not path.is_file():
        raise captures.CaptureError(
            f"topology capture {spec.capture} not found in {topology_dir} (the demo reads real"
            " nvidia-smi topo -m outputs: ../shared/data/topology beside a checkout, or the"
            " directory given with --topology-dir)"
        )
    return path


def node_object(
    spec: NodeSpec, topo: topology.NodeTopology, *, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The demo's Node for ``spec``, in the demo pool."""
    return nodes.gpu_node_manifest(
        spec.name,
        topo,
        product=spec.product,
        labels={POOL_LABEL: POOL, **(extra_labels or {})},
    )


def describe_islands(topo: topology.NodeTopology) -> str:
    """``1x8``, ``2x4`` or ``no NVLink``: the NVLink islands of a node, for the table."""
    islands = [len(island) for island in topo.nvlink_islands() if len(island) > 1]
    if not islands:
        return "no NVLink"
    sizes = sorted(set(islands), reverse=True)
    return " + ".join(f"{islands.count(size)}x{size}" for size in sizes)


def on_one_island(topo: topology.NodeTopology, gpus: tuple[int, ...]) -> bool:
    """All of ``gpus`` on one NVLink island (the placement-quality criterion)."""
    islands = {topo.gpu(index).nvlink_island for index in gpus}
    return len(islands) == 1 and None not in islands
