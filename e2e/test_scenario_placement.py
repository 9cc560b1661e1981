"""Scenario: topology-aware placement by the real extender, driven as kube-scheduler drives it.

A DGX-1 V100 node (hybrid cube-mesh: two NVLink islands of four GPUs, read from a real
``nvidia-smi topo -m`` capture) already runs a 1-GPU pod on GPU 0. A 2-GPU pod must go into
the broken island (the fragment) and leave the whole island free; then a 4-GPU pod must get
exactly the free island. Checked on the pods' ``gpufair.dev/gpus`` annotations against the node's
island labels, and on the extender's placement metric.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from e2e.harness import scenario

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


STACK_OPTIONS = {"operator": False}
"""This module needs no operator (see the ``stack`` fixture in ``e2e/conftest.py``)."""


def test_a_two_gpu_pod_fills_a_fragment_and_a_four_gpu_pod_gets_a_whole_island(
    stack: scenario.Stack,
    k8s: Any,
    kubectl: Any,
    namespace: str,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, tenant, node = scenario.unique("place"), scenario.unique("tenant"), scenario.unique("n")
    node_body = make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    islands = scenario.islands(node_body)
    assert sorted(len(gpus) for gpus in islands.values()) == [4, 4], "DGX-1: two islands of 4"
    broken = next(gpus for gpus in islands.values() if 0 in gpus)
    whole = next(gpus for gpus in islands.values() if 0 not in gpus)

    with scenario.Cleanup(kubectl, k8s) as cleanup:
        cleanup.apply(scenario.pool_manifest(pool))
        cleanup.apply(
            scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}])
        )
        before = stack.extender_metrics()
        k8s.core.create_namespaced_pod(
            namespace, scenario.gpu_pod("occupant", 1, node=node, indices=[0])
        )
        cached = before.value("gpufair_extender_cache_gpu_pods")
        scenario.settle(  # bound by someone else: the extender learns it from its watch
            lambda: stack.extender_metrics().value("gpufair_extender_cache_gpu_pods") > cached,
            timeout=30,
            what="the occupant in the extender's cache",
        )

        with stack.driver([namespace]) as driver:
            k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("pair", 2))
            pair = _scheduled(stack, driver, k8s, namespace, "pair")
            assert pair["spec"]["nodeName"] == node
            pair_gpus = scenario.gpu_indices(pair)
            assert len(pair_gpus) == 2
            assert pair_gpus <= broken - {0}, (
                f"the pair {sorted(pair_gpus)} should fill the broken island {sorted(broken)},"
                f" leaving {sorted(whole)} whole"
            )

            k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("quad", 4))
            quad = _scheduled(stack, driver, k8s, namespace, "quad")
            assert scenario.gpu_indices(quad) == whole, "a 4-GPU pod gets one whole island"

        after = stack.extender_metrics()
        placed = after.value(
            "gpufair_extender_placements_total", pool=pool, level="NVLINK"
        ) - before.value("gpufair_extender_placements_total", pool=pool, level="NVLINK")
        assert placed == 2, "both GPU sets are linked by NVLink"
        assert scenario.shared_gpus(k8s, [node]) == {}


def _scheduled(
    stack: scenario.Stack, driver: Any, k8s: Any, namespace: str, name: str
) -> dict[str, Any]:
    def bound() -> dict[str, Any] | None:
        pod = scenario.read_pod(k8s, namespace, name)
        return pod if pod["spec"].get("nodeName") and scenario.gpu_indices(pod) else None

    result: dict[str, Any] = scenario.settle(
        bound, timeout=30, what=f"{name} bound by the extender", driver=driver
    )
    return result
