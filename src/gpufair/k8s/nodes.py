"""Facts about a Node, read from its Kubernetes JSON: allocatable GPUs, whether new pods may
land on it, and its per-GPU topology from the node agent's labels.

Used by the extender's cache and by the operator (pool capacity). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpufair.api import names
from gpufair.core import labels as topology_labels
from gpufair.core import topology
from gpufair.k8s import pods

NodeDict = Mapping[str, Any]


class NodeError(ValueError):
    """A node whose GPU facts cannot be read; the message names the node and the field."""


def name(node: NodeDict) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def labels(node: NodeDict) -> Mapping[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def allocatable_gpus(node: NodeDict, resource: str = names.DEFAULT_GPU_RESOURCE) -> int:
    """``status.allocatable[resource]`` as a whole number (0 when the node has none)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    if resource not in allocatable:
        return 0
    try:
        amount = pods.parse_quantity(allocatable[resource])
    except pods.PodError as exc:
        raise NodeError(f"node {name(node)}: allocatable {resource}: {exc}") from None
    if amount.denominator != 1 or amount < 0:
        raise NodeError(f"node {name(node)}: allocatable {resource} {float(amount):g} is not whole")
    if amount > topology.MAX_GPUS:
        raise NodeError(
            f"node {name(node)}: allocatable {resource} {amount} is more than {topology.MAX_GPUS}"
        )
    return int(amount)


def is_cordoned(node: NodeDict) -> bool:
    """``spec.unschedulable`` (``kubectl cordon``)."""
    return bool((node.get("spec") or {}).get("unschedulable"))


def is_ready(node: NodeDict) -> bool:
    """The ``Ready`` condition is ``True``; a node that reports no conditions counts as ready
    (the stand-in API servers of tests and simulations do not run kubelets)."""
    conditions = (node.get("status") or {}).get("conditions")
    if not conditions:
        return True
    for condition in conditions:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return True


def is_reachable(node: NodeDict) -> bool:
    """Ready, and without the node controller's ``unreachable``/``not-ready`` taints: its
    kubelet can be expected to act on a pod's deletion."""
    if not is_ready(node):
        return False
    return not any(
        taint.get("key") in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
        for taint in (node.get("spec") or {}).get("taints") or []
    )


def is_schedulable(node: NodeDict) -> bool:
    """New pods may land here: not cordoned, ready, and no ``NoSchedule``/``NoExecute`` taint
    for an unreachable or not-ready node. Its GPUs count towards pool capacity."""
    if is_cordoned(node) or not is_ready(node):
        return False
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") in (
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/not-ready",
        ) and taint.get("effect") in ("NoSchedule", "NoExecute"):
            return False
    return True


def gpu_topology(node: NodeDict) -> topology.NodeTopology | None:
    """The per-GPU topology published in the node's labels, or ``None`` when it has none.

    Raises :class:`NodeError` when the labels are present but invalid.
    """
    try:
        return topology_labels.from_labels(labels(node))
    except topology_labels.LabelError as exc:
        raise NodeError(f"node {name(node)}: invalid topology labels: {exc}") from None


def flat_topology(count: int) -> topology.NodeTopology:
    """A node without topology labels: ``count`` GPUs about which nothing is known, so any set
    of them is as good as another (placement still works, topology rules cannot hold)."""
    return topology.NodeTopology(gpus=tuple(topology.GPU(index=i) for i in range(count)))
