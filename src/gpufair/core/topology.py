"""Per-GPU topology of one node: which NUMA node, PCIe switch and NVLink island each GPU sits on.

This is the one model every topology source produces (the ``nvidia-smi topo -m`` parser, the
NVML discovery of the node agent, the node labels the extender reads), so placement never
depends on where the facts came from. Two GPUs are related by the best :class:`LinkLevel`
their attributes imply: same NVLink island beats same PCIe switch beats same NUMA node.

:func:`from_link_matrix` turns a pairwise link matrix (parsed text or NVML) into the model;
``docs/topology.md`` explains how islands and switch groups are derived.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpufair.core import topology_matrix

MAX_GPUS = 1024
"""The most GPUs one node can have in gpufair's model (time-sliced replicas included): a node
label or an allocatable count beyond it is an error to report, not a loop over a billion GPUs."""
MAX_LINKED_GPUS = 32
"""The most GPUs a link matrix (``nvidia-smi topo -m``, NVML) may describe: deriving NVLink
islands finds maximum cliques, exponential in the worst case (seconds at 36 GPUs, minutes at
48), and no machine links more GPUs than this pairwise."""


class LinkLevel(enum.IntEnum):
    """How two GPUs are connected, best first; values order from best (0) to worst.

    The names follow ``nvidia-smi topo -m`` and NVML's ``nvmlGpuTopologyLevel_t``:
    ``PIX`` one PCIe switch, ``PXB`` several bridges, ``PHB`` one host bridge,
    ``NODE`` one NUMA node across host bridges, ``SYS`` across sockets.
    """

    SELF = 0
    NVLINK = 1
    PIX = 2
    PXB = 3
    PHB = 4
    NODE = 5
    SYS = 6


@dataclasses.dataclass(frozen=True, slots=True)
class GPU:
    """One GPU of a node; an attribute is ``None`` where the machine has none or nobody knows."""

    index: int
    numa: int | None = None
    pcie_switch: int | None = None
    nvlink_island: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NodeTopology:
    """The GPUs of one node, ordered by index (indices are unique)."""

    gpus: tuple[GPU, ...]
    _hash: int = dataclasses.field(init=False, repr=False, compare=False, default=0)
    """Placement memoises on topologies for thousands of nodes per pod: hash once."""

    def __post_init__(self) -> None:
        indices = [gpu.index for gpu in self.gpus]
        if any(index < 0 for index in indices):
            raise ValueError(f"GPU indices must not be negative: {indices}")
        if indices != sorted(set(indices)):
            raise ValueError(f"GPU indices must be unique and ascending: {indices}")
        object.__setattr__(self, "_hash", hash(self.gpus))

    def __hash__(self) -> int:
        return self._hash

    @property
    def indices(self) -> tuple[int, ...]:
        """The GPU indices, ascending."""
        return tuple(gpu.index for gpu in self.gpus)

    def gpu(self, index: int) -> GPU:
        """The GPU with this index; ``KeyError`` when the node has none."""
        for gpu in self.gpus:
            if gpu.index == index:
                return gpu
        raise KeyError(index)

    def nvlink_islands(self) -> tuple[tuple[int, ...], ...]:
        """Members of each NVLink island, ordered by island id."""
        return _groups((gpu.nvlink_island, gpu.index) for gpu in self.gpus)

    def pcie_switch_groups(self) -> tuple[tuple[int, ...], ...]:
        """Members of each PCIe switch group, ordered by group id."""
        return _groups((gpu.pcie_switch, gpu.index) for gpu in self.gpus)

    def numa_nodes(self) -> tuple[tuple[int, ...], ...]:
        """Members of each NUMA node, ordered by NUMA id."""
        return _groups((gpu.numa, gpu.index) for gpu in self.gpus)

    def level(self, a: int, b: int) -> LinkLevel:
        """The best link the model knows between GPUs ``a`` and ``b``.

        Same island gives ``NVLINK``, same PCIe switch ``PIX``, same NUMA node ``NODE``,
        anything else ``SYS``; a ``None`` attribute never matches.
        """
        gpu_a, gpu_b = self.gpu(a), self.gpu(b)
        if a == b:
            return LinkLevel.SELF
        if _same(gpu_a.nvlink_island, gpu_b.nvlink_island):
            return LinkLevel.NVLINK
        if _same(gpu_a.pcie_switch, gpu_b.pcie_switch):
            return LinkLevel.PIX
        if _same(gpu_a.numa, gpu_b.numa):
            return LinkLevel.NODE
        return LinkLevel.SYS

    def to_json(self) -> dict[str, Any]:
        """The JSON shape ``gpufair topology parse -o json`` prints (docs/topology.md)."""
        return {
            "gpus": [
                {
                    "index": gpu.index,
                    "numa": gpu.numa,
                    "pcie_switch": gpu.pcie_switch,
                    "nvlink_island": gpu.nvlink_island,
                }
                for gpu in self.gpus
            ],
            "nvlink_islands": [list(island) for island in self.nvlink_islands()],
            "pcie_switch_groups": [list(group) for group in self.pcie_switch_groups()],
        }


def from_link_matrix(
    levels: Sequence[Sequence[LinkLevel]],
    *,
    numa: Sequence[int | None],
) -> NodeTopology:
    """The topology implied by a pairwise link matrix of GPUs ``0..n-1``.

    NVLink islands partition the GPUs into cliques of direct NVLink: repeatedly the largest
    clique among the GPUs not yet placed (ties: the one with the lowest member indices), so an
    NVSwitch machine is one island of all GPUs and a DGX-1 hybrid cube mesh two islands of four.
    PCIe switch groups are the connected components of ``PIX``. A GPU left alone (no NVLink
    peer, no ``PIX`` peer) gets ``None``. Ids are numbered 0.. by lowest member index.
    """
    count = len(levels)
    if count > MAX_LINKED_GPUS:
        raise ValueError(f"a link matrix of {count} GPUs (gpufair reads at most {MAX_LINKED_GPUS})")
    if len(numa) != count:
        raise ValueError(f"{len(numa)} NUMA ids for {count} GPUs")
    for i, row in enumerate(levels):
        if len(row) != count:
            raise ValueError(f"row {i} of the link matrix has {len(row)} entries, not {count}")
    nvlink = [
        frozenset(j for j in range(count) if j != i and levels[i][j] == LinkLevel.NVLINK)
        for i in range(count)
    ]
    pix = [
        frozenset(j for j in range(count) if j != i and levels[i][j] == LinkLevel.PIX)
        for i in range(count)
    ]
    island_of = _numbered(_clique_partition(nvlink))
    switch_of = _numbered(_components(pix))
    return NodeTopology(
        gpus=tuple(
            GPU(
                index=i,
                numa=numa[i],
                pcie_switch=switch_of.get(i),
                nvlink_island=island_of.get(i),
            )
            for i in range(count)
        )
    )


def from_matrix(matrix: topology_matrix.TopologyMatrix) -> NodeTopology:
    """The topology of a parsed ``nvidia-smi topo -m`` matrix."""
    return from_link_matrix(matrix.levels, numa=matrix.numa)


def _same(a: int | None, b: int | None) -> bool:
    return a is not None and a == b


def _groups(pairs: Iterable[tuple[int | None, int]]) -> tuple[tuple[int, ...], ...]:
    members: dict[int, list[int]] = {}
    for group, index in pairs:
        if group is not None:
            members.setdefault(group, []).append(index)
    return tuple(tuple(sorted(members[group])) for group in sorted(members))


def _numbered(groups: Iterable[frozenset[int]]) -> dict[int, int]:
    """Group id per member for groups of two or more, numbered by lowest member index."""
    real = sorted((sorted(group) for group in groups if len(group) >= 2), key=lambda g: g[0])
    return {member: number for number, group in enumerate(real) for member in group}


def _components(neighbours: Sequence[frozenset[int]]) -> list[frozenset[int]]:
    seen: set[int] = set()
    components: list[frozenset[int]] = []
    for start in range(len(neighbours)):
        if start in seen:
            continue
        component = {start}
        stack = [start]
        while stack:
            for peer in neighbours[stack.pop()]:
                if peer not in component:
                    component.add(peer)
                    stack.append(peer)
        seen |= component
        components.append(frozenset(component))
    return components


def _clique_partition(neighbours: Sequence[frozenset[int]]) -> list[frozenset[int]]:
    """Greedy partition into cliques: the largest remaining clique first, lowest indices on ties."""
    remaining = frozenset(range(len(neighbours)))
    cliques: list[frozenset[int]] = []
    while remaining:
        best = _largest_clique(neighbours, remaining)
        cliques.append(best)
        remaining -= best
    return cliques


def _largest_clique(neighbours: Sequence[frozenset[int]], within: frozenset[int]) -> frozenset[int]:
    """Maximum clique inside ``within`` (Bron-Kerbosch with pivot; GPU counts are tiny)."""
    best: tuple[int, ...] = (min(within),)

    def better(candidate: tuple[int, ...]) -> bool:
        return len(candidate) > len(best) or (len(candidate) == len(best) and candidate < best)

    def expand(
        clique: frozenset[int], candidates: frozenset[int], excluded: frozenset[int]
    ) -> None:
        nonlocal best
        if not candidates and not excluded:
            ordered = tuple(sorted(clique))
            if better(ordered):
                best = ordered
            return
        if len(clique) + len(candidates) < len(best):
            return
        pivot = max(candidates | excluded, key=lambda v: len(neighbours[v] & candidates))
        for vertex in sorted(candidates - neighbours[pivot]):
            peers = neighbours[vertex] & within
            expand(clique | {vertex}, candidates & peers, excluded & peers)
            candidates = candidates - {vertex}
            excluded = excluded | {vertex}

    expand(frozenset(), within, frozenset())
    return frozenset(best)
