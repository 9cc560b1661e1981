"""Which pool a waiting pod belongs to, found through the per-pass pool membership index
(``scheduling.pool_members``) instead of a scan of every node per pod and pool."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from tests.builders import operator as b

from gpufair.state import model, occupancy, rules, scheduling

ZONE = "topology.kubernetes.io/zone"


def _node(name: str, *, pool: str | None, zone: str, **extra: str) -> model.Node:
    base = b.node(name)
    labels = {ZONE: zone, **extra}
    if pool is not None:
        labels[b.POOL_LABEL] = pool
    return dataclasses.replace(base, labels=labels)


NODES = (
    _node("a1", pool="a100", zone="z1"),
    _node("h1", pool="h100", zone="z1"),
    _node("h2", pool="h100", zone="z2"),
    _node("loose", pool=None, zone="z3"),
    # matched by both pools' selectors: it belongs to the alphabetically first, a100
    _node("both", pool="h100", zone="z4", **{"gpufair.test/also": "a100"}),
)
POOLS = (
    b.gpu_pool(
        "a100",
        selector={
            "matchExpressions": [{"key": b.POOL_LABEL, "operator": "In", "values": ["a100"]}]
        },
    ),
    b.gpu_pool("h100"),
    b.gpu_pool("empty"),
    b.gpu_pool("broken", selector={"matchLabels": {ZONE: "z1"}}, invalid="bad selector"),
)


def _also_a100(pool: model.Pool) -> model.Pool:
    """Pool a100 takes nodes labelled ``gpufair.test/also=a100`` (only node ``both``)."""
    if pool.name != "a100":
        return pool
    return dataclasses.replace(pool, selector={"matchLabels": {"gpufair.test/also": "a100"}})


@pytest.mark.parametrize(
    ("own", "selector", "expected"),
    [
        pytest.param(("a100", "h100"), {}, "a100", id="no-selector-first-pool"),
        pytest.param(("h100", "a100"), {}, "h100", id="no-selector-first-pool-of-this-tenant"),
        pytest.param(("a100", "h100"), {ZONE: "z2"}, "h100", id="only-h100-has-zone-z2"),
        pytest.param(("a100", "h100"), {ZONE: "z1"}, "a100", id="both-have-z1-first-wins"),
        pytest.param(("h100", "a100"), {ZONE: "z1"}, "h100", id="both-have-z1-order-matters"),
        pytest.param(("a100", "h100"), {ZONE: "z3"}, "a100", id="only-a-poolless-node-fallback"),
        pytest.param(("h100", "a100"), {ZONE: "z9"}, "h100", id="no-node-fits-fallback"),
        pytest.param(("empty", "h100"), {}, "h100", id="pool-without-nodes-skipped"),
        pytest.param(("empty", "h100"), {ZONE: "z9"}, "empty", id="nothing-fits-first-pool"),
        pytest.param(
            ("a100", "h100"),
            {ZONE: "z2", b.POOL_LABEL: "h100"},
            "h100",
            id="all-selector-terms-must-hold",
        ),
        pytest.param(
            ("a100", "h100"), {ZONE: "z1", b.POOL_LABEL: "h100"}, "h100", id="two-terms-h1"
        ),
    ],
)
def test_a_waiting_pod_goes_to_the_first_own_pool_with_a_node_its_selector_fits(
    own: tuple[str, ...], selector: Mapping[str, str], expected: str
) -> None:
    tenant = b.tenant("t")
    for name in own:
        tenant = tenant.pool(name)
    waiting = dataclasses.replace(b.pod("t/p").build(), node_selector=selector)
    decided = _place(
        b.snap(now=0.0, nodes=NODES, tenants=[tenant.build()], pods=[waiting], pools=POOLS)
    )
    assert decided == {waiting.uid: expected}


def test_a_node_matched_by_two_pools_counts_only_for_the_first() -> None:
    """Node ``both`` (zone z4) is selected by a100 and h100 and belongs to a100: a pod that
    asks for z4 goes to a100 even when its tenant lists h100 first."""
    tenant = b.tenant("t").pool("h100").pool("a100").build()
    waiting = dataclasses.replace(b.pod("t/p").build(), node_selector={ZONE: "z4"})
    shared_pools = [_also_a100(pool) for pool in POOLS]
    decided = _place(
        b.snap(now=0.0, nodes=NODES, tenants=[tenant], pods=[waiting], pools=shared_pools)
    )
    assert decided == {waiting.uid: "a100"}


def test_pods_sharing_a_selector_are_judged_per_pool_of_their_tenant() -> None:
    """The per-pass answer for a selector is kept per pool, not per selector alone."""
    first = b.tenant("t").pool("a100").pool("h100").build()
    second = b.tenant("u").pool("h100").pool("a100").build()
    pods = [
        dataclasses.replace(b.pod(f"{ns}/p{i}").build(), node_selector={ZONE: zone})
        for i, (ns, zone) in enumerate(
            [("t", "z2"), ("u", "z2"), ("t", "z1"), ("u", "z1"), ("u", "z9"), ("t", "z9")]
        )
    ]
    decided = _place(b.snap(now=0.0, nodes=NODES, tenants=[first, second], pods=pods, pools=POOLS))
    assert [decided[p.uid] for p in pods] == ["h100", "h100", "a100", "h100", "h100", "a100"]


@pytest.mark.parametrize(
    "pool_set",
    [
        pytest.param(POOLS, id="disjoint-selectors-with-invalid-and-empty-pools"),
        pytest.param(tuple(_also_a100(p) for p in POOLS), id="overlapping-selectors"),
        pytest.param((), id="no-pools"),
    ],
)
def test_pool_members_holds_each_node_under_the_first_valid_pool_whose_selector_matches(
    pool_set: tuple[model.Pool, ...],
) -> None:
    nodes = {node.name: node for node in NODES}
    by_name = {pool.name: pool for pool in pool_set}
    members = scheduling.pool_members(nodes, occupancy.pools_of_nodes(by_name, nodes))
    for name, node in nodes.items():
        matching = [
            pool
            for pool in sorted(by_name)
            if by_name[pool].invalid is None
            and rules.selector_matches(by_name[pool].selector, node.labels)
        ]
        holding = [pool for pool, held in members.items() if node in held]
        assert holding == matching[:1], name
    assert all(held for held in members.values())


def _place(snap: model.Snapshot) -> dict[str, str]:
    owners, _ = scheduling.namespace_owners(snap)
    tenants = {name: t for name, t in snap.tenants.items() if t.invalid is None}
    placed = scheduling.place_pods(
        snap,
        owners=owners,
        tenants=tenants,
        node_pool=occupancy.pools_of_nodes(snap.pools, snap.nodes),
    )
    return {pod.uid: pool for (_, pool), pods in placed.items() for pod in pods}
