"""Kubernetes objects as the API server and kube-scheduler send them (plain JSON dicts).

    pod("train", gpus=4)                       # pending in team-a, requests 4 nvidia.com/gpu
    pod("old", gpus=2, node="n1", bound=[0, 1])
    node("n1", dgx1())                         # labels from the topology, 8 allocatable GPUs
    pool("h100"), quota("team-a", pools={"h100": (0, 16)})

Pods and nodes carry what real ones carry (managedFields, ``creationTimestamp``, defaulted
spec fields, ``status``), so adapters are tested against the real shape, not a minimal one.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from tests.builders import topology as topo

from gpufair.api import names
from gpufair.core import labels, topology

POOL_LABEL = "example.com/gpu-pool"

_uids = itertools.count(1)


def uid() -> str:
    return f"00000000-0000-4000-8000-{next(_uids):012d}"


def dgx1() -> topology.NodeTopology:
    """DGX-1 V100: two NVLink islands of four, two NUMA nodes, PCIe switches of two."""
    return topo.node(
        8,
        islands=[[0, 1, 2, 3], [4, 5, 6, 7]],
        pcie=[[0, 1], [2, 3], [4, 5], [6, 7]],
        numa=[0, 0, 0, 0, 1, 1, 1, 1],
    )


def nvswitch() -> topology.NodeTopology:
    """HGX H100/H200: one NVLink island of eight GPUs over NVSwitch."""
    return topo.node(8, islands=[list(range(8))], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def pcie_only() -> topology.NodeTopology:
    """Eight consumer GPUs over PCIe, two NUMA nodes, no NVLink."""
    return topo.node(8, pcie=[[0, 1], [2, 3], [4, 5], [6, 7]], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def container(
    name: str = "main",
    *,
    gpus: int | str | None = None,
    resource: str = names.DEFAULT_GPU_RESOURCE,
    limits_only: bool = False,
    restart_policy: str | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if gpus is not None:
        amount = str(gpus)
        resources["limits"] = {resource: amount, "cpu": "4", "memory": "16Gi"}
        if not limits_only:
            resources["requests"] = {resource: amount, "cpu": "4", "memory": "16Gi"}
    out: dict[str, Any] = {
        "name": name,
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "resources": resources,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    if restart_policy is not None:
        out["restartPolicy"] = restart_policy
    return out


def pod(
    name: str = "train",
    *,
    namespace: str = "team-a",
    gpus: int | str | None = 1,
    pod_uid: str | None = None,
    node: str | None = None,
    bound: Sequence[int] | None = None,
    annotations: Mapping[str, str] | None = None,
    resource: str = names.DEFAULT_GPU_RESOURCE,
    containers: Sequence[dict[str, Any]] | None = None,
    init_containers: Sequence[dict[str, Any]] | None = None,
    phase: str | None = None,
    priority: int = 0,
    started: str | None = None,
    created: str = "2026-11-26T20:00:00Z",
) -> dict[str, Any]:
    """A pod as the API server returns it (``bound``: indices in ``gpufair.dev/gpus``)."""
    notes = dict(annotations or {})
    if bound is not None:
        notes[names.GPUS_ANNOTATION] = ",".join(str(i) for i in bound)
    spec: dict[str, Any] = {
        "volumes": [
            {
                "name": "kube-api-access-x7k2p",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            }
        ],
        "containers": list(containers)
        if containers is not None
        else [container(gpus=gpus, resource=resource)],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": names.SCHEDULER_NAME,
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "priority": priority,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if init_containers is not None:
        spec["initContainers"] = list(init_containers)
    if node is not None:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase or ("Running" if node else "Pending")}
    if started is not None:
        status["startTime"] = started
    if node is None:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": "2026-11-26T20:00:01Z",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available",
            }
        ]
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": pod_uid or uid(),
        "resourceVersion": "4711",
        "creationTimestamp": created,
        "labels": {"app": name},
        "managedFields": [
            {
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": created,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:containers": {}}},
            }
        ],
    }
    if notes:
        metadata["annotations"] = notes
    return {"metadata": metadata, "spec": spec, "status": status}


def node(
    name: str,
    gpu_topology: topology.NodeTopology | None = None,
    *,
    pool_label: str | None = "h100",
    allocatable: int | None = None,
    resource: str = names.DEFAULT_GPU_RESOURCE,
    unschedulable: bool = False,
    ready: bool = True,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A node as the API server returns it; its topology labels as the node agent writes them."""
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    if pool_label is not None:
        node_labels[POOL_LABEL] = pool_label
    if gpu_topology is not None:
        node_labels.update(labels.to_labels(gpu_topology))
    node_labels.update(extra_labels or {})
    count = (
        allocatable
        if allocatable is not None
        else (len(gpu_topology.gpus) if gpu_topology is not None else 8)
    )
    spec: dict[str, Any] = {"podCIDR": "10.244.1.0/24"}
    if unschedulable:
        spec["unschedulable"] = True
        spec["taints"] = [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": None}
        ]
    return {
        "metadata": {
            "name": name,
            "uid": uid(),
            "resourceVersion": "812",
            "creationTimestamp": "2026-11-20T08:00:00Z",
            "labels": node_labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "capacity": {"cpu": "128", "memory": "2113422580Ki", resource: str(count)},
            "allocatable": {"cpu": "127", "memory": "2111222580Ki", resource: str(count)},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastHeartbeatTime": "2026-11-26T20:00:00Z",
                    "lastTransitionTime": "2026-11-20T08:01:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
        },
    }


