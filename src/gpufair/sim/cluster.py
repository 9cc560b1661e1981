"""The simulated cluster: machines with real topologies and an index of their free GPUs.

The engine allocates and releases GPU sets here; the placers query it. Every query the
placers make per scheduling attempt is answered from an index, never by scanning all
machines: machines are bucketed by how many GPUs they have free, and grouped by
``(topology, free-GPU set)`` so a topology-aware placer evaluates each distinct situation once
(a cluster of hundreds of machines has only a few dozen distinct ones).

Free GPU sets are bit masks (bit ``i`` set = GPU with the ``i``-th index of the machine free).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Sequence

from gpufair.core import topology, topology_matrix


class AllocationError(RuntimeError):
    """The engine asked for a GPU that is not free, or released one that is: a simulator bug."""


@dataclasses.dataclass(frozen=True, slots=True)
class MachineType:
    """A kind of machine: a name (the topology capture's stem) and its GPU topology."""

    name: str
    topology: topology.NodeTopology
    matrix: topology_matrix.TopologyMatrix | None = None
    """The capture it was read from (NVLink counts, PCIe levels): NVIDIA's preference
    (:mod:`gpufair.sim.nvidia_preference`) scores pairs by them."""

    @property
    def size(self) -> int:
        return len(self.topology.gpus)


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """The GPUs a job holds on one machine."""

    node: int
    mask: int


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where a job runs: its GPUs per machine and the worst link among co-located GPUs."""

    parts: tuple[Part, ...]
    level: topology.LinkLevel

    @property
    def machines(self) -> int:
        return len(self.parts)

    @property
    def gpus(self) -> int:
        return sum(mask.bit_count() for mask in (part.mask for part in self.parts))


def bits(mask: int) -> Iterator[int]:
    """Positions of the set bits, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def lowest_bits(mask: int, count: int) -> int:
    """The ``count`` lowest set bits of ``mask`` (``count`` <= popcount)."""
    chosen = 0
    for _ in range(count):
        low = mask & -mask
        chosen |= low
        mask ^= low
    return chosen


class Cluster:
    """Machines, their free GPUs, and the indexes placers use."""

    def __init__(self, types: Sequence[MachineType], layout: Sequence[int]) -> None:
        """``layout[n]`` is the index in ``types`` of machine ``n``."""
        if not layout:
            raise ValueError("a cluster needs at least one machine")
        self.types = tuple(types)
        self.layout = tuple(layout)
        self.machine_gpus = max(machine.size for machine in self.types)
        self.capacity = sum(self.types[kind].size for kind in self.layout)
        self.full_mask = tuple((1 << machine.size) - 1 for machine in self.types)
        self.free = [self.full_mask[kind] for kind in self.layout]
        self.total_free = self.capacity
        self.by_free: list[set[int]] = [set() for _ in range(self.machine_gpus + 1)]
        self.by_key: dict[tuple[int, int], set[int]] = {}
        for node in range(len(self.layout)):
            self._index(node)

    @classmethod
    def uniform_mix(cls, types: Sequence[MachineType], *, nodes: int) -> Cluster:
        """``nodes`` machines cycling through ``types`` (an even mix)."""
        return cls(types, [node % len(types) for node in range(nodes)])

    # -- index maintenance ------------------------------------------------------------------

    def _index(self, node: int) -> None:
        mask = self.free[node]
        self.by_free[mask.bit_count()].add(node)
        self.by_key.setdefault((self.layout[node], mask), set()).add(node)

    def _unindex(self, node: int) -> None:
        mask = self.free[node]
        self.by_free[mask.bit_count()].discard(node)
        key = (self.layout[node], mask)
        group = self.by_key[key]
        group.discard(node)
        if not group:
            del self.by_key[key]

    def take(self, parts: Sequence[Part]) -> None:
        for part in parts:
            if part.mask & ~self.free[part.node] or not part.mask:
                raise AllocationError(f"machine {part.node}: GPUs {part.mask:b} not all free")
            self._unindex(part.node)
            self.free[part.node] &= ~part.mask
            self._index(part.node)
            self.total_free -= part.mask.bit_count()

    def give_back(self, parts: Sequence[Part]) -> None:
        for part in parts:
            full = self.full_mask[self.layout[part.node]]
            if part.mask & self.free[part.node] or part.mask & ~full:
                raise AllocationError(f"machine {part.node}: GPUs {part.mask:b} not allocated")
            self._unindex(part.node)
            self.free[part.node] |= part.mask
            self._index(part.node)
            self.total_free += part.mask.bit_count()

    # -- queries ----------------------------------------------------------------------------

    def most_free(self) -> int:
        """The largest number of free GPUs on any one machine."""
        for count in range(self.machine_gpus, 0, -1):
            if self.by_free[count]:
                return count
        return 0

    def whole_free_machines(self) -> int:
        return len(self.by_free[self.machine_gpus])

    def island_free(self, count: int) -> bool:
        """Some machine has ``count`` free GPUs inside one NVLink island (``count`` >= 2)."""
        return any(
            _largest_free_island(self.types[kind].topology, mask) >= count
            for kind, mask in self.by_key
        )

    def node_topology(self, node: int) -> topology.NodeTopology:
        return self.types[self.layout[node]].topology

    def level(self, node: int, mask: int) -> topology.LinkLevel:
        """The worst link among the GPUs ``mask`` of machine ``node``."""
        return _worst_level(self.types[self.layout[node]].topology, mask)

    def indices(self, node: int, mask: int) -> tuple[int, ...]:
        """GPU indices (as the topology numbers them) of the bits in ``mask``, ascending."""
        return _indices(self.node_topology(node), mask)

    def mask_of(self, node: int, indices: Iterable[int]) -> int:
        """The bit mask of GPU ``indices`` on machine ``node``."""
        position = {gpu.index: bit for bit, gpu in enumerate(self.node_topology(node).gpus)}
        mask = 0
        for index in indices:
            mask |= 1 << position[index]
        return mask

    def placement(self, parts: Sequence[Part]) -> Placement:
        level = max(
            (self.level(part.node, part.mask) for part in parts),
            default=topology.LinkLevel.SELF,
        )
        return Placement(parts=tuple(parts), level=level)


@functools.lru_cache(maxsize=65536)
def _largest_free_island(node: topology.NodeTopology, mask: int) -> int:
    free = {node.gpus[bit].index for bit in bits(mask)}
    return max((len(free.intersection(island)) for island in node.nvlink_islands()), default=0)


@functools.lru_cache(maxsize=65536)
def _indices(node: topology.NodeTopology, mask: int) -> tuple[int, ...]:
    return tuple(sorted(node.gpus[bit].index for bit in bits(mask)))


@functools.lru_cache(maxsize=65536)
def _worst_level(node: topology.NodeTopology, mask: int) -> topology.LinkLevel:
    members = [node.gpus[bit].index for bit in bits(mask)]
    worst = topology.LinkLevel.SELF
    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            worst = max(worst, node.level(a, b))
    return worst
