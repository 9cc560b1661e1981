"""Island keeping: a placement scored by the one-island room it costs waiting larger pods."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import topology as topo

from gpufair.core import placement, policy

LinkLevel = placement.LinkLevel


@pytest.mark.parametrize(
    ("free", "chosen", "demand", "loss"),
    [
        pytest.param(range(8), [0], {4: 1}, 0, id="one-4-waiting-other-island-still-free"),
        pytest.param(range(8), [0], {4: 2}, 4, id="two-4s-waiting-one-island-lost"),
        pytest.param(range(8), [0, 4], {4: 2}, 8, id="both-islands-lost"),
        pytest.param([0, 1, 2, 3], [0, 1], {4: 1, 2: 5}, 4, id="same-size-2s-not-counted"),
        pytest.param([0, 1, 2, 4, 5, 6, 7], [0], {4: 1}, 0, id="broken-island-costs-nothing"),
        pytest.param(range(8), [0, 1, 2, 3], {2: 4}, 0, id="smaller-pods-never-counted"),
        pytest.param(range(8), [0], {8: 3}, 0, id="wider-than-any-island-not-counted"),
    ],
)
def test_island_loss_on_a_dgx1(
    free: range | list[int], chosen: list[int], demand: Mapping[int, int], loss: int
) -> None:
    assert (
        placement.island_loss(
            topo.dgx1(), free=frozenset(free), chosen=frozenset(chosen), demand=demand
        )
        == loss
    )


def test_a_2_gpu_pod_leaves_a_dgx1_to_the_waiting_4_gpu_pods() -> None:
    """With 4-GPU pods waiting, a 2-GPU pod on an idle DGX-1 breaks an island they need: a PCIe
    machine's switch pair (no islands to lose) now outranks it."""
    idle = frozenset(range(8))
    dgx = placement.choose_keeping(topo.dgx1(), free=idle, count=2, demand={4: 2})
    pcie = placement.choose_keeping(topo.pcie8(), free=idle, count=2, demand={4: 2})
    assert isinstance(dgx, placement.Choice)
    assert isinstance(pcie, placement.Choice)
    assert dgx.level is LinkLevel.NVLINK
    assert pcie.level is LinkLevel.PIX
    assert pcie.score > dgx.score
    plain = placement.choose(topo.dgx1(), free=idle, count=2)
    assert isinstance(plain, placement.Choice)
    assert plain.score > pcie.score, "without demand the NVLink pair wins, as before"


def test_inside_a_node_the_pod_takes_the_broken_island() -> None:
    free = frozenset({0, 1, 2, 3, 6, 7})
    answer = placement.choose_keeping(topo.dgx1(), free=free, count=2, demand={4: 1})
    assert isinstance(answer, placement.Choice)
    assert answer.gpus == (6, 7)


def test_a_4_gpu_pod_still_takes_an_island_when_others_of_its_size_wait() -> None:
    answer = placement.choose_keeping(topo.dgx1(), free=frozenset(range(8)), count=4, demand={4: 9})
    plain = placement.choose(topo.dgx1(), free=frozenset(range(8)), count=4)
    assert answer == plain


@pytest.mark.parametrize(
    ("shape", "free", "chosen", "demand", "drain"),
    [
        pytest.param(topo.nvswitch8, range(2, 8), [2, 3], {8: 1}, 2, id="8-waits-partly-used-8"),
        pytest.param(topo.nvswitch8, range(8), [0, 1], {8: 1}, 0, id="whole-island-is-a-loss"),
        pytest.param(topo.nvswitch8, range(2, 8), [2, 3], {}, 0, id="no-demand"),
        pytest.param(topo.nvswitch8, range(2, 8), [2, 3], {2: 4}, 0, id="same-size-not-counted"),
        pytest.param(topo.nvswitch8, range(4, 8), [4, 5, 6, 7], {2: 3}, 0, id="smaller-waiting"),
        pytest.param(topo.dgx1, [1, 2, 3, 4], [1], {8: 2}, 0, id="8-never-fits-a-4-island"),
        pytest.param(topo.dgx1, range(1, 8), [1, 4], {4: 1}, 1, id="one-gpu-in-a-partly-used"),
        pytest.param(topo.pcie8, range(1, 8), [1, 2], {8: 1}, 0, id="no-islands-no-drain"),
    ],
)
def test_island_drain(
    shape: object,
    free: range | list[int],
    chosen: list[int],
    demand: Mapping[int, int],
    drain: int,
) -> None:
    assert callable(shape)
    assert (
        placement.island_drain(
            shape(), free=frozenset(free), chosen=frozenset(chosen), demand=demand
        )
        == drain
    )


