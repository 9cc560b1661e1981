"""Scenarios: capacity that moves — borrowing and reclaim, and a node leaving its pool.

One ``gpufair operator`` (with its webhook) and one ``gpufair extender`` serve this module; the
scheduler driver plays kube-scheduler, and the tests play the controllers a real cluster has:
a job controller that recreates evicted pods (so a borrower keeps its demand up and could take
back what it lost, if the policy let it), and the pod garbage collector that deletes the pods
of a deleted node.

- borrowing and reclaim: a tenant with no guarantee borrows the idle guarantee of another;
  when the owner comes back, the operator evicts just enough borrowed pods, the owner's pods
  run, and over the following passes nothing more is evicted (no oscillation);
- node removal: the pool's capacity, node count and metrics follow the deletion, and a pod
  waiting for GPUs keeps waiting, with its reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from e2e.harness import nodes, scenario

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


def test_an_owner_reclaims_its_idle_guarantee_and_it_settles(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, node = scenario.unique("reclaim"), scenario.unique("n")
    capacity = len(nodes.topology_of(DGX1).gpus)
    guarantee = capacity // 2
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    owner, borrower, spaces = scenario.owner_and_borrower(cleanup, pool, guarantee=guarantee)
    names = (f"job-{i}" for i in itertools.count())

    def job_controller() -> None:
        """Keep ``capacity`` borrower pods alive: an evicted pod is recreated (gated again)."""
        alive = len(scenario.pods(k8s, spaces[borrower]))
        for _ in range(capacity - alive):
            scenario.submit(k8s, spaces[borrower], next(names), 1)

    def bound(tenant: str) -> int:
        return len(scenario.running_on_nodes(k8s, [spaces[tenant]]))

    scenario.wait_known(k8s, owner, borrower)
    with stack.driver(spaces.values()) as driver:
        job_controller()
        scenario.settle(
            lambda: bound(borrower) == capacity,
            timeout=60,
            what="the borrower runs on the whole idle pool",
            driver=driver,
        )
        entry = scenario.settle(
            lambda: (
                (e := scenario.pool_entry(scenario.quota_status(k8s, borrower), pool)).get(
                    "allocated"
                )
                == capacity
                and e
            ),
            timeout=30,
            what="the borrower's status shows the borrowed GPUs",
        )
        assert entry["borrowed"] == capacity, "no guarantee: everything it holds is borrowed"
        scenario.wait_passes(stack, 1)
        assert (
            stack.operator_metrics().value(
                "gpufair_tenant_borrowed_gpus", tenant=borrower, pool=pool
            )
            == capacity
        )

        for i in range(guarantee):
            scenario.submit(k8s, spaces[owner], f"own-{i}", 1)

        def settled() -> bool:
            job_controller()
            return bound(owner) == guarantee and bound(borrower) == capacity - guarantee

        scenario.settle(settled, timeout=90, what="the owner got its guarantee back", driver=driver)
        evicted = _preemptions(stack, borrower, pool)
        assert evicted == guarantee, "exactly the GPUs the owner needed were reclaimed"

        # Settled: over the next passes, with the borrower's evicted pods recreated and
        # waiting, nobody is evicted again and the allocation does not move.
        for _ in range(5):
            scenario.wait_passes(stack, 1)
            job_controller()
            driver.schedule_pending()
            assert settled(), "the allocation moved after settling"
        assert _preemptions(stack, borrower, pool) == evicted
        assert _preemptions(stack, owner, pool) == 0

    preempted = [
        e for e in k8s.core.list_namespaced_event(spaces[borrower]).items if e.reason == "Preempted"
    ]
    assert len(preempted) == guarantee
    assert all(owner in (e.message or "") for e in preempted), "the event names the preemptor"
    owner_entry = scenario.pool_entry(scenario.quota_status(k8s, owner), pool)
    assert owner_entry["allocated"] == guarantee
    assert owner_entry["fairShare"] == guarantee
    borrower_entry = scenario.pool_entry(scenario.quota_status(k8s, borrower), pool)
    assert borrower_entry["waiting"] == guarantee, "the recreated pods wait behind the gate"
    assert scenario.shared_gpus(k8s, [node]) == {}


def _preemptions(stack: scenario.Stack, tenant: str, pool: str) -> float:
    return stack.operator_metrics().value(
        "gpufair_preemptions_total", tenant=tenant, pool=pool, reason="Reclaim"
    )


def test_a_deleted_node_leaves_its_pool_and_waiting_pods_keep_waiting(
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, tenant = scenario.unique("shrink"), scenario.unique("tenant")
    per_node = len(nodes.topology_of(DGX1).gpus)
    node_names = [scenario.unique("n") for _ in range(2)]
    for name in node_names:
        make_gpu_node(name, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    cleanup.apply(scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}]))
    scenario.wait_known(k8s, tenant)

    def pool_capacity(gpus: int) -> dict[str, Any] | None:
        status = scenario.pool_status(k8s, pool)
        return status if status.get("capacity") == gpus else None

    scenario.settle(lambda: pool_capacity(2 * per_node), timeout=30, what="pool of two nodes")

    with stack.driver([namespace]) as driver:
        for name in ("whole-0", "whole-1"):
            scenario.submit(k8s, namespace, name, per_node)
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [namespace])) == 2,
            timeout=30,
            what="both nodes taken",
            driver=driver,
        )
        scenario.submit(k8s, namespace, "next", per_node)
        before = scenario.settle(
            lambda: _waiting_message(k8s, namespace, "next"),
            timeout=30,
            what="the third pod waits with a reason",
        )

        # The node goes away, and with it the pods bound to it (PodGC; the stand-in collects
        # them, the test makes sure).
        gone = node_names[1]
        k8s.core.delete_node(gone)
        for pod in scenario.running_on_nodes(k8s, [namespace]):
            if pod["spec"]["nodeName"] == gone:
                scenario.Cleanup.quietly(
                    k8s.core.delete_namespaced_pod, pod["metadata"]["name"], namespace
                )

        status = scenario.settle(
            lambda: pool_capacity(per_node), timeout=30, what="the pool's capacity follows"
        )
        assert status["nodes"] == 1
        assert status["free"] == 0
        scenario.settle(
            lambda: (
                stack.operator_metrics().get("gpufair_pool_capacity_gpus", pool=pool) == per_node
            ),
            timeout=30,
            what="the capacity metric follows",
        )
        metrics = stack.operator_metrics()
        assert metrics.value("gpufair_pool_nodes", pool=pool, schedulable="true") == 1
        assert metrics.value("gpufair_pool_free_gpus", pool=pool) == 0

        scenario.wait_passes(stack, 3)
        driver.schedule_pending()
    waiting = scenario.read_pod(k8s, namespace, "next")
    assert scenario.is_gated(waiting), "still waiting: no capacity came back"
    assert waiting["spec"].get("nodeName") is None
    assert before
    assert _waiting_message(k8s, namespace, "next")
    entry = scenario.pool_entry(scenario.quota_status(k8s, tenant), pool)
    assert entry["allocated"] == per_node
    assert entry["waiting"] == 1
    assert entry["fairShare"] == per_node, "the share shrank with the pool"


def _waiting_message(k8s: Any, namespace: str, name: str) -> str | None:
    messages = [
        str(e.get("message") or "")
        for e in scenario.events_of(k8s, namespace, name)
        if e.get("reason") == "Waiting"
    ]
    return messages[-1] if messages else None
