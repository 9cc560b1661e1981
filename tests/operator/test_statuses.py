"""TenantQuota and GPUPool statuses: fields from core, conditions, one event per transition."""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import operator as b

from gpufair.operator import conditions, intents, plan
from gpufair.state import model

HALF_LIFE = 24 * b.HOUR


def condition(status: intents.TenantStatus | intents.PoolStatus, kind: str) -> model.Condition:
    return next(c for c in status.conditions if c.type == kind)


def test_tenant_status_reports_allocation_share_borrowing_and_waiting() -> None:
    decided = plan.plan(
        b.snap(
            now=100.0,
            nodes=[b.node("n1")],
            tenants=[
                dataclasses.replace(b.tenant("a").pool(guaranteed=2).build(), created_at=40.0),
                b.tenant("b").pool(guaranteed=2).build(),
            ],
            pods=[
                *(b.pod(f"a/p{i}").bound("n1", at=0.0, indices=[i]).build() for i in range(6)),
                b.pod("a/w").gpus(2).build(),
                b.pod("b/q").gpus(2).build(),
            ],
        ),
        half_life=HALF_LIFE,
    )
    a = decided.tenants["a"].pools[0]
    assert (a.allocated, a.guaranteed, a.borrowed, a.fair_share) == (6, 2, 4.0, 6.0)
    assert a.usage.gpu_seconds == pytest.approx(6 * 60), "metered from the quota's creation"
    b_status = decided.tenants["b"].pools[0]
    assert b_status.fair_share == 2.0
    assert [adm.pod.key for adm in decided.admissions] == ["b/q"], "b below share goes first"
    pool = decided.pools[b.POOL]
    assert (pool.capacity, pool.allocated, pool.free) == (8, 6, 2)
    assert pool.tenants == {"a": 6, "b": 0}


@pytest.mark.parametrize(
    ("tenants", "tenant", "kind", "reason"),
    [
        pytest.param(
            [b.tenant("a").invalid("spec.pools[0].guaranteed: must be <= limit (2)").build()],
            "a",
            conditions.Type.READY,
            "InvalidSpec",
            id="invalid-spec",
        ),
        pytest.param(
            [
                b.tenant("a").namespaces("shared").build(),
                b.tenant("b").namespaces("shared").build(),
            ],
            "b",
            conditions.Type.NAMESPACE_CONFLICT,
            "NamespaceConflict",
            id="namespace-conflict",
        ),
        pytest.param(
            [b.tenant("a").pool(guaranteed=6).build(), b.tenant("b").pool(guaranteed=6).build()],
            "a",
            conditions.Type.OVERCOMMITTED,
            "GuaranteesExceedCapacity",
            id="overcommitted",
        ),
        pytest.param(
            [b.tenant("a").pool("nope").build()],
            "a",
            conditions.Type.READY,
            "UnknownPool",
            id="unknown-pool",
        ),
    ],
)
def test_problems_become_conditions_with_a_warning_event(
    tenants: list[model.Tenant], tenant: str, kind: str, reason: str
) -> None:
    decided = plan.plan(
        b.snap(now=10.0, nodes=[b.node("n1")], tenants=tenants), half_life=HALF_LIFE
    )
    found = condition(decided.tenants[tenant], kind)
    bad = "False" if kind == conditions.Type.READY else "True"
    assert (found.status, found.reason) == (bad, reason)
    assert found.message
    warnings = [
        e for e in decided.events if e.target.name == tenant and e.type is intents.EventType.WARNING
    ]
    assert warnings, "the transition is an event"


def test_an_invalid_quota_gets_nothing_and_does_not_stop_the_others() -> None:
    decided = plan.plan(
        b.snap(
            now=10.0,
            nodes=[b.node("n1")],
            tenants=[
                b.tenant("bad").invalid("spec.weight: must be > 0").build(),
                b.tenant("ok").build(),
            ],
            pods=[b.pod("bad/p").build(), b.pod("ok/p").build()],
        ),
        half_life=HALF_LIFE,
    )
    assert [a.pod.key for a in decided.admissions] == ["ok/p"]
    assert decided.tenants["bad"].pools == ()
    assert condition(decided.tenants["ok"], conditions.Type.READY).status == "True"


