"""Where each placer puts GPUs, on small clusters built by hand."""

from __future__ import annotations

import pytest
from tests.builders import sim as b

from gpufair.core import topology
from gpufair.sim import cluster, placers


def machines(*types: cluster.MachineType) -> cluster.Cluster:
    return cluster.Cluster(list(types), list(range(len(types))))


def occupy(target: cluster.Cluster, node: int, *bits: int) -> None:
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    target.take([cluster.Part(node=node, mask=mask)])


def test_spread_gpus_puts_each_gpu_on_the_emptiest_machine() -> None:
    target = machines(b.dgx1(), b.dgx1(), b.dgx1())
    occupy(target, 0, 0, 1, 2, 3, 4)
    parts = placers.SpreadGPUs().place(target, 4)
    assert parts is not None
    per_node = {part.node: part.mask.bit_count() for part in parts}
    assert per_node == {1: 2, 2: 2}


def test_spread_gpus_takes_the_lowest_free_indices() -> None:
    target = machines(b.dgx1())
    occupy(target, 0, 0, 2)
    parts = placers.SpreadGPUs().place(target, 3)
    assert parts == (cluster.Part(node=0, mask=0b11010),)


def test_spread_pods_needs_one_machine_per_pod() -> None:
    target = machines(b.dgx1(), b.dgx1())
    occupy(target, 0, 0)
    occupy(target, 1, 0)
    assert placers.SpreadPods().place(target, 8) is None
    assert not placers.SpreadPods().could_fit(target, 8)
    parts = placers.SpreadPods().place(target, 7)
    assert parts is not None
    assert len(parts) == 1


def test_topology_aware_fills_the_partly_used_island() -> None:
    """Pack: a 2-GPU job goes next to the busy GPU's island, keeping the other island whole."""
    target = machines(b.dgx1(), b.dgx1())
    occupy(target, 1, 0, 1)
    parts = placers.TopologyAware().place(target, 2)
    assert parts is not None
    (part,) = parts
    assert part.node == 1
    assert target.level(part.node, part.mask) is topology.LinkLevel.NVLINK
    assert part.mask & 0b11110000 == 0


def test_topology_aware_takes_whole_machines_for_wide_jobs() -> None:
    target = machines(b.dgx1(), b.pcie8(), b.dgx1())
    occupy(target, 0, 7)
    parts = placers.TopologyAware().place(target, 12)
    assert parts is not None
    assert sorted(part.mask.bit_count() for part in parts) == [4, 8]
    whole = next(part for part in parts if part.mask.bit_count() == 8)
    assert whole.node in {1, 2}
    four = next(part for part in parts if part.mask.bit_count() == 4)
    assert target.level(four.node, four.mask) is topology.LinkLevel.NVLINK


@pytest.mark.parametrize("gpus", [1, 2, 4, 8, 16])
def test_placers_never_offer_a_busy_gpu(gpus: int) -> None:
    target = machines(b.dgx1(), b.pcie8(), b.dgx1())
    occupy(target, 0, 1, 5)
    occupy(target, 2, 0, 1, 2, 3, 4, 5, 6, 7)
    for placer in (placers.SpreadGPUs(), placers.SpreadPods(), placers.TopologyAware()):
        parts = placer.place(target, gpus)
        if parts is None:
            continue
        assert sum(part.mask.bit_count() for part in parts) == gpus
        for part in parts:
            assert part.mask & ~target.free[part.node] == 0


def test_bin_pack_takes_the_fullest_machine_that_holds_the_job() -> None:
    target = machines(b.dgx1(), b.dgx1(), b.dgx1())
    occupy(target, 1, 0, 1, 2)
    occupy(target, 2, 0)
    parts = placers.BinPack().place(target, 4)
    assert parts == (cluster.Part(node=1, mask=0b1111000),)


def test_bin_pack_gives_a_wide_job_whole_machines_and_the_fullest_for_the_rest() -> None:
    target = machines(b.dgx1(), b.dgx1(), b.dgx1(), b.dgx1())
    occupy(target, 3, 0, 1, 2, 3, 4, 5)
    parts = placers.BinPack().place(target, 18)
    assert parts is not None
    assert [(part.node, part.mask.bit_count()) for part in parts] == [(0, 8), (1, 8), (3, 2)]


@pytest.mark.parametrize(("spill", "machines_used"), [(True, 2), (False, None)])
def test_bin_pack_spills_one_gpu_pods_only(spill: bool, machines_used: int | None) -> None:
    target = machines(b.dgx1(), b.dgx1(), b.dgx1())
    occupy(target, 0, 0, 1, 2, 3)
    occupy(target, 1, 0, 1, 2, 3, 4)
    occupy(target, 2, 0, 1, 2, 3, 4, 5)
    parts = placers.BinPack(spill=spill).place(target, 6)
    assert (None if parts is None else len(parts)) == machines_used
    if parts is not None:
        assert sum(part.mask.bit_count() for part in parts) == 6
        assert [part.node for part in parts] == [0, 1]


@pytest.mark.parametrize(("demand", "node"), [(None, 0), ({4: 2}, 1), ({4: 1}, 0)])
def test_topology_aware_keeps_dgx_islands_for_waiting_4_gpu_jobs(
    demand: dict[int, int] | None, node: int
) -> None:
    """Two 4-GPU jobs waiting: a 2-GPU job takes the PCIe machine, not a DGX-1 island; with
    one waiting, the DGX-1's other island still holds it, so the NVLink pair wins again."""
    target = machines(b.dgx1(), b.pcie8())
    parts = placers.TopologyAware(demand=demand).place(target, 2)
    assert parts is not None
    assert [part.node for part in parts] == [node]
