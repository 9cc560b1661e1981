"""The admission webhook's verdict: gate GPU pods of tenants, deny only for onLimit: Reject."""

from __future__ import annotations

from typing import Any

import pytest

from gpufair.api import names
from gpufair.core import admission, policy
from gpufair.operator import webhook

RESOURCES = ("nvidia.com/gpu",)


def pod_body(gpus: int = 1, *, gates: list[str] | None = None, pool: str | None = None) -> Any:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    meta: dict[str, Any] = {"name": "p", "namespace": "team-a"}
    if pool:
        meta["annotations"] = {names.POOL_ANNOTATION: pool}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "resources": resources}]}
    if gates:
        spec["schedulingGates"] = [{"name": gate} for gate in gates]
    return {"metadata": meta, "spec": spec}


def knowing(
    *,
    allocated: int,
    limit: int | None,
    on_limit: policy.OnLimit,
    budget: admission.Budget | None = None,
) -> webhook.Knowledge:
    return webhook.Knowledge(
        owners={"team-a": "a"},
        pools={"a": ("h100",)},
        states={
            "a": admission.TenantState(
                tenant="a",
                allocated={"h100": allocated},
                limits={"h100": limit},
                on_limit=on_limit,
                budget=budget,
            )
        },
    )


def review(
    body: Any, knowledge: webhook.Knowledge | None, labels: dict[str, str] | None = None
) -> webhook.Verdict:
    return webhook.review(
        body,
        namespace="team-a",
        namespace_labels=labels or {},
        resources=RESOURCES,
        knowledge=knowledge,
    )


def test_a_gpu_pod_is_gated_and_sent_to_the_gpufair_scheduler() -> None:
    verdict = review(
        pod_body(gates=["other.io/gate"]),
        knowing(allocated=0, limit=8, on_limit=policy.OnLimit.QUEUE),
    )
    assert isinstance(verdict, webhook.Gate)
    assert verdict.scheduler_name == names.SCHEDULER_NAME
    assert verdict.gates == ({"name": "other.io/gate"}, {"name": names.ADMISSION_GATE})


@pytest.mark.parametrize(
    ("body", "labels", "knowledge"),
    [
        pytest.param(pod_body(gpus=0), {}, None, id="no-gpu"),
        pytest.param(pod_body(), {names.OPT_OUT_LABEL: "disabled"}, None, id="namespace-opted-out"),
        pytest.param(
            pod_body(),
            {},
            webhook.Knowledge(owners={}, pools={}, states={}),
            id="namespace-of-no-tenant",
        ),
    ],
)
def test_pods_gpufair_does_not_manage_are_left_alone(
    body: Any, labels: dict[str, str], knowledge: webhook.Knowledge | None
) -> None:
    assert isinstance(review(body, knowledge, labels), webhook.Skip)


def test_before_the_first_pass_pods_are_gated_never_denied() -> None:
    assert isinstance(review(pod_body(gpus=64), None), webhook.Gate)


@pytest.mark.parametrize(
    ("on_limit", "allocated", "budget", "expected"),
    [
        pytest.param(policy.OnLimit.REJECT, 8, None, webhook.Deny, id="reject-at-limit"),
        pytest.param(policy.OnLimit.QUEUE, 8, None, webhook.Gate, id="queue-at-limit"),
        pytest.param(policy.OnLimit.REJECT, 4, None, webhook.Gate, id="reject-below-limit"),
        pytest.param(
            policy.OnLimit.REJECT,
            0,
            admission.Budget(gpu_hours=10, used_gpu_hours=10),
            webhook.Deny,
            id="reject-out-of-hard-budget",
        ),
        pytest.param(
            policy.OnLimit.REJECT,
            0,
            admission.Budget(
                gpu_hours=10, used_gpu_hours=10, enforcement=policy.BudgetEnforcement.SOFT
            ),
            webhook.Gate,
            id="soft-budget-only-reports",
        ),
    ],
)
def test_deny_only_when_the_policy_says_reject(
    on_limit: policy.OnLimit, allocated: int, budget: admission.Budget | None, expected: type
) -> None:
    verdict = review(
        pod_body(gpus=2),
        knowing(allocated=allocated, limit=8, on_limit=on_limit, budget=budget),
    )
    assert isinstance(verdict, expected)
    if isinstance(verdict, webhook.Deny):
        assert "tenant a" in verdict.message
        assert "onLimit: Reject" in verdict.message


def passed(cluster: Any, now: float = 10.0) -> Any:
    """A pass over the store, published as the reconciler publishes it for the webhook."""
    from gpufair.operator import plan, reconciler

    snap = cluster.take_snapshot(now=now)
    return reconciler.publication(snap, plan.plan(snap, half_life=3600.0))


def test_the_kopf_handler_patches_the_pod_or_denies_it() -> None:
    """Before the first pass: gated. After a pass that saw the tenant at its limit: denied."""
    import types

    import kopf
    from tests.builders import operator as b

    from gpufair.operator import store, webhook_handlers

    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    patch = kopf.Patch()
    webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=2)), patch=patch, memo=memo)
    assert patch == {
        "spec": {
            "schedulerName": names.SCHEDULER_NAME,
            "schedulingGates": [{"name": names.ADMISSION_GATE}],
        }
    }

    memo.store.nodes = {"n1": b.node("n1")}
    memo.store.pools = {b.POOL: b.gpu_pool()}
    memo.store.tenants = {
        "a": b.tenant("a")
        .namespaces("team-a")
        .pool(limit=8)
        .on_limit(policy.OnLimit.REJECT)
        .build()
    }
    memo.store.pods = {
        p.uid: p for p in (b.pod(f"team-a/p{i}").bound("n1", indices=[i]).build() for i in range(8))
    }
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store))
    with pytest.raises(kopf.AdmissionError, match="tenant a at limit 8/8 GPUs in pool h100"):
        webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=2)), patch=kopf.Patch(), memo=memo)


