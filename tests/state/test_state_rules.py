"""The shared cluster rules: pool of a node, namespace owner, free GPUs, waiting pool, claim."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders import kube

from gpufair.k8s import nodes
from gpufair.state import rules

TENANTS = [
    rules.TenantNamespaces(tenant="b", namespaces=frozenset({"team-a", "both"})),
    rules.TenantNamespaces(tenant="a", namespaces=frozenset({"both"})),
    rules.TenantNamespaces(tenant="w", selector={"matchLabels": {"team": "w"}}),
    rules.TenantNamespaces(tenant="v", selector={"matchLabels": {"team": "w"}}),
    rules.TenantNamespaces(tenant="bad", selector={"matchExpressions": [{"key": "x"}]}),
]


@pytest.mark.parametrize(
    ("namespace", "labels", "claimants"),
    [
        pytest.param("team-a", {}, ("b",), id="listed"),
        pytest.param("ml", {"team": "w"}, ("v", "w"), id="selected-alphabetically"),
        pytest.param("both", {"team": "w"}, ("a", "b", "v", "w"), id="listing-beats-selector"),
        pytest.param("other", {"team": "c"}, (), id="nobody"),
        pytest.param("ml", None, (), id="unseen-namespace-only-by-listing"),
        pytest.param("both", None, ("a", "b"), id="unseen-but-listed"),
    ],
)
def test_namespace_claimants(
    namespace: str, labels: Mapping[str, str] | None, claimants: tuple[str, ...]
) -> None:
    assert rules.namespace_claimants(namespace, labels=labels, tenants=TENANTS) == claimants
    owner = rules.namespace_owner(namespace, labels=labels, tenants=TENANTS)
    assert owner == (claimants[0] if claimants else None)


POOLS = {
    "b-pool": {"matchLabels": {"gpu": "h100"}},
    "a-pool": {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100", "a100"]}]},
    "0-bad": {"matchExpressions": [{"key": "gpu", "operator": "Near"}]},
    "none": None,
}


@pytest.mark.parametrize(
    ("labels", "pool"),
    [
        pytest.param({"gpu": "h100"}, "a-pool", id="first-by-name-of-overlapping"),
        pytest.param({"gpu": "a100"}, "a-pool", id="expression"),
        pytest.param({"gpu": "t4"}, None, id="none-matches"),
    ],
)
def test_pool_of_node(labels: dict[str, str], pool: str | None) -> None:
    bad: list[str] = []
    assert rules.pool_of_node(POOLS, labels, on_bad_selector=lambda n, m: bad.append(n)) == pool
    assert bad == ["0-bad"]


@pytest.mark.parametrize(
    ("labelled", "allocatable", "held", "usable"),
    [
        pytest.param(8, 7, [({0, 1}, 2), ({4, 5, 6, 7}, 4)], {2}, id="issue-8-labelled-7-alloc"),
        pytest.param(8, 8, [(None, 3)], {0, 1, 2, 3, 4}, id="unrecorded-take-the-highest"),
        pytest.param(4, 8, [({1}, 1)], {0, 2, 3}, id="fewer-labels-than-allocatable"),
        pytest.param(8, 0, [], set(), id="nothing-allocatable"),
        pytest.param(2, 2, [({0, 1}, 2), (None, 1)], set(), id="overcommitted"),
    ],
)
def test_free_gpus(
    labelled: int, allocatable: int, held: list[tuple[set[int] | None, int]], usable: set[int]
) -> None:
    free = rules.free_gpus(
        gpus=kube.dgx1() if labelled == 8 else nodes.flat_topology(labelled),
        allocatable=allocatable,
        held=[(frozenset(r) if r is not None else None, n) for r, n in held],
    )
    assert free.usable == usable


@given(
    labelled=st.integers(0, 8),
    allocatable=st.integers(0, 10),
    recorded=st.lists(st.frozensets(st.integers(0, 9), max_size=3), max_size=3),
    unrecorded=st.lists(st.integers(0, 3), max_size=3),
)
def test_usable_gpus_are_the_lowest_free_ones_within_what_allocatable_leaves(
    labelled: int, allocatable: int, recorded: list[frozenset[int]], unrecorded: list[int]
) -> None:
    """GPUs held without a known labelled index (unrecorded, or recorded outside the labels)
    still count against the node."""
    gpus = nodes.flat_topology(labelled)
    held = [(r, len(r)) for r in recorded] + [(None, n) for n in unrecorded]
    free = rules.free_gpus(gpus=gpus, allocatable=allocatable, held=held)
    labels = set(range(labelled))
    taken = set().union(*recorded) & labels if recorded else set()
    held_elsewhere = sum(len(r - labels) for r in recorded) + sum(unrecorded)
    left = min(labelled, allocatable) - len(taken) - held_elsewhere
    assert free.usable <= labels - taken
    assert len(free.usable) == max(0, min(left, len(labels - taken)))
    assert sorted(free.usable) == sorted(labels - taken)[: len(free.usable)]


@pytest.mark.parametrize(
    ("fitting", "pool"),
    [
        pytest.param({"b", "c"}, "b", id="first-fitting"),
        pytest.param({"c"}, "c", id="only-the-last-fits"),
        pytest.param(set(), "a", id="nothing-fits-first-pool"),
    ],
)
def test_waiting_pool(fitting: set[str], pool: str) -> None:
    assert rules.waiting_pool(tenant_pools=["a", "b", "c"], fits=fitting.__contains__) == pool


def test_tenant_claim_demand_is_held_plus_waiting() -> None:
    claim = rules.tenant_claim(
        tenant="t", weight=2.0, guaranteed=1, limit=None, lendable=None, held=3, waiting=4
    )
    assert (claim.tenant, claim.weight, claim.guaranteed, claim.demand) == ("t", 2.0, 1, 7)