def pool(
    name: str = "h100",
    *,
    mode: str | None = None,
    rule: str | None = None,
    resource: str | None = None,
    selector: Mapping[str, Any] | None = None,
    group_domain: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": dict(selector)
        if selector is not None
        else {"matchLabels": {POOL_LABEL: name}}
    }
    placement: dict[str, str] = {}
    if mode is not None:
        placement["mode"] = mode
    if rule is not None:
        placement["topology"] = rule
    if group_domain is not None:
        placement["groupDomain"] = group_domain
    if placement:
        spec["placement"] = placement
    if resource is not None:
        spec["resourceName"] = resource
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.GPU_POOL_KIND,
        "metadata": {"name": name, "uid": uid(), "resourceVersion": "90", "generation": 1},
        "spec": spec,
    }


def quota(
    name: str = "team-a",
    *,
    namespaces: Sequence[str] | None = None,
    selector: Mapping[str, Any] | None = None,
    pools: Mapping[str, tuple[int, int | None]] | None = None,
    weight: float = 1,
    reclaim: bool | None = None,
    min_runtime_seconds: int | None = None,
    budget_exhausted: bool = False,
) -> dict[str, Any]:
    """A TenantQuota; ``pools`` maps pool name to (guaranteed, limit)."""
    entries = []
    for pool_name, (guaranteed, limit) in (pools or {"h100": (0, None)}).items():
        entry: dict[str, Any] = {"name": pool_name, "guaranteed": guaranteed}
        if limit is not None:
            entry["limit"] = limit
        entries.append(entry)
    spec: dict[str, Any] = {"weight": weight, "pools": entries}
    if namespaces is not None or selector is None:
        spec["namespaces"] = list(namespaces if namespaces is not None else [name])
    if selector is not None:
        spec["namespaceSelector"] = dict(selector)
    preemption: dict[str, Any] = {}
    if reclaim is not None:
        preemption["reclaim"] = reclaim
    if min_runtime_seconds is not None:
        preemption["minRuntimeSeconds"] = min_runtime_seconds
    if preemption:
        spec["preemption"] = preemption
    obj: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.TENANT_QUOTA_KIND,
        "metadata": {"name": name, "uid": uid(), "resourceVersion": "91", "generation": 1},
        "spec": spec,
    }
    if budget_exhausted:
        spec["budget"] = {"gpuHours": 100, "period": "720h", "enforcement": "Hard"}
        obj["status"] = {
            "conditions": [
                {
                    "type": "BudgetExhausted",
                    "status": "True",
                    "reason": "BudgetUsedUp",
                    "message": "100/100 GPU-hours used",
                    "lastTransitionTime": "2026-11-26T19:00:00Z",
                }
            ]
        }
    return obj


def namespace(name: str, labels_: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": uid(),
            "labels": {"kubernetes.io/metadata.name": name, **(labels_ or {})},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def bound_copy(
    obj: Mapping[str, Any], *, node: str, annotations: Mapping[str, str | None]
) -> dict[str, Any]:
    """The pod as the watch shows it after bind annotated and bound it."""
    out = copy.deepcopy(dict(obj))
    notes = out["metadata"].setdefault("annotations", {})
    for key, value in annotations.items():
        if value is None:
            notes.pop(key, None)
        else:
            notes[key] = value
    out["spec"]["nodeName"] = node
    out["status"] = {"phase": "Running", "startTime": "2026-11-26T20:05:00Z"}
    return out