def test_conditions_keep_their_transition_time_and_emit_one_event_per_transition() -> None:
    tenants = [b.tenant("a").pool(guaranteed=6).build(), b.tenant("b").pool(guaranteed=6).build()]
    first = plan.plan(b.snap(now=10.0, nodes=[b.node("n1")], tenants=tenants), half_life=HALF_LIFE)
    again = [dataclasses.replace(t, conditions=first.tenants[t.name].conditions) for t in tenants]
    second = plan.plan(b.snap(now=20.0, nodes=[b.node("n1")], tenants=again), half_life=HALF_LIFE)
    assert [e for e in second.events if e.target.kind is intents.ObjectKind.TENANT_QUOTA] == []
    over = condition(second.tenants["a"], conditions.Type.OVERCOMMITTED)
    assert over.last_transition == 10.0

    bigger = plan.plan(
        b.snap(now=30.0, nodes=[b.node("n1"), b.node("n2")], tenants=again), half_life=HALF_LIFE
    )
    assert condition(bigger.tenants["a"], conditions.Type.OVERCOMMITTED).status == "False"
    assert condition(bigger.tenants["a"], conditions.Type.OVERCOMMITTED).last_transition == 30.0
    assert [e.reason for e in bigger.events if e.target.name == "a"] == ["OvercommittedFalse"]


@pytest.mark.parametrize(
    ("nodes", "kind", "status", "reason"),
    [
        pytest.param([], conditions.Type.NO_NODES, "True", "NoMatchingNodes", id="no-nodes"),
        pytest.param(
            [b.node("n1", schedulable=False)],
            conditions.Type.READY,
            "False",
            "NoMatchingNodes",
            id="all-cordoned",
        ),
        pytest.param(
            [b.node("n1", labelled=False)],
            conditions.Type.TOPOLOGY_MISSING,
            "True",
            "TopologyLabelsMissing",
            id="no-topology-labels",
        ),
        pytest.param([b.node("n1")], conditions.Type.READY, "True", "NodesFound", id="ready"),
    ],
)
def test_pool_conditions(nodes: list[model.Node], kind: str, status: str, reason: str) -> None:
    decided = plan.plan(
        b.snap(now=1.0, nodes=nodes, tenants=[b.tenant("a").build()]), half_life=HALF_LIFE
    )
    found = condition(decided.pools[b.POOL], kind)
    assert (found.status, found.reason) == (status, reason)


def test_pool_reports_free_gpus_largest_island_and_fragmentation() -> None:
    decided = plan.plan(
        b.snap(
            now=1.0,
            nodes=[b.node("n1"), b.node("n2", pool="other")],
            tenants=[b.tenant("a").build()],
            pods=[b.pod("a/p").gpus(2).bound("n1", indices=[0, 1]).build()],
        ),
        half_life=HALF_LIFE,
    )
    pool = decided.pools[b.POOL]
    assert (pool.nodes, pool.capacity, pool.free, pool.largest_free_island) == (1, 8, 6, 4)
    assert pool.fragmentation == pytest.approx(2 / 6)


def test_a_cordoned_node_leaves_capacity_but_its_pods_still_count() -> None:
    decided = plan.plan(
        b.snap(
            now=1.0,
            nodes=[b.node("n1", schedulable=False), b.node("n2")],
            tenants=[b.tenant("a").build()],
            pods=[b.pod("a/p").gpus(4).bound("n1", indices=[0, 1, 2, 3]).build()],
        ),
        half_life=HALF_LIFE,
    )
    pool = decided.pools[b.POOL]
    assert (pool.capacity, pool.allocated, pool.free) == (8, 4, 8)
    assert decided.tenants["a"].pools[0].allocated == 4


@pytest.mark.parametrize(
    ("namespace", "synced", "released"),
    [
        pytest.param("nobody", True, True, id="namespace-of-no-tenant"),
        pytest.param("a", True, False, id="namespace-of-a-tenant"),
        pytest.param("unseen", True, False, id="namespace-not-seen-yet"),
        pytest.param("nobody", False, False, id="view-not-synced-yet"),
    ],
)
def test_only_gated_pods_of_namespaces_without_a_tenant_are_released(
    namespace: str, synced: bool, released: bool
) -> None:
    gated = b.pod(f"{namespace}/gated").build()
    bound = b.pod(f"{namespace}/bound").bound("n1", at=0.0, indices=[0]).build()
    snap = b.snap(
        now=10.0,
        nodes=[b.node("n1")],
        tenants=[b.tenant("a").build()],
        pods=[gated, bound],
        namespaces={"nobody": {}},
    )
    decided = plan.plan(dataclasses.replace(snap, synced=synced), half_life=3600.0)
    assert [r.pod.key for r in decided.releases] == ([gated.key] if released else [])
    assert not any(e.reason == "Released" for e in decided.events), "the reconciler's, once done"