def test_a_pod_created_right_after_its_quota_is_gated_before_the_next_pass() -> None:
    """Ownership is the store's, not the last pass's: a new tenant's pod is not waved through."""
    import types

    import kopf
    from tests.builders import operator as b

    from gpufair.operator import store, webhook_handlers
    from gpufair.state import model

    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    memo.store.nodes = {"n1": b.node("n1")}
    memo.store.pools = {b.POOL: b.gpu_pool()}
    memo.store.namespaces = {"team-a": model.Namespace(name="team-a")}
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store))
    skipped = kopf.Patch()
    webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=1)), patch=skipped, memo=memo)
    assert skipped == {}, "no tenant owns team-a yet: not gpufair's pod"

    memo.store.tenants = {"a": b.tenant("a").namespaces("team-a").build()}  # no pass since
    gated = kopf.Patch()
    webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=1)), patch=gated, memo=memo)
    assert gated["spec"]["schedulingGates"] == [{"name": names.ADMISSION_GATE}]


def test_a_pod_of_a_namespace_the_view_has_not_seen_is_gated() -> None:
    import types

    import kopf

    from gpufair.operator import store, webhook_handlers

    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store))
    patch = kopf.Patch()
    webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=1)), patch=patch, memo=memo)
    assert patch["spec"]["schedulingGates"] == [{"name": names.ADMISSION_GATE}]


def _reject_tenant_memo(*, limit: int) -> Any:
    import kopf
    from tests.builders import operator as b

    from gpufair.operator import store

    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    memo.store.nodes = {"n1": b.node("n1")}
    memo.store.pools = {b.POOL: b.gpu_pool()}
    memo.store.tenants = {
        "a": b.tenant("a")
        .namespaces("team-a")
        .pool(limit=limit)
        .on_limit(policy.OnLimit.REJECT)
        .build()
    }
    return memo


def test_a_burst_of_concurrent_reviews_cannot_pass_a_reject_limit_together() -> None:
    """Issue 13 item 10: limit 2, holding 0, eight 1-GPU pods reviewed at once from eight
    threads (as a Job's pods arrive): exactly two are accepted; once a pass has seen those
    two (gated, with their tokens), the pass counts them and the ledger forgets them."""
    import dataclasses
    import threading
    import types

    import kopf
    from tests.builders import operator as b

    from gpufair.operator import webhook_handlers

    memo = _reject_tenant_memo(limit=2)
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store))
    start = threading.Barrier(8)
    outcomes: list[kopf.Patch | str] = []

    def create() -> None:
        patch = kopf.Patch()
        start.wait()
        try:
            webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=1)), patch=patch, memo=memo)
        except kopf.AdmissionError as error:
            outcomes.append(str(error))
        else:
            outcomes.append(patch)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [o for o in outcomes if isinstance(o, kopf.Patch)]
    denied = [o for o in outcomes if isinstance(o, str)]
    assert (len(accepted), len(denied)) == (2, 6)
    assert all("limit" in message for message in denied)
    tokens = [p["metadata"]["annotations"][names.ADMISSION_TOKEN_ANNOTATION] for p in accepted]

    seen = [
        dataclasses.replace(b.pod(f"team-a/q{i}").build(), admission_token=token)
        for i, token in enumerate(tokens)
    ]
    memo.store.pods = {pod.uid: pod for pod in seen}
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store, now=20.0))
    assert webhook_handlers.ledger_of(memo).pending(seen=frozenset(tokens), now=20.0) == {}
    with pytest.raises(kopf.AdmissionError, match="at limit 2/2"):
        webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=1)), patch=kopf.Patch(), memo=memo)


def test_a_reject_pods_limit_is_that_of_the_pool_its_affinity_picks() -> None:
    """Issue 13 item 9 at the webhook: the pod's pool comes from its required affinity, as the
    pass will queue it, not from the tenant's first pool."""
    import types

    import kopf
    from tests.builders import operator as b

    from gpufair.operator import webhook_handlers

    memo = _reject_tenant_memo(limit=0)
    memo.store.nodes = {"a1": b.node("a1", pool="a100"), "h1": b.node("h1", pool="h100")}
    memo.store.pools = {"a100": b.gpu_pool("a100"), "h100": b.gpu_pool("h100")}
    memo.store.tenants = {
        "a": b.tenant("a")
        .namespaces("team-a")
        .pool("a100", limit=0)
        .pool("h100", limit=8)
        .on_limit(policy.OnLimit.REJECT)
        .build()
    }
    memo.reconciler = types.SimpleNamespace(published=passed(memo.store))
    body = pod_body(gpus=4)
    body["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": b.POOL_LABEL, "operator": "In", "values": ["h100"]}
                        ]
                    }
                ]
            }
        }
    }
    patch = kopf.Patch()
    webhook_handlers.admit_pod(body=kopf.Body(body), patch=patch, memo=memo)
    assert patch["spec"]["schedulingGates"] == [{"name": names.ADMISSION_GATE}]
    with pytest.raises(kopf.AdmissionError, match="pool a100"):
        webhook_handlers.admit_pod(body=kopf.Body(pod_body(gpus=4)), patch=kopf.Patch(), memo=memo)
