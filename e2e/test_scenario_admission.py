"""Scenarios: admission through the operator's real webhook and its fair-share admission loop.

One ``gpufair operator`` (admission webhook over HTTPS, managed by kopf) and one ``gpufair
extender`` serve this module; the scheduler driver plays kube-scheduler. Each test has its own
nodes, pool, quotas and namespaces:

- limits: ``onLimit: Queue`` keeps an over-limit pod behind the gate with a ``Waiting`` event
  that says why; ``onLimit: Reject`` has the webhook deny it at creation;
- a burst of pods created at once under ``onLimit: Reject`` (as a Job's pods arrive): the
  webhook counts what it accepted since the operator's last pass, so only the limit's worth
  is accepted and the rest is denied at creation (issue 13 item 10);
- a pod the webhook gated in a namespace that belongs to no tenant is released (regression);
- weighted fair admission under contention (weights 1 and 3, both queueing a whole pool):
  the GPUs bound converge to the weighted shares and stay there;
- budget exhaustion: a tiny hard budget gets ``BudgetExhausted`` and stops admission (the pod
  waits with a reason under ``Queue``, is denied at creation under ``Reject``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.harness import nodes, scenario

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


def _bound(k8s: Any, namespace: str, name: str) -> dict[str, Any] | None:
    pod = scenario.read_pod(k8s, namespace, name)
    return pod if pod["spec"].get("nodeName") else None


def _allocated(k8s: Any, tenant: str, pool: str, gpus: int) -> bool:
    return scenario.pool_entry(scenario.quota_status(k8s, tenant), pool).get("allocated") == gpus


def _waiting_message(k8s: Any, namespace: str, name: str) -> str | None:
    """The newest ``Waiting`` event of the pod (the operator says why it stays gated)."""
    messages = [
        str(e.get("message") or "")
        for e in scenario.events_of(k8s, namespace, name)
        if e.get("reason") == "Waiting"
    ]
    return messages[-1] if messages else None


def test_a_burst_under_reject_is_accepted_up_to_the_limit_only(
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    import concurrent.futures

    import kubernetes

    pool, tenant, node = scenario.unique("burst"), scenario.unique("tenant"), scenario.unique("n")
    limit, burst = 2, 6
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    cleanup.apply(
        scenario.quota_manifest(
            tenant,
            namespaces=[namespace],
            pools=[{"name": pool, "limit": limit}],
            on_limit="Reject",
        )
    )
    scenario.wait_known(k8s, tenant)
    scenario.wait_passes(stack, 1)

    def create(index: int) -> int:
        try:
            scenario.submit(k8s, namespace, f"burst-{index}", 1)
        except kubernetes.client.ApiException as error:
            return int(error.status)
        return 201

    with concurrent.futures.ThreadPoolExecutor(max_workers=burst) as pool_of_threads:
        answers = sorted(pool_of_threads.map(create, range(burst)))
    assert answers == [201] * limit + [403] * (burst - limit)
    assert len(scenario.pods(k8s, namespace)) == limit
    with stack.driver([namespace]) as driver:
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [namespace])) == limit,
            timeout=30,
            what="the accepted pods run",
            driver=driver,
        )


@pytest.mark.parametrize("on_limit", ["Queue", "Reject"])
def test_a_pod_over_the_limit_waits_with_a_reason_or_is_denied(
    on_limit: str,
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    import kubernetes

    pool, tenant, node = scenario.unique("lim"), scenario.unique("tenant"), scenario.unique("n")
    limit = 2
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    cleanup.apply(
        scenario.quota_manifest(
            tenant,
            namespaces=[namespace],
            pools=[{"name": pool, "limit": limit}],
            on_limit=on_limit,
        )
    )
    scenario.wait_known(k8s, tenant)
    scenario.submit(k8s, namespace, "first", limit)

    with stack.driver([namespace]) as driver:
        scenario.settle(
            lambda: _bound(k8s, namespace, "first"), timeout=30, what="first bound", driver=driver
        )
    scenario.settle(
        lambda: _allocated(k8s, tenant, pool, limit),
        timeout=30,
        what=f"the quota shows {limit} GPUs allocated",
    )
    scenario.wait_passes(stack, 1)  # the webhook knows what that pass knew

    if on_limit == "Reject":
        with pytest.raises(kubernetes.client.ApiException) as denied:
            scenario.submit(k8s, namespace, "second", 1)
        assert denied.value.status == 403
        body = str(denied.value.body)
        assert f"tenant {tenant}" in body
        assert "onLimit: Reject" in body
        assert f"{limit}/{limit}" in body, "the message gives the figures"
        assert [p["metadata"]["name"] for p in scenario.pods(k8s, namespace)] == ["first"]
        rejected = stack.operator_metrics().value(
            "gpufair_admission_rejections_total", tenant=tenant, pool=pool, reason="AtLimit"
        )
        assert rejected == 1
        return

    scenario.submit(k8s, namespace, "second", 1)
    message = scenario.settle(
        lambda: _waiting_message(k8s, namespace, "second"),
        timeout=30,
        what="a Waiting event on the queued pod",
    )
    assert "limit" in message
    assert tenant in message
    assert scenario.is_gated(scenario.read_pod(k8s, namespace, "second"))
    status = scenario.settle(
        lambda: (
            scenario.pool_entry(scenario.quota_status(k8s, tenant), pool).get("waiting") == 1
            and scenario.quota_status(k8s, tenant)
        ),
        timeout=30,
        what="the quota counts one waiting pod",
    )
    assert scenario.pool_entry(status, pool)["allocated"] == limit
    waiting_pods = stack.operator_metrics().value(
        "gpufair_tenant_waiting_pods", tenant=tenant, pool=pool
    )
    assert waiting_pods == 1
    # More scheduling rounds change nothing: the gated pod is not the scheduler's to place.
    with stack.driver([namespace]) as driver:
        assert driver.schedule_pending() == []
    assert scenario.is_gated(scenario.read_pod(k8s, namespace, "second"))


def test_a_pod_gated_in_a_namespace_of_no_tenant_is_released(
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    # A webhook that knew no tenants yet (first moments of the operator, a standby replica)
    # gates every GPU pod; here the pod is created gated as such a webhook would have left it.
    pool, node = scenario.unique("stray"), scenario.unique("n")
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("stray", 1, gated=True))

    released = scenario.settle(
        lambda: not scenario.is_gated(pod := scenario.read_pod(k8s, namespace, "stray")) and pod,
        timeout=30,
        what="the gate removed from the pod of a namespace without tenant",
    )
    assert released["spec"].get("nodeName") is None
    # The operator records the event after it acted (decide, act, record): wait for it too.
    name = "stray"
    scenario.settle(
        lambda: "Released" in {e.get("reason") for e in scenario.events_of(k8s, namespace, name)},
        timeout=30,
        what="a Released event on the pod",
    )

    # The extender then says why it cannot place it (the readable reason of FailedScheduling).
    with stack.driver([namespace]) as driver:
        attempts = driver.schedule_pending()
    assert [a.name for a in attempts] == ["stray"]
    assert attempts[0].node is None
    assert "belongs to no TenantQuota" in attempts[0].message


def test_weighted_fair_admission_converges_to_the_weighted_shares(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, node = scenario.unique("fair"), scenario.unique("n")
    weights = {scenario.unique("light"): 1, scenario.unique("heavy"): 3}
    namespaces = {tenant: cleanup.namespace() for tenant in weights}
    cleanup.apply(scenario.pool_manifest(pool))
    for tenant, weight in weights.items():
        cleanup.apply(
            scenario.quota_manifest(
                tenant, namespaces=[namespaces[tenant]], pools=[{"name": pool}], weight=weight
            )
        )
    # Both tenants queue more than the whole pool before it has a node: contention from the
    # first pass on.
    capacity = len(nodes.topology_of(DGX1).gpus)
    scenario.wait_known(k8s, *weights)
    for tenant in weights:
        for i in range(capacity):
            scenario.submit(k8s, namespaces[tenant], f"p{i}", 1)
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    expected = {t: capacity * w / sum(weights.values()) for t, w in weights.items()}

    def converged() -> bool:
        bound = {t: len(scenario.running_on_nodes(k8s, [namespaces[t]])) for t in weights}
        return bound == expected

    with stack.driver(namespaces.values()) as driver:
        scenario.settle(
            converged, timeout=60, what=f"bound GPUs per tenant = {expected}", driver=driver
        )
        scenario.wait_passes(stack, 3)
        driver.schedule_pending()
    assert converged(), "still at the weighted shares after more passes"
    metrics = stack.operator_metrics()
    for tenant, share in expected.items():
        entry = scenario.pool_entry(scenario.quota_status(k8s, tenant), pool)
        assert entry["fairShare"] == share
        assert entry["allocated"] == share
        assert entry["waiting"] == capacity - share, "the rest waits behind the gate"
        assert metrics.value("gpufair_tenant_allocated_gpus", tenant=tenant, pool=pool) == share
        assert metrics.value("gpufair_tenant_fair_share_gpus", tenant=tenant, pool=pool) == share
        gated = [p for p in scenario.pods(k8s, namespaces[tenant]) if scenario.is_gated(p)]
        assert len(gated) == capacity - share
    assert scenario.shared_gpus(k8s, [node]) == {}


@pytest.mark.parametrize("on_limit", ["Queue", "Reject"])
def test_an_exhausted_hard_budget_stops_admission(
    on_limit: str,
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, tenant, node = scenario.unique("budget"), scenario.unique("tenant"), scenario.unique("n")
    budget_hours = 0.0005  # 1.8 GPU-seconds
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    cleanup.apply(
        scenario.quota_manifest(
            tenant,
            namespaces=[namespace],
            pools=[{"name": pool}],
            budget={"gpuHours": budget_hours, "period": "720h", "enforcement": "Hard"},
            on_limit=on_limit,
        )
    )
    scenario.wait_known(k8s, tenant)
    scenario.submit(k8s, namespace, "first", 1)
    with stack.driver([namespace]) as driver:
        scenario.settle(
            lambda: _bound(k8s, namespace, "first"), timeout=30, what="first bound", driver=driver
        )

    def exhausted() -> dict[str, Any] | None:
        found = scenario.condition(scenario.quota_status(k8s, tenant), "BudgetExhausted")
        return found if found and found["status"] == "True" else None

    found = scenario.settle(exhausted, timeout=30, what="BudgetExhausted=True on the quota")
    assert found["reason"] == "BudgetExhausted"
    metrics = stack.operator_metrics()
    used = metrics.value("gpufair_tenant_budget_used_gpu_hours", tenant=tenant)
    assert used >= metrics.value("gpufair_tenant_budget_gpu_hours", tenant=tenant) == budget_hours

    if on_limit == "Reject":
        import kubernetes

        scenario.wait_passes(stack, 1)  # the webhook knows what that pass knew
        with pytest.raises(kubernetes.client.ApiException) as denied:
            scenario.submit(k8s, namespace, "second", 1)
        assert denied.value.status == 403
        assert f"tenant {tenant} GPU-hour budget exhausted" in str(denied.value.body)
        rejected = stack.operator_metrics().value(
            "gpufair_admission_rejections_total", tenant=tenant, pool=pool, reason="BudgetExhausted"
        )
        assert rejected == 1
        return

    scenario.submit(k8s, namespace, "second", 1)
    message = scenario.settle(
        lambda: _waiting_message(k8s, namespace, "second"),
        timeout=30,
        what="a Waiting event on the pod held by the budget",
    )
    assert "budget" in message
    scenario.wait_passes(stack, 2)
    assert scenario.is_gated(scenario.read_pod(k8s, namespace, "second")), "Hard: not admitted"
    status = scenario.quota_status(k8s, tenant)
    assert status["budget"]["usedGPUHours"] >= budget_hours
