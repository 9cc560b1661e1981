"""GPU-set choice: quality first, then Pack keeps free islands whole, Spread takes the emptiest."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.topology import dgx1, islands4x2, node, node_with_free, nvswitch8, pcie8

from gpufair.core import placement, policy, topology

L = topology.LinkLevel
PACK = policy.PlacementMode.PACK
SPREAD = policy.PlacementMode.SPREAD
PREFERRED = policy.TopologyRule.PREFERRED
REQUIRED = policy.TopologyRule.REQUIRED
ALL8 = frozenset(range(8))


def free(*gpus: int) -> frozenset[int]:
    return frozenset(gpus)


@dataclasses.dataclass(frozen=True)
class Case:
    node: topology.NodeTopology
    free: frozenset[int]
    count: int
    want: tuple[int, ...] | str
    """The chosen GPUs, or the NoFit reason."""
    level: topology.LinkLevel | None = None
    mode: policy.PlacementMode = PACK
    rule: policy.TopologyRule = PREFERRED


CASES = [
    pytest.param(
        Case(dgx1(), free(2, 3, 4, 5, 6, 7), 2, (2, 3), L.NVLINK), id="pack-uses-the-fragment"
    ),
    pytest.param(
        Case(dgx1(), free(2, 3, 4, 5, 6, 7), 2, (4, 5), L.NVLINK, mode=SPREAD),
        id="spread-uses-the-emptiest-island",
    ),
    pytest.param(Case(dgx1(), free(1, 2, 3, 4, 5, 6, 7), 1, (1,), L.SELF), id="pack-one-gpu"),
    pytest.param(
        Case(dgx1(), free(1, 2, 3, 4, 5, 6, 7), 1, (4,), L.SELF, mode=SPREAD),
        id="spread-one-gpu",
    ),
    pytest.param(
        Case(dgx1(), free(0, 1, 2, 4, 5, 6, 7), 4, (4, 5, 6, 7), L.NVLINK), id="whole-island"
    ),
    pytest.param(
        Case(dgx1(), free(3, 4, 5, 6, 7), 2, (4, 5), L.NVLINK),
        id="quality-before-keeping-islands-whole",
    ),
    pytest.param(
        Case(nvswitch8(), free(2, 3, 4, 5, 6, 7), 2, (2, 3), L.NVLINK),
        id="pack-fills-the-fuller-numa-node",
    ),
    pytest.param(
        Case(nvswitch8(), ALL8, 4, (0, 1, 2, 3), L.NVLINK), id="nvswitch-stays-on-one-numa-node"
    ),
    pytest.param(
        Case(islands4x2(), free(0, 2, 3, 4, 6), 2, (2, 3), L.NVLINK), id="island-beats-all"
    ),
    pytest.param(Case(pcie8(), free(0, 2, 3, 4), 2, (2, 3), L.PIX), id="switch-beats-numa"),
    pytest.param(Case(pcie8(), free(0, 2, 4, 6), 2, (0, 2), L.NODE), id="numa-beats-machine"),
    pytest.param(Case(pcie8(), free(0, 4), 2, (0, 4), L.SYS), id="across-sockets"),
    pytest.param(
        Case(pcie8(), free(0, 2, 3, 4, 5, 6, 7), 2, (2, 3), L.PIX),
        id="pack-takes-fullest-numa-node",
    ),
    pytest.param(
        Case(pcie8(), free(0, 2, 3, 4, 5, 6, 7), 2, (4, 5), L.PIX, mode=SPREAD),
        id="spread-takes-emptiest-numa-node",
    ),
    pytest.param(Case(dgx1(), ALL8, 8, tuple(range(8)), L.SYS), id="whole-node"),
    pytest.param(
        Case(dgx1(), free(0, 1, 2, 4, 5, 6), 4, (0, 1, 2, 4), L.SYS),
        id="preferred-accepts-a-split",
    ),
    pytest.param(
        Case(
            dgx1(),
            free(0, 1, 2, 4, 5, 6),
            4,
            "no free NVLink island of 4 GPUs (largest free: 3)",
            rule=REQUIRED,
        ),
        id="required-refuses-a-split",
    ),
    pytest.param(
        Case(dgx1(), ALL8, 6, (0, 1, 2, 3, 4, 5), L.SYS, rule=REQUIRED),
        id="required-larger-than-any-island",
    ),
    pytest.param(
        Case(pcie8(), free(0, 4), 2, (0, 4), L.SYS, rule=REQUIRED),
        id="required-on-a-node-without-islands",
    ),
    pytest.param(
        Case(islands4x2(), free(0, 2, 4, 6), 1, (0,), L.SELF, rule=REQUIRED),
        id="required-single-gpu",
    ),
    pytest.param(Case(dgx1(), free(0, 5), 4, "2 free GPUs, 4 requested"), id="too-few-free"),
    pytest.param(Case(dgx1(), ALL8, 16, "node has 8 GPUs, 16 requested"), id="too-small"),
    pytest.param(Case(dgx1(), free(), 1, "0 free GPUs, 1 requested"), id="nothing-free"),
]


@pytest.mark.parametrize("case", CASES)
def test_choose(case: Case) -> None:
    result = placement.choose(
        case.node, free=case.free, count=case.count, mode=case.mode, rule=case.rule
    )
    if isinstance(case.want, str):
        assert result == placement.NoFit(reason=case.want)
    else:
        assert isinstance(result, placement.Choice)
        assert result.gpus == case.want
        assert result.level == case.level


def score(
    node_: topology.NodeTopology,
    free_: frozenset[int],
    count: int,
    mode: policy.PlacementMode = PACK,
) -> int:
    result = placement.choose(node_, free=free_, count=count, mode=mode)
    assert isinstance(result, placement.Choice)
    return result.score


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        pytest.param(
            (dgx1(), free(2, 3, 4, 5, 6, 7), 2, PACK),
            (dgx1(), ALL8, 2, PACK),
            id="pack-prefers-a-fragment-to-breaking-an-island",
        ),
        pytest.param(
            (nvswitch8(), free(4, 5), 2, PACK),
            (nvswitch8(), ALL8, 2, PACK),
            id="pack-prefers-the-fuller-node",
        ),
        pytest.param(
            (nvswitch8(), ALL8, 2, SPREAD),
            (nvswitch8(), free(4, 5, 6, 7), 2, SPREAD),
            id="spread-prefers-the-emptier-node",
        ),
        pytest.param(
            (dgx1(), free(0, 1), 2, PACK),
            (pcie8(), free(0, 4), 2, PACK),
            id="nvlink-beats-across-sockets",
        ),
        pytest.param(
            (pcie8(), free(0, 1), 2, PACK),
            (pcie8(), free(0, 4), 2, PACK),
            id="one-switch-beats-across-sockets",
        ),
    ],
)
def test_scores_compare_nodes(
    better: tuple[topology.NodeTopology, frozenset[int], int, policy.PlacementMode],
    worse: tuple[topology.NodeTopology, frozenset[int], int, policy.PlacementMode],
) -> None:
    assert score(*better) > score(*worse)


def test_perfect_fit_scores_ten() -> None:
    assert score(dgx1(), free(4, 5, 6, 7), 4) == 10


@pytest.mark.parametrize(
    ("node_", "free_", "largest", "fragmentation"),
    [
        pytest.param(dgx1(), ALL8, 4, 0.0, id="all-free"),
        pytest.param(dgx1(), free(4, 5, 6, 7), 4, 0.0, id="one-whole-island"),
        pytest.param(dgx1(), free(1, 4, 5, 6, 7), 4, 0.2, id="one-leftover"),
        pytest.param(dgx1(), free(1, 2, 5, 6), 2, 1.0, id="only-leftovers"),
        pytest.param(dgx1(), free(), 0, 0.0, id="nothing-free"),
        pytest.param(pcie8(), free(0, 3, 5), 0, 0.0, id="no-islands"),
        pytest.param(nvswitch8(), free(1, 2, 3), 3, 1.0, id="nvswitch-partly-used"),
    ],
)
def test_largest_free_island_and_fragmentation(
    node_: topology.NodeTopology, free_: frozenset[int], largest: int, fragmentation: float
) -> None:
    assert placement.largest_free_island(node_, free_) == largest
    assert placement.fragmentation(node_, free_) == pytest.approx(fragmentation)


@pytest.mark.parametrize(
    ("count", "free_", "message"),
    [
        pytest.param(0, ALL8, "at least one GPU", id="zero-gpus"),
        pytest.param(1, free(0, 8), r"\[8\]", id="free-gpu-not-on-node"),
    ],
)
def test_bad_arguments_are_programming_errors(
    count: int, free_: frozenset[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        placement.choose(dgx1(), free=free_, count=count)


def test_same_cause_same_reason_on_every_node() -> None:
    reasons = {
        placement.choose(node_, free=free(0, 4), count=2, rule=REQUIRED)
        for node_ in (dgx1(), islands4x2(), node(8, islands=[[0, 1], [2, 3, 4, 5, 6, 7]]))
    }
    assert reasons == {placement.NoFit(reason="no free NVLink island of 2 GPUs (largest free: 1)")}


# Properties, checked against brute force over every subset.

_modes = st.sampled_from(list(policy.PlacementMode))
_rules = st.sampled_from(list(policy.TopologyRule))


def _worst_level(node_: topology.NodeTopology, gpus: tuple[int, ...]) -> topology.LinkLevel:
    if len(gpus) == 1:
        return L.SELF
    return max(node_.level(a, b) for a, b in itertools.combinations(gpus, 2))


def _valid_sets(
    node_: topology.NodeTopology, free_: frozenset[int], count: int, rule: policy.TopologyRule
) -> list[tuple[int, ...]]:
    sets = list(itertools.combinations(sorted(free_), count))
    largest_island = max((len(i) for i in node_.nvlink_islands()), default=0)
    if rule is REQUIRED and 2 <= count <= largest_island:
        sets = [s for s in sets if _worst_level(node_, s) == L.NVLINK]
    return sets


@given(node_with_free(), st.integers(min_value=1, max_value=9), _modes, _rules)
def test_choice_is_valid_and_best_quality(
    shape: tuple[topology.NodeTopology, frozenset[int]],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> None:
    node_, free_ = shape
    result = placement.choose(node_, free=free_, count=count, mode=mode, rule=rule)
    valid = _valid_sets(node_, free_, count, rule)
    if not valid:
        assert isinstance(result, placement.NoFit)
        return
    assert isinstance(result, placement.Choice)
    assert len(result.gpus) == count
    assert list(result.gpus) == sorted(set(result.gpus))
    assert set(result.gpus) <= free_
    assert result.level == _worst_level(node_, result.gpus)
    assert result.level == min(_worst_level(node_, s) for s in valid)
    assert 0 <= result.score <= placement.MAX_SCORE


@given(node_with_free())
def test_fragmentation_is_a_share(shape: tuple[topology.NodeTopology, frozenset[int]]) -> None:
    node_, free_ = shape
    share = placement.fragmentation(node_, free_)
    assert 0.0 <= share <= 1.0
    whole = all(set(i) <= free_ or not set(i) & free_ for i in node_.nvlink_islands())
    assert (share == 0.0) == whole
    assert placement.largest_free_island(node_, free_) <= len(free_)


def test_pack_keeps_a_whole_island_before_numa_alignment() -> None:
    # Island 0 is partly used and its free GPUs straddle two sockets; island 1 is whole.
    node_ = node(8, islands=[[0, 1, 2, 3], [4, 5, 6, 7]], numa=[0, 0, 1, 1, 0, 0, 0, 0])
    result = placement.choose(node_, free=free(1, 2, 4, 5, 6, 7), count=2)
    assert isinstance(result, placement.Choice)
    assert result.gpus == (1, 2)


def test_the_level_of_a_set_is_its_worst_pair_when_no_one_domain_holds_it() -> None:
    """GPUs 0 and 2 share an island, 1 and 2 a PCIe switch, 0 and 1 a NUMA node (2's is not
    known): every pair shares something, so the set's worst link is NODE, not SYS (found by
    Hypothesis: the set-wide shortcut said SYS)."""
    node = topology.NodeTopology(
        gpus=(
            topology.GPU(index=0, numa=1, pcie_switch=None, nvlink_island=0),
            topology.GPU(index=1, numa=1, pcie_switch=1, nvlink_island=None),
            topology.GPU(index=2, numa=None, pcie_switch=1, nvlink_island=0),
            topology.GPU(index=3, numa=None, pcie_switch=None, nvlink_island=None),
        )
    )
    chosen = placement.choose(node, free=frozenset({0, 1, 2}), count=3)
    assert isinstance(chosen, placement.Choice)
    assert chosen.level is topology.LinkLevel.NODE
