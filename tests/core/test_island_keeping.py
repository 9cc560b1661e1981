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


@settings(max_examples=150, deadline=None)
@given(
    free=st.sets(st.integers(0, 7), min_size=1),
    count=st.integers(1, 8),
    demand=st.dictionaries(st.integers(1, 8), st.integers(0, 5), max_size=4),
    shape=st.sampled_from([topo.dgx1, topo.nvswitch8, topo.pcie8, topo.islands4x2]),
    rule=st.sampled_from(list(policy.TopologyRule)),
)
def test_keeping_never_changes_whether_a_node_fits_nor_loses_more_than_plain(
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
        loss = {
            name: placement.island_loss(
                node, free=frozenset(free), chosen=frozenset(choice.gpus), demand=demand
            )
            for name, choice in (("kept", kept), ("plain", plain))
        }
        assert loss["kept"] <= loss["plain"]
        assert len(kept.gpus) == count
        assert set(kept.gpus) <= free
        assert 0 <= kept.score <= placement.MAX_SCORE
        if loss["plain"] == 0:
            assert kept == plain
