"""Scenario: the operator and the extender restart mid-scenario; nothing is lost or doubled.

Pods run on a DGX-1 node while the extender is stopped (two more pods are admitted meanwhile
and wait for it), then the operator is stopped and both are started again. Checked:

- no lost usage: the GPU-seconds in the quota's status never decrease, keep growing after the
  restart, and match what the pods held (start: their ``PodScheduled`` time) up to the status'
  ``asOf``, downtime included;
- no double-allocated GPU: the restarted extender rebuilds the node's free GPUs from the pods'
  ``gpufair.dev/gpus`` annotations and binds the waiting pods to the GPUs nobody holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.harness import nodes, scenario

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


class UsageLog:
    """Every GPU-seconds figure read from the quota's status, in reading order."""

    def __init__(self, k8s: Any, tenant: str, pool: str) -> None:
        self.k8s, self.tenant, self.pool = k8s, tenant, pool
        self.readings: list[tuple[float, float]] = []  # (asOf, gpuSeconds)

    def read(self) -> tuple[float, float] | None:
        usage = scenario.pool_entry(scenario.quota_status(self.k8s, self.tenant), self.pool).get(
            "usage"
        )
        if not usage or not usage.get("asOf"):
            return None
        reading = (scenario.seconds(usage["asOf"]), float(usage["gpuSeconds"]))
        self.readings.append(reading)
        return reading


def test_restarts_lose_no_usage_and_never_share_a_gpu(
    stack: scenario.Stack,
    k8s: Any,
    kubectl: Any,
    namespace: str,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    assert stack.operator is not None
    pool, tenant, node = scenario.unique("restart"), scenario.unique("tenant"), scenario.unique("n")
    capacity = len(nodes.topology_of(DGX1).gpus)
    singles, pairs = capacity // 2, capacity // 4  # fills the node: 4 x 1 GPU + 2 x 2 GPUs
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    with scenario.Cleanup(kubectl, k8s) as cleanup:
        cleanup.apply(scenario.pool_manifest(pool))
        cleanup.apply(
            scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}])
        )
        log = UsageLog(k8s, tenant, pool)
        scenario.wait_known(k8s, tenant)
        for i in range(singles):
            scenario.submit(k8s, namespace, f"single-{i}", 1)
        with stack.driver([namespace]) as driver:
            scenario.settle(
                lambda: len(scenario.running_on_nodes(k8s, [namespace])) == singles,
                timeout=30,
                what="the single-GPU pods bound",
                driver=driver,
            )
        scenario.settle(
            lambda: (reading := log.read()) is not None and reading[1] > 0,
            timeout=30,
            what="usage metered",
        )

        # The extender goes down; two more pods are admitted and wait for it.
        stack.extender.stop()
        for i in range(pairs):
            scenario.submit(k8s, namespace, f"pair-{i}", 2)
        scenario.settle(
            lambda: not any(scenario.is_gated(p) for p in scenario.pods(k8s, namespace)),
            timeout=30,
            what="the pairs admitted while the extender is down",
        )
        log.read()
        # The operator goes down too, then both come back.
        stack.operator.stop()
        down = log.read()
        assert down is not None
        stack.operator.start()
        scenario.wait_for_webhook(kubectl)
        stack.extender.start()

        with stack.driver([namespace]) as driver:
            scenario.settle(
                lambda: len(scenario.running_on_nodes(k8s, [namespace])) == singles + pairs,
                timeout=30,
                what="the pairs bound by the restarted extender",
                driver=driver,
            )
        held = scenario.running_on_nodes(k8s, [namespace])
        assert scenario.shared_gpus(k8s, [node]) == {}, "a GPU was given to two pods"
        assert sorted(i for p in held for i in scenario.gpu_indices(p)) == list(range(capacity))
        assert all(p["status"].get("phase") == "Running" for p in held), "the kubelet admitted all"

        # Usage keeps growing past the downtime and covers it.
        last = scenario.settle(
            lambda: (reading := log.read()) is not None and reading[0] > down[0] + 2 and reading,
            timeout=30,
            what="usage metered by the restarted operator",
        )
        assert last[1] > down[1]
        gpu_seconds = [seconds for _, seconds in log.readings]
        assert gpu_seconds == sorted(gpu_seconds), "GPU-seconds in the status never decrease"
        expected = sum(
            len(scenario.gpu_indices(pod)) * max(0.0, last[0] - _scheduled_at(pod)) for pod in held
        )
        assert last[1] == pytest.approx(expected, abs=1.0 * capacity), "no loss, no double count"
        # The counter of this process counts from its second pass on (the first has no
        # predecessor to count from).
        scenario.settle(
            lambda: (
                stack.operator_metrics().value(
                    "gpufair_tenant_gpu_seconds_total", tenant=tenant, pool=pool
                )
                > 0
            ),
            timeout=30,
            what="GPU-seconds counted by the restarted process",
        )
        final = log.read()
        assert final is not None
        assert final[1] >= last[1]


def _scheduled_at(pod: dict[str, Any]) -> float:
    for condition in pod["status"].get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return scenario.seconds(condition["lastTransitionTime"])
    raise AssertionError(f"{pod['metadata']['name']} has no PodScheduled=True condition")
