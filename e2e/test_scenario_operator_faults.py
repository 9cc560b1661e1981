"""Scenarios: reclaim under operator-side faults (issue 13: items 2 and 3, deliverable 2).

One ``gpufair operator`` (with its webhook, one pass a second) and one ``gpufair extender``
serve the module; the scheduler driver plays kube-scheduler. Each test states its convergence
bound and polls up to it (no timed assertion):

- **all or nothing**: of a victim set, one pod is protected by a PodDisruptionBudget; the
  operator's dry run finds it, so nobody is evicted, for as many passes as it takes to try every
  set (bound: 15 passes);
- **operator killed in the middle of a reclaim** (SIGKILL after the first eviction): the
  restarted operator finishes the reclaim; within 60 s the owner holds its guarantee, exactly
  as many borrower pods were evicted as the owner needed (no pod evicted twice, none in
  excess), and no GPU is held by two pods;
- **a node goes NotReady with GPU pods on it**, one of them stuck Terminating there: its GPUs
  leave the pool's capacity, and reclaim on the other node is not blocked by the stuck pod;
  within 60 s the owner runs its guarantee there, the pods of the NotReady node are not
  touched, no GPU is held by two pods.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from typing import Any

from e2e.harness import nodes, scenario, waiting

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
CONVERGENCE_SECONDS = 60


def _submit_labelled(k8s: Any, namespace: str, name: str, labels: dict[str, str]) -> None:
    body = scenario.gpu_pod(name, 1, scheduler_name=None)
    body["metadata"]["labels"] = labels
    k8s.core.create_namespaced_pod(namespace, body)


def _names(k8s: Any, namespace: str) -> set[str]:
    return {pod["metadata"]["name"] for pod in scenario.pods(k8s, namespace)}


def _preempted_events(k8s: Any, namespace: str) -> list[Any]:
    return [e for e in k8s.core.list_namespaced_event(namespace).items if e.reason == "Preempted"]


def test_a_victim_set_with_a_protected_pod_is_not_evicted_at_all(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, node = scenario.unique("allornothing"), scenario.unique("n")
    capacity = len(nodes.topology_of(DGX1).gpus)
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    owner, borrower, spaces = scenario.owner_and_borrower(cleanup, pool, guarantee=2)
    scenario.wait_known(k8s, owner, borrower)
    with stack.driver(spaces.values()) as driver:
        for i in range(capacity - 1):
            _submit_labelled(k8s, spaces[borrower], f"kept-{i}", {"keep": "yes"})
        # The youngest borrower pod, so the cheapest victim set includes it; no budget covers it.
        _submit_labelled(k8s, spaces[borrower], "free", {"keep": "no"})
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [spaces[borrower]])) == capacity,
            timeout=60,
            what="the borrower runs on the whole pool",
            driver=driver,
        )
        k8s.policy.create_namespaced_pod_disruption_budget(
            spaces[borrower],
            {
                "metadata": {"name": "keep-all"},
                "spec": {
                    "minAvailable": capacity - 1,
                    "selector": {"matchLabels": {"keep": "yes"}},
                },
            },
        )
        # The owner needs 2 GPUs on one node: two 1-GPU victims, one of them always protected.
        scenario.submit(k8s, spaces[owner], "own", 2)
        waiting.wait_for(
            lambda: any(
                e.reason == "EvictionRefused"
                for e in k8s.core.list_namespaced_event(spaces[borrower]).items
            ),
            timeout=30,
            what="a dry run refused by the budget",
        )
        for _ in range(15):
            scenario.wait_passes(stack, 1)
            driver.schedule_pending()
            assert "free" in _names(k8s, spaces[borrower]), "the unprotected victim was evicted"
        assert len(scenario.running_on_nodes(k8s, [spaces[borrower]])) == capacity
    assert _preempted_events(k8s, spaces[borrower]) == [], "Preempted only after an eviction"
    preemptions = stack.operator_metrics().get(
        "gpufair_preemptions_total", tenant=borrower, pool=pool, reason="Reclaim"
    )
    assert not preemptions


def test_an_operator_killed_mid_reclaim_finishes_it_once_restarted(
    stack: scenario.Stack,
    k8s: Any,
    kubectl: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    assert stack.operator is not None
    assert stack.operator.process is not None
    pool, node = scenario.unique("killreclaim"), scenario.unique("n")
    capacity = len(nodes.topology_of(DGX1).gpus)
    guarantee = capacity // 2
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    owner, borrower, spaces = scenario.owner_and_borrower(cleanup, pool, guarantee=guarantee)
    created: list[str] = []
    fresh = (f"job-{i}" for i in itertools.count())

    def job_controller() -> None:
        """Keep ``capacity`` borrower pods: an evicted pod is recreated (gated again)."""
        for _ in range(capacity - len(scenario.pods(k8s, spaces[borrower]))):
            created.append(next(fresh))
            scenario.submit(k8s, spaces[borrower], created[-1], 1)

    def evicted() -> set[str]:
        return set(created) - _names(k8s, spaces[borrower])

    scenario.wait_known(k8s, owner, borrower)
    with stack.driver(spaces.values()) as driver:
        job_controller()
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [spaces[borrower]])) == capacity,
            timeout=60,
            what="the borrower runs on the whole pool",
            driver=driver,
        )
    for i in range(guarantee):
        scenario.submit(k8s, spaces[owner], f"own-{i}", 1)
    waiting.wait_for(lambda: evicted(), timeout=30, interval=0.05, what="the first eviction")
    os.killpg(stack.operator.process.pid, signal.SIGKILL)
    stack.operator.process.wait(timeout=10)
    killed_after = len(evicted())
    stack.operator.start()
    scenario.wait_for_webhook(kubectl)

    with stack.driver(spaces.values()) as driver:

        def settled() -> bool:
            job_controller()
            owned = len(scenario.running_on_nodes(k8s, [spaces[owner]]))
            return owned == guarantee and len(evicted()) == guarantee

        scenario.settle(
            settled,
            timeout=CONVERGENCE_SECONDS,
            what="the restarted operator finished the reclaim",
            driver=driver,
        )
        for _ in range(5):  # settled: nothing more is evicted
            scenario.wait_passes(stack, 1)
            job_controller()
            driver.schedule_pending()
    assert 1 <= killed_after <= guarantee
    assert len(evicted()) == guarantee, "exactly the GPUs the owner needed, no pod evicted twice"
    assert len(scenario.running_on_nodes(k8s, [spaces[owner]])) == guarantee
    assert scenario.shared_gpus(k8s, [node]) == {}


def test_a_notready_node_with_a_stuck_pod_does_not_stop_reclaim_elsewhere(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool = scenario.unique("notready")
    lost, healthy = scenario.unique("lost"), scenario.unique("ok")
    per_node = len(nodes.topology_of(DGX1).gpus)
    for name in (lost, healthy):
        make_gpu_node(name, DGX1, labels={scenario.POOL_LABEL: pool})
    owner, borrower, spaces = scenario.owner_and_borrower(cleanup, pool, guarantee=per_node // 2)
    scenario.wait_known(k8s, owner, borrower)
    with stack.driver(spaces.values()) as driver:
        for i in range(2 * per_node):
            scenario.submit(k8s, spaces[borrower], f"b-{i}", 1)
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [spaces[borrower]])) == 2 * per_node,
            timeout=60,
            what="the borrower runs on both nodes",
            driver=driver,
        )
        on_lost = sorted(
            p["metadata"]["name"]
            for p in scenario.running_on_nodes(k8s, [spaces[borrower]])
            if p["spec"]["nodeName"] == lost
        )
        stuck = on_lost[0]
        k8s.core.patch_namespaced_pod(
            stuck, spaces[borrower], {"metadata": {"finalizers": ["e2e.gpufair.dev/hold"]}}
        )
        k8s.core.delete_namespaced_pod(stuck, spaces[borrower])
        k8s.core.patch_node_status(
            lost,
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Lost"}]}},
        )
        try:
            for i in range(per_node // 2):
                scenario.submit(k8s, spaces[owner], f"own-{i}", 1)
            scenario.settle(
                lambda: len(scenario.running_on_nodes(k8s, [spaces[owner]])) == per_node // 2,
                timeout=CONVERGENCE_SECONDS,
                what="the owner's guarantee reclaimed on the healthy node",
                driver=driver,
            )
            owner_nodes = {
                p["spec"]["nodeName"] for p in scenario.running_on_nodes(k8s, [spaces[owner]])
            }
            assert owner_nodes == {healthy}
            still_on_lost = {
                p["metadata"]["name"]
                for p in scenario.pods(k8s, spaces[borrower])
                if p["spec"].get("nodeName") == lost
            }
            assert still_on_lost == set(on_lost), "nothing on the NotReady node was evicted"
            assert scenario.shared_gpus(k8s, [healthy]) == {}
        finally:
            k8s.core.patch_namespaced_pod(
                stuck, spaces[borrower], {"metadata": {"finalizers": None}}
            )
