"""The all-or-nothing fit of a pod group in a pool: whole plans on fewest machines, or why not."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import topology as topo

from gpufair.core import gang, policy
from gpufair.core.gang import GangNoFit, GangPlan, NodeRoom

REQUIRED = policy.TopologyRule.REQUIRED


def room(
    name: str, free: Sequence[int] = range(8), *, shape: str = "dgx1", domain: str | None = None
) -> NodeRoom:
    shapes = {"dgx1": topo.dgx1, "pcie8": topo.pcie8, "nvswitch8": topo.nvswitch8}
    return NodeRoom(name=name, topology=shapes[shape](), free=frozenset(free), domain=domain)


def used(plan: GangPlan) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for placed in plan.placements:
        out.setdefault(placed.node, []).extend(placed.gpus)
    return {node: sorted(gpus) for node, gpus in out.items()}


@pytest.mark.parametrize(
    ("requests", "nodes", "machines"),
    [
        pytest.param([4, 4], [room("a"), room("b")], 1, id="two-halves-share-one-machine"),
        pytest.param([8, 8], [room("a"), room("b"), room("c")], 2, id="whole-machines"),
        pytest.param(
            [4, 2, 2],
            [room("a", [0, 1, 2, 3]), room("b", [4, 5, 6, 7]), room("c")],
            1,
            id="fewest-machines-not-first-fit",
        ),
        pytest.param(
            [3, 3, 2, 2, 2, 2, 2],
            [room(n, range(8)) for n in "abc"],
            2,
            id="seven-members-two-machines",
        ),
    ],
)
def test_fit_on_fewest_machines(requests: list[int], nodes: list[NodeRoom], machines: int) -> None:
    plan = gang.fit(requests, nodes)
    assert isinstance(plan, GangPlan)
    assert plan.machines == machines
    assert [p.member for p in plan.placements] == list(range(len(requests)))


def test_four_gpu_members_get_an_island_each_when_required() -> None:
    plan = gang.fit([4, 4], [room("a"), room("b")], rule=REQUIRED)
    assert isinstance(plan, GangPlan)
    assert sorted(p.gpus for p in plan.placements) == [(0, 1, 2, 3), (4, 5, 6, 7)]


@pytest.mark.parametrize(
    ("requests", "nodes", "kwargs", "reason"),
    [
        pytest.param(
            [8, 8, 8, 8],
            [room("a"), room("b"), room("c", [0, 1, 2, 3])],
            {},
            "group of 4 pods (8+8+8+8 GPUs) needs 32 GPUs at once; the pool has 20 free",
            id="too-few-free-gpus",
        ),
        pytest.param(
            [8, 2],
            [room("a", range(6)), room("b", range(6))],
            {},
            "group of 2 pods (8+2 GPUs): no node has 8 free GPUs for its widest pod (most free: 6)",
            id="widest-pod-fits-no-node",
        ),
        pytest.param(
            [4, 4],
            [room("a", [0, 1, 4, 5]), room("b", [2, 3, 6, 7])],
            {"rule": REQUIRED},
            "group of 2 pods (4+4 GPUs): no node has a free NVLink island for a 4-GPU pod "
            "(largest free island: 2; the pool requires one)",
            id="required-island",
        ),
        pytest.param(
            [6, 6],
            [room("a", range(7)), room("b", range(5)), room("c", range(3))],
            {},
            "group of 2 pods (6+6 GPUs): the free GPUs cannot hold every pod at once "
            "(free per node: 7, 5, 3)",
            id="no-two-nodes-with-six",
        ),
        pytest.param(
            [8, 8],
            [room("a", domain="x"), room("b", domain="y")],
            {"one_domain": True},
            "group of 2 pods (8+8 GPUs): no NVLink domain can hold every pod at once "
            "(most free GPUs in one domain: 8)",
            id="one-domain",
        ),
    ],
)
def test_no_fit_says_why(
    requests: list[int], nodes: list[NodeRoom], kwargs: dict[str, object], reason: str
) -> None:
    assert gang.fit(requests, nodes, **kwargs) == GangNoFit(reason=reason)  # type: ignore[arg-type]


def test_one_domain_keeps_the_group_in_the_clique_that_holds_it() -> None:
    nodes = [room("a", domain="x"), room("b", domain="y"), room("c", domain="y")]
    plan = gang.fit([8, 8], nodes, one_domain=True)
    assert isinstance(plan, GangPlan)
    assert plan.domain == "y"
    assert set(used(plan)) == {"b", "c"}


@pytest.mark.parametrize(
    ("requests", "nodes", "message"),
    [
        pytest.param([], [room("a")], "at least one member", id="empty"),
        pytest.param([2, 0], [room("a")], "at least one GPU", id="zero-gpu-member"),
        pytest.param([2], [room("a"), room("a")], "distinct", id="duplicate-node"),
    ],
)
def test_bad_input(requests: list[int], nodes: list[NodeRoom], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gang.fit(requests, nodes)


# -- properties ----------------------------------------------------------------------------

SHAPES = ("dgx1", "pcie8", "nvswitch8")


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[int], list[NodeRoom]]:
    count = draw(st.integers(1, 4))
    nodes = [
        room(
            f"n{i}",
            sorted(draw(st.sets(st.integers(0, 7)))),
            shape=draw(st.sampled_from(SHAPES)),
            domain=draw(st.sampled_from([None, "x", "y"])),
        )
        for i in range(count)
    ]
    requests = draw(st.lists(st.integers(1, 8), min_size=1, max_size=5))
    return requests, nodes


def fewest_machines_by_brute_force(requests: list[int], nodes: list[NodeRoom]) -> int | None:
    """Bin packing by trying every member -> node map (Preferred: a pod fits by count alone)."""
    best: int | None = None
    for assignment in itertools.product(range(len(nodes)), repeat=len(requests)):
        load = [0] * len(nodes)
        for member, node in enumerate(assignment):
            load[node] += requests[member]
        if all(load[i] <= len(nodes[i].free) for i in range(len(nodes))):
            machines = len(set(assignment))
            best = machines if best is None else min(best, machines)
    return best


@settings(max_examples=200, deadline=None)
@given(pools(), st.sampled_from(list(policy.TopologyRule)), st.booleans())
def test_never_a_partial_plan(
    pool: tuple[list[int], list[NodeRoom]], rule: policy.TopologyRule, one_domain: bool
) -> None:
    requests, nodes = pool
    answer = gang.fit(requests, nodes, rule=rule, one_domain=one_domain)
    if isinstance(answer, GangNoFit):
        assert answer.reason
        return
    by_name = {node.name: node for node in nodes}
    assert [p.member for p in answer.placements] == list(range(len(requests)))
    for placed in answer.placements:
        assert len(placed.gpus) == requests[placed.member]
    for name, gpus in used(answer).items():
        assert len(gpus) == len(set(gpus)), "two members share a GPU"
        assert set(gpus) <= by_name[name].free
    assert answer.machines == len(used(answer))
    if one_domain:
        domains = {by_name[name].domain for name in used(answer)}
        assert len(domains) == 1
        if None in domains:
            assert answer.machines == 1


@settings(max_examples=200, deadline=None)
@given(pools())
def test_preferred_fits_exactly_when_packing_exists_on_fewest_machines(
    pool: tuple[list[int], list[NodeRoom]],
) -> None:
    requests, nodes = pool
    answer = gang.fit(requests, nodes)
    expected = fewest_machines_by_brute_force(requests, nodes)
    if expected is None:
        assert isinstance(answer, GangNoFit)
    else:
        assert isinstance(answer, GangPlan)
        assert answer.machines == expected
