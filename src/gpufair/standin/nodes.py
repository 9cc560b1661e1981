"""GPU Node objects for the stand-in cluster, as the kubelet, GPU Feature Discovery and the
gpufair agent leave them: ``nvidia.com/gpu`` in ``status.capacity``/``allocatable``, a ``Ready``
condition, NVIDIA's labels (``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``) and the
gpufair topology labels computed by the agent's own code path (``labels.to_labels``).

The demo's cluster (:mod:`gpufair.demo.cluster`) and the e2e harness (``e2e/harness/nodes.py``)
both build their nodes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpufair.api import names
from gpufair.core import labels as topology_labels
from gpufair.core import topology


def gpu_node_manifest(
    name: str,
    topo: topology.NodeTopology,
    *,
    product: str,
    labels: Mapping[str, str] | None = None,
    allocatable_gpus: int | None = None,
    resource: str = names.DEFAULT_GPU_RESOURCE,
    unschedulable: bool = False,
    cpu: str = "128",
    memory: str = "1024Gi",
) -> dict[str, Any]:
    """A GPU Node object named ``name`` with the GPUs and links of ``topo``."""
    count = len(topo.gpus)
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(count),
        **topology_labels.to_labels(topo),
        **(labels or {}),
    }
    allocatable_count = count if allocatable_gpus is None else allocatable_gpus
    resources = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "capacity": {**resources, resource: str(count)},
            "allocatable": {**resources, resource: str(allocatable_count)},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [
                {"type": "Hostname", "address": name},
                {"type": "InternalIP", "address": "127.0.0.1"},
            ],
            "nodeInfo": _node_info(name),
        },
    }


def _node_info(name: str) -> dict[str, str]:
    return {
        "architecture": "amd64",
        "kubeletVersion": "v1.36.0",
        "operatingSystem": "linux",
        "osImage": "gpufair stand-in node",
        "containerRuntimeVersion": "containerd://1.7.0",
        "kernelVersion": "6.1.0",
        "kubeProxyVersion": "v1.36.0",
        "bootID": f"boot-{name}",
        "machineID": f"machine-{name}",
        "systemUUID": f"uuid-{name}",
    }
