"""Builders for topology inputs: node topologies by shape, ``topo -m`` texts, Hypothesis strategies.

    node(8, islands=[[0, 1, 2, 3], [4, 5, 6, 7]], numa=[0, 0, 0, 0, 1, 1, 1, 1])
    topo_text(["X NV1", "NV1 X"], numa=["0", "0"])

Everything not said is absent: no islands, no PCIe switch groups, no NUMA ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from gpufair.core import topology


def node(
    gpus: int,
    *,
    islands: Sequence[Sequence[int]] = (),
    pcie: Sequence[Sequence[int]] = (),
    numa: Sequence[int | None] | None = None,
) -> topology.NodeTopology:
    """A node of ``gpus`` GPUs; island and group ids follow the order given."""
    island_of = {gpu: number for number, members in enumerate(islands) for gpu in members}
    switch_of = {gpu: number for number, members in enumerate(pcie) for gpu in members}
    numa_of = list(numa) if numa is not None else [None] * gpus
    assert len(numa_of) == gpus, "one NUMA id per GPU"
    return topology.NodeTopology(
        gpus=tuple(
            topology.GPU(
                index=index,
                numa=numa_of[index],
                pcie_switch=switch_of.get(index),
                nvlink_island=island_of.get(index),
            )
            for index in range(gpus)
        )
    )


def dgx1() -> topology.NodeTopology:
    """DGX-1 hybrid cube mesh: two NVLink islands of four, one per socket."""
    return node(8, islands=[[0, 1, 2, 3], [4, 5, 6, 7]], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def nvswitch8() -> topology.NodeTopology:
    """HGX / DGX with NVSwitch: one island of eight, four GPUs per socket."""
    return node(8, islands=[range(8)], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def pcie8() -> topology.NodeTopology:
    """Eight PCIe GPUs, pairs behind one switch, four per socket."""
    return node(8, pcie=[[0, 1], [2, 3], [4, 5], [6, 7]], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def islands4x2() -> topology.NodeTopology:
    """Four NVLink pairs (NVLink bridges), two per socket."""
    return node(8, islands=[[0, 1], [2, 3], [4, 5], [6, 7]], numa=[0, 0, 0, 0, 1, 1, 1, 1])


def topo_text(
    rows: Sequence[str],
    *,
    cpu: Sequence[str] | None = None,
    numa: Sequence[str] | None = None,
    separator: str = "\t",
    trailer: str = "\nLegend:\n\n  X    = Self\n",
) -> str:
    """An ``nvidia-smi topo -m`` text for GPU rows given as space-separated cells."""
    count = len(rows)
    header = [f"GPU{i}" for i in range(count)]
    if cpu is not None:
        header.append("CPU Affinity")
    if numa is not None:
        header.append("NUMA Affinity")
    lines = [separator + separator.join(header)]
    for index, row in enumerate(rows):
        cells = [f"GPU{index}", *(f" {c} " if c == "X" else c for c in row.split())]
        if cpu is not None:
            cells.append(cpu[index])
        if numa is not None:
            cells.append(numa[index])
        lines.append(separator.join(cells))
    return "\n".join(lines) + "\n" + trailer


@st.composite
def topologies(draw: st.DrawFn, max_gpus: int = 8) -> topology.NodeTopology:
    """Any node topology of 0..max_gpus GPUs with indices 0..n-1 (ids as a labeller might set)."""
    count = draw(st.integers(min_value=0, max_value=max_gpus))
    ids = st.none() | st.integers(min_value=0, max_value=3)
    return topology.NodeTopology(
        gpus=tuple(
            topology.GPU(
                index=index,
                numa=draw(ids),
                pcie_switch=draw(ids),
                nvlink_island=draw(ids),
            )
            for index in range(count)
        )
    )


@st.composite
def node_with_free(
    draw: st.DrawFn, max_gpus: int = 8
) -> tuple[topology.NodeTopology, frozenset[int]]:
    """A topology of at least one GPU and a subset of its GPUs that is free."""
    shape = draw(topologies(max_gpus=max_gpus).filter(lambda t: len(t.gpus) > 0))
    free = draw(st.frozensets(st.sampled_from(shape.indices)))
    return shape, free
