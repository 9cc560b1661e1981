"""Scenario: the GPUs the extender chose are the GPUs kubelet allocates, and the books say so.

The stand-in cluster's API server and the real extender, driven as kube-scheduler drives it,
bind pods on a DGX-1 node (real capture) with the choice in the Binding's annotations. The
node side runs in this process over real gRPC on unix sockets: the kubelet device-manager
stand-in (``tests/agent/devicemanager.py``), the agent's device-plugin proxy and PodResources
reconciler (``gpufair.agent.allocations``, talking to the stand-in API server with the real
Kubernetes client), and a fake NVIDIA plugin on the fake NVML of the same capture. What is not
covered: the stand-in API server's own fake kubelet still marks pods Running by itself; kubelet
admission here is the device-manager stand-in's, called by the test when the pod is bound.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e.harness import nodes, scenario
from gpufair.agent import allocations, podresources
from gpufair.api import names
from gpufair.core import topology_matrix
from gpufair.k8s import pods
from gpufair.standin import devicemanager, fake_nvml, nvidia_plugin

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
RESOURCE = names.DEFAULT_GPU_RESOURCE
STACK_OPTIONS = {"operator": False}


class NodeSide:
    """kubelet's device manager, the agent's proxy and reconciler, NVIDIA's plugin."""

    def __init__(self, root: pathlib.Path, *, node: str, capture: pathlib.Path, core: Any):
        self.kubelet = devicemanager.DeviceManager(root / "dp")
        self.kubelet.start()
        self.kubelet.serve_pod_resources(root / "pr.sock")
        machine = fake_nvml.machine_from_capture(topology_matrix.parse(capture.read_text()))
        self.nvidia = nvidia_plugin.FakeNvidiaPlugin(
            fake_nvml.FakeNvml(machine), sysfs=root / "sys"
        )
        self.agent = allocations.Allocations(
            options=allocations.Options(
                node=node,
                resource=RESOURCE,
                proxy=True,
                kubelet_dir=root / "dp",
                upstream_dir=root / "nv",
                pod_resources_socket=None,  # reconciled by the test, for determinism
                interval=1.0,
            ),
            api=podresources.KubePodApi(core),
            ids=self.nvidia.uuids,
        )
        self.agent.start()
        self.nvidia.start(directory=root / "nv")
        assert self.agent.proxy is not None
        assert self.agent.proxy.registered.wait(10), "the proxy did not register with kubelet"
        self.kubelet.wait_for_devices(RESOURCE, 8)
        self.reconciler = podresources.Reconciler(
            api=self.agent.api,
            node=node,
            resource=RESOURCE,
            device_ids=self.nvidia.uuids,
            list_pod_resources=podresources.pod_resources_lister(str(root / "pr.sock")),
        )

    def admit(self, pod: dict[str, Any], count: int) -> frozenset[int]:
        container = devicemanager.Container(
            pods.namespace(pod), pods.name(pod), pods.uid(pod), "main"
        )
        got = self.kubelet.admit(container, resource=RESOURCE, count=count)
        return frozenset(self.nvidia.index_of[device] for device in got)

    def close(self) -> None:
        self.agent.stop()
        self.nvidia.stop()
        self.kubelet.stop()


@pytest.fixture
def node_side_root() -> Iterator[pathlib.Path]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="gf15e-", dir="/tmp"))  # short socket paths
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def agent_core(apiserver: Any) -> Iterator[Any]:
    """The official client as the node agent (its calls count in the RBAC proof)."""
    import kubernetes

    api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=apiserver.env("agent")["KUBECONFIG"]
    )
    yield kubernetes.client.CoreV1Api(api_client)
    api_client.close()


def test_a_four_gpu_pod_gets_the_island_the_extender_chose_and_a_mismatch_is_corrected(
    stack: scenario.Stack,
    k8s: Any,
    agent_core: Any,
    kubectl: Any,
    namespace: str,
    make_gpu_node: Callable[..., dict[str, Any]],
    node_side_root: pathlib.Path,
) -> None:
    pool, tenant, node = scenario.unique("alloc"), scenario.unique("tenant"), scenario.unique("n")
    node_body = make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    islands = scenario.islands(node_body)
    side = NodeSide(node_side_root, node=node, capture=nodes.TOPOLOGY_DIR / DGX1, core=agent_core)
    try:
        with scenario.Cleanup(kubectl, k8s) as cleanup:
            cleanup.apply(scenario.pool_manifest(pool))
            cleanup.apply(
                scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}])
            )
            with stack.driver([namespace]) as driver:
                k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("single", 1))
                single = _scheduled(driver, k8s, namespace, "single")
                assert side.admit(single, 1) == scenario.gpu_indices(single)
                side.reconciler.reconcile_once()

                k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("quad", 4))
                quad = _scheduled(driver, k8s, namespace, "quad")
            chosen = scenario.gpu_indices(quad)
            assert len(chosen) == 4
            assert chosen in {frozenset(g) for g in islands.values()}
            assert side.admit(quad, 4) == chosen, "kubelet allocates the extender's island"
            side.reconciler.reconcile_once()
            quad = scenario.read_pod(k8s, namespace, "quad")
            assert pods.confirmed_gpus(quad) == chosen
            assert quad["metadata"]["annotations"][names.GPU_UUIDS_ANNOTATION] == ",".join(
                side.nvidia.uuids[i] for i in sorted(chosen)
            )

            # Forced mismatch: kubelet gives "single" another GPU after a restart of the pod
            # (as it would without the proxy); the reconciler corrects and reports it.
            before = podresources.MISMATCHES.labels(node=node)._value.get()
            container = devicemanager.Container(namespace, "single", pods.uid(single), "main")
            other = next(iter(sorted(set(range(8)) - chosen - scenario.gpu_indices(single))))
            side.kubelet.checkpoint[container] = (RESOURCE, frozenset({side.nvidia.uuids[other]}))
            side.reconciler.reconcile_once()
            single = scenario.read_pod(k8s, namespace, "single")
            assert pods.confirmed_gpus(single) == {other}
            assert pods.bound_gpus(single) == {other}, "the books trust the confirmed GPUs"
            assert podresources.MISMATCHES.labels(node=node)._value.get() == before + 1
            events = k8s.core.list_namespaced_event(namespace).items
            assert any(
                e.reason == podresources.MISMATCH_REASON and e.involved_object.name == "single"
                for e in events
            )
    finally:
        side.close()


def _scheduled(driver: Any, k8s: Any, namespace: str, name: str) -> dict[str, Any]:
    def bound() -> dict[str, Any] | None:
        pod = scenario.read_pod(k8s, namespace, name)
        return pod if pod["spec"].get("nodeName") and scenario.gpu_indices(pod) else None

    result: dict[str, Any] = scenario.settle(
        bound, timeout=30, what=f"{name} bound by the extender", driver=driver
    )
    return result
