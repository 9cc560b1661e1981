"""The scheduling pass keeps islands for the pods that need them (issue 17 item 3): it places
admitted pods as the extender does, with the pool's waiting demand by size, and admits no pod
onto GPUs a termination in progress is freeing (a reclaim made that room for its preemptor)."""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import operator as b
from tests.builders import topology as topologies

from gpufair.core import policy
from gpufair.state import model, occupancy, scheduling


@dataclasses.dataclass(frozen=True)
class Case:
    terminating: bool
    """Whether ``other``'s pod on the NVSwitch node is being deleted (else it runs)."""
    admitted: bool
    """Whether ``a``'s waiting 2-GPU pod is admitted by the pass."""


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(Case(terminating=False, admitted=True), id="room-on-a-running-node"),
        pytest.param(Case(terminating=True, admitted=False), id="room-being-freed-is-withheld"),
    ],
)
def test_no_pod_is_admitted_onto_a_node_whose_termination_is_in_progress(case: Case) -> None:
    nvswitch = b.node("nv", node_topology=topologies.nvswitch8())
    pcie = b.node("pc", node_topology=topologies.pcie8())
    leaving = b.pod("other/leaving").gpus(2).bound("nv", indices=(0, 1)).build()
    if case.terminating:
        leaving = dataclasses.replace(leaving, state=model.PodState.TERMINATING)
    full = b.pod("other/full").gpus(8).bound("pc", indices=range(8)).build()
    small = b.pod("a/small").gpus(2).created(50.0).build()
    decided = scheduling.schedule(
        b.snap(
            now=100.0,
            nodes=[nvswitch, pcie],
            tenants=[b.tenant("other").pool().build(), b.tenant("a").pool().build()],
            pods=[leaving, full, small],
        ),
        half_life=3600.0,
    )
    assert ("a/small" in {a.pod.key for a in decided.admissions}) == case.admitted
    if not case.admitted:
        assert "waiting for 2 GPUs" in decided.holds[small.uid]


def _pool(nodes: dict[str, tuple[object, frozenset[int]]]) -> occupancy.PoolOccupancy:
    return occupancy.PoolOccupancy(
        pool=model.Pool(name="p"),
        nodes=(),
        free={name: free for name, (_, free) in nodes.items()},
        indices={},
        topologies={name: shape for name, (shape, _) in nodes.items()},  # type: ignore[misc]
        capacity=8 * len(nodes),
        allocated=0,
        in_flight=0,
        missing_topology=(),
        holders=(),
    )


@pytest.mark.parametrize(
    ("demand", "node"),
    [
        pytest.param({}, "a-nvswitch", id="no-wide-demand-the-nvlink-pair"),
        pytest.param({8: 1}, "b-pcie", id="8-gpu-pod-waits-the-pcie-pair"),
    ],
)
def test_the_pass_places_a_small_pod_off_the_island_a_waiting_wide_pod_needs(
    demand: dict[int, int], node: str
) -> None:
    view = _pool(
        {
            "a-nvswitch": (topologies.nvswitch8(), frozenset(range(2, 8))),
            "b-pcie": (topologies.pcie8(), frozenset(range(8))),
        }
    )
    assert view.pool.mode is policy.PlacementMode.PACK
    grouped = scheduling._FreeNodes(view, dict(view.free), demand)
    assert grouped.take(2)
    assert [name for name in sorted(view.free) if grouped.free[name] != view.free[name]] == [node]
