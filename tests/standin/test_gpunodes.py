"""The demo's GPU node side: kubelet's admission through the agent's proxy, over real gRPC.

One DGX-1 node (real capture) as ``python -m gpufair.standin.gpunodes`` runs it: the kubelet
device-manager stand-in, NVIDIA's plugin on fake NVML, the agent's proxy; the API server is a
list of pods in memory (what the agent reads and the kubelet loop lists).
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from gpufair.agent import podresources
from gpufair.api import names
from gpufair.k8s import pods
from gpufair.standin import gpunodes

CAPTURE = "topology/dgx1-v100-8gpu-mlx5.txt"  # NVLink islands (0,1,2,3) and (4,5,6,7)
NODE = "dgx1"


class Cluster:
    """The API server as both the agent (node pods, annotations) and kubelet (status) see it."""

    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def node_pods(self, node: str) -> Sequence[Mapping[str, Any]]:
        return [pod for pod in self.pods if pod["spec"].get("nodeName") == node]

    def annotate(self, pod: Mapping[str, Any], annotations: Mapping[str, str]) -> None:
        pod["metadata"]["annotations"].update(annotations)

    def warn(self, pod: Mapping[str, Any], *, reason: str, message: str) -> None:
        raise AssertionError(f"unexpected event {reason} on {pods.ref(pod)}: {message}")

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        return {}


def gpu_pod(name: str, chosen: str, *shares: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": name,
            "uid": f"uid-{name}",
            "annotations": {names.GPUS_ANNOTATION: chosen},
        },
        "spec": {
            "nodeName": NODE,
            "containers": [
                {"name": f"c{i}", "resources": {"limits": {gpunodes.RESOURCE: str(share)}}}
                for i, share in enumerate(shares)
            ]
            + [{"name": "sidecar"}],
        },
        "status": {"phase": phase},
    }


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture(scope="module")
def node(shared_data: pathlib.Path, cluster: Cluster) -> Iterator[gpunodes.GpuNode]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="gfn-", dir="/tmp"))  # unix paths <= 107 bytes
    spec = gpunodes.NodeArg(NODE, shared_data / CAPTURE)
    gpu_node = gpunodes.GpuNode(root / "0", spec=spec, api=cluster, interval=3600.0)
    gpu_node.start()
    yield gpu_node
    gpu_node.stop()
    shutil.rmtree(root, ignore_errors=True)


def held(node: gpunodes.GpuNode, pod: str) -> dict[str, set[int]]:
    """The pod's devices in kubelet's checkpoint, per container, as GPU indices."""
    return {
        container.name: {node.nvidia.index_of[device] for device in devices}
        for container, (_, devices) in node.kubelet.checkpoint.items()
        if container.pod == pod
    }


def test_kubelet_admits_each_container_its_share_of_binds_set_and_frees_it_after(
    node: gpunodes.GpuNode, cluster: Cluster
) -> None:
    kubelet = gpunodes.Kubelet(cluster, {NODE: node})  # type: ignore[arg-type]
    split = gpu_pod("split", "4,5,6,7", 2, 2)
    cluster.pods[:] = [split]
    kubelet.sync(cluster.pods)
    assert held(node, "split") == {"c0": {4, 5}, "c1": {6, 7}}, "not NVIDIA's lowest indices"

    reconciler = podresources.Reconciler(
        api=cluster,
        node=NODE,
        resource=gpunodes.RESOURCE,
        device_ids=node.nvidia.uuids,
        list_pod_resources=node.kubelet_pod_resources(),
    )
    [outcome] = reconciler.reconcile_once()
    assert pods.confirmed_gpus(split) == {4, 5, 6, 7}
    assert outcome.check.chosen == outcome.check.allocated

    split["status"]["phase"] = "Succeeded"
    single = gpu_pod("single", "5", 1)
    cluster.pods[:] = [split, single]
    kubelet.sync(cluster.pods)
    assert held(node, "split") == {}, "a finished pod's GPUs are free again"
    assert held(node, "single") == {"c0": {5}}, "freed before the next pod was admitted"
    cluster.pods[:] = []
    kubelet.sync(cluster.pods)
    assert node.kubelet.checkpoint == {}


def test_a_pod_kubelet_cannot_give_its_gpus_fails_as_kubelet_reports_it(
    node: gpunodes.GpuNode, cluster: Cluster
) -> None:
    kubelet = gpunodes.Kubelet(cluster, {NODE: node})  # type: ignore[arg-type]
    cluster.pods[:] = [gpu_pod("huge", "0,1,2,3,4,5,6,7", 9)]
    kubelet.sync(cluster.pods)
    [(path, patch)] = cluster.patches
    assert path == "/api/v1/namespaces/team-a/pods/huge/status"
    assert patch["status"]["phase"] == "Failed"
    assert patch["status"]["reason"] == "UnexpectedAdmissionError"
    assert held(node, "huge") == {}
    cluster.pods[:] = []
    kubelet.sync(cluster.pods)