def _best_node(
    nodes: Mapping[str, tuple[object, frozenset[int]]], count: int, demand: Mapping[int, int]
) -> str:
    """The node the extender's prioritize would pick: the highest score, first name on ties."""
    scores = {}
    for name, (shape, free) in nodes.items():
        assert callable(shape)
        answer = placement.choose_keeping(shape(), free=free, count=count, demand=demand)
        if isinstance(answer, placement.Choice):
            scores[name] = answer.score
    return max(sorted(scores), key=scores.__getitem__)


_DEMO_LIKE = {
    "a-nvswitch-idle": (topo.nvswitch8, frozenset(range(8))),
    "b-nvswitch-busy": (topo.nvswitch8, frozenset(range(4, 8))),
    "c-dgx1-idle": (topo.dgx1, frozenset(range(8))),
    "d-pcie-idle": (topo.pcie8, frozenset(range(8))),
}


@pytest.mark.parametrize(
    ("count", "demand", "node"),
    [
        pytest.param(2, {}, "b-nvswitch-busy", id="2-no-wide-demand-as-before"),
        pytest.param(2, {8: 1}, "c-dgx1-idle", id="2-8-waits-the-dgx1-pair"),
        pytest.param(2, {8: 1, 4: 1}, "c-dgx1-idle", id="2-8-and-a-4-wait-a-dgx1-has-two"),
        pytest.param(2, {8: 1, 4: 2}, "d-pcie-idle", id="2-8-and-two-4s-wait-pcie"),
        pytest.param(1, {8: 1}, "d-pcie-idle", id="1-8-waits-off-the-nvswitch"),
        pytest.param(4, {}, "b-nvswitch-busy", id="4-no-demand-as-before"),
        pytest.param(4, {8: 2}, "c-dgx1-idle", id="4-8-waits-a-dgx1-island"),
        pytest.param(8, {8: 3}, "a-nvswitch-idle", id="8-takes-the-island-of-its-size"),
    ],
)
def test_a_small_pod_keeps_the_islands_waiting_8_gpu_pods_need(
    count: int, demand: Mapping[int, int], node: str
) -> None:
    """Five machines as in the demo: with 8-GPU pods waiting, a small pod neither breaks the
    only whole NVSwitch island nor sits in the partly used one that must drain for them."""
    assert _best_node(_DEMO_LIKE, count, demand) == node
    if not demand:
        plain = {
            name: placement.choose(shape(), free=free, count=count)
            for name, (shape, free) in _DEMO_LIKE.items()
        }
        kept = {
            name: placement.choose_keeping(shape(), free=free, count=count, demand={})
            for name, (shape, free) in _DEMO_LIKE.items()
        }
        assert kept == plain


@settings(max_examples=150, deadline=None)
@given(
    free=st.sets(st.integers(0, 7), min_size=1),
    count=st.integers(1, 8),
    demand=st.dictionaries(st.integers(1, 8), st.integers(0, 5), max_size=4),
    shape=st.sampled_from([topo.dgx1, topo.nvswitch8, topo.pcie8, topo.islands4x2]),
    rule=st.sampled_from(list(policy.TopologyRule)),
)
def test_keeping_never_changes_whether_a_node_fits_nor_costs_more_than_plain(
    free: set[int],
    count: int,
    demand: dict[int, int],
    shape: object,
    rule: policy.TopologyRule,
) -> None:
    assert callable(shape)
    node = shape()
    plain = placement.choose(node, free=frozenset(free), count=count, rule=rule)
    kept = placement.choose_keeping(
        node, free=frozenset(free), count=count, demand=demand, rule=rule
    )
    assert isinstance(kept, placement.NoFit) == isinstance(plain, placement.NoFit)
    if isinstance(kept, placement.Choice) and isinstance(plain, placement.Choice):
        cost = {
            name: (
                placement.island_loss(
                    node, free=frozenset(free), chosen=frozenset(choice.gpus), demand=demand
                ),
                placement.island_drain(
                    node, free=frozenset(free), chosen=frozenset(choice.gpus), demand=demand
                ),
            )
            for name, choice in (("kept", kept), ("plain", plain))
        }
        assert cost["kept"] <= cost["plain"]
        assert len(kept.gpus) == count
        assert set(kept.gpus) <= free
        assert 0 <= kept.score <= placement.MAX_SCORE
        if cost["plain"] == (0, 0):
            assert kept == plain
