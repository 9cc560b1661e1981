"""NVIDIA's own GPU preference, modelled: what kubelet allocates when gpufair's proxy does not run.

Without the device-plugin proxy (docs/device-plugin.md) gpufair picks the node, and kubelet
picks the GPUs there from NVIDIA's ``GetPreferredAllocation``. For whole GPUs NVIDIA's
``k8s-device-plugin`` answers it with go-gpuallocator's best-effort policy
(``internal/rm``: ``alignedAlloc`` -> ``gpuallocator.NewBestEffortPolicy().Allocate(available,
required, size)``), which :func:`best_effort` follows:

- it considers every partition of the available GPUs into sets of ``size``, after padding the
  list with empty slots until it divides evenly (a set holds all the padding or none), and
  keeps the partitions with a set without padding that holds every required GPU;
- a partition scores the sum of its sets' scores, a set the sum of its pairs' scores, a pair
  per link between the two GPUs: the PCIe link by their common ancestor (across CPUs 10, one
  CPU 20, one host bridge 30, several switches 40, one switch 50) plus 100 per NVLink
  (:func:`pair_scores`);
- it takes the first best partition in its enumeration order, and from it the best set that
  holds the required GPUs (the first one on a tie).

kubelet (no Topology Manager hint, no GPU reused from an init container) asks with every free
GPU of the node as available and nothing required, and allocates the answer. Where the real
plugin breaks ties by the order kubelet lists the available GPUs in (a Go map's: random), the
model takes them by index. NVLinks are counted from the ``nvidia-smi topo -m`` capture
(``NV#``) where the machine type has it, else one per pair of one NVLink island; on NVSwitch
machines every pair scores the same either way. :class:`GpusByNvidia` is the simulator's
"without the proxy" placer: gpufair's node, NVIDIA's GPUs.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence

from gpufair.core import topology, topology_matrix
from gpufair.sim import cluster as cluster_model
from gpufair.sim import placers

LinkLevel = topology.LinkLevel

PCIE_SCORE = {
    LinkLevel.SYS: 10,  # P2PLinkCrossCPU
    LinkLevel.NODE: 20,  # P2PLinkSameCPU
    LinkLevel.PHB: 30,  # P2PLinkHostBridge
    LinkLevel.PXB: 40,  # P2PLinkMultiSwitch
    LinkLevel.PIX: 50,  # P2PLinkSingleSwitch
}
NVLINK_SCORE = 100
"""Per NVLink between the two GPUs (``SingleNVLINKLink`` 100, ``TwoNVLINKLinks`` 200, ...)."""

Scores = tuple[tuple[int, ...], ...]
"""``scores[i][j]``: the pair score of the GPUs at positions ``i`` and ``j`` of the machine."""


def pair_scores(
    node: topology.NodeTopology, matrix: topology_matrix.TopologyMatrix | None = None
) -> Scores:
    """Each pair's score from its PCIe link and the NVLinks between the two GPUs.

    From the ``nvidia-smi topo -m`` capture where there is one (its levels and ``NV#``
    counts), else from the topology model (same island: one NVLink; same PCIe switch ``PIX``,
    same NUMA node ``NODE``, else ``SYS``). For a pair joined by NVLink the capture shows
    ``NV#`` instead of the PCIe level; NVML then reports their common ancestor as one NUMA node
    or across CPUs, as the agent's fake NVML does (``gpufair.standin.fake_nvml``).
    """
    gpus = node.gpus
    rows = []
    for i, a in enumerate(gpus):
        row = []
        for j, b in enumerate(gpus):
            if i == j:
                row.append(0)
                continue
            if matrix is not None:
                level, links = matrix.levels[i][j], matrix.nvlinks[i][j]
                same_numa = matrix.numa[i] is not None and matrix.numa[i] == matrix.numa[j]
            else:
                level = node.level(a.index, b.index)
                links = int(level is LinkLevel.NVLINK)
                same_numa = a.numa is not None and a.numa == b.numa
            if level is LinkLevel.NVLINK:
                level = LinkLevel.NODE if same_numa else LinkLevel.SYS
            row.append(PCIE_SCORE.get(level, 0) + NVLINK_SCORE * links)
        rows.append(tuple(row))
    return tuple(rows)


Slot = int | None
"""A GPU position, or padding."""


def best_effort(
    scores: Scores, available: Sequence[int], required: Sequence[int], size: int
) -> tuple[int, ...]:
    """go-gpuallocator's best-effort choice of ``size`` GPUs (positions) among ``available``;
    empty when it has none (``size`` out of range, too few available, too many required)."""
    return _best_effort(scores, tuple(available), tuple(required), size)


@functools.lru_cache(maxsize=65536)
def _best_effort(
    scores: Scores, available: tuple[int, ...], required: tuple[int, ...], size: int
) -> tuple[int, ...]:
    if size <= 0 or len(available) < size or len(required) > size:
        return ()
    need = frozenset(required)

    def set_score(members: Sequence[Slot]) -> int:
        present = [m for m in members if m is not None]
        return sum(scores[a][b] for a, b in itertools.combinations(present, 2))

    def holds_required(members: Sequence[Slot]) -> bool:
        return need <= frozenset(members) and None not in members

    best: list[tuple[Slot, ...]] | None = None
    best_score = 0
    for partition in _partitions(available, size):
        if not any(holds_required(members) for members in partition):
            continue
        score = sum(set_score(members) for members in partition)
        if best is None or score > best_score:
            best, best_score = partition, score
    if best is None:
        return ()
    candidates = [members for members in best if need <= frozenset(members)]
    if not candidates:
        return ()
    chosen = candidates[0]
    chosen_score = set_score(chosen)
    for members in candidates[1:]:
        if set_score(members) > chosen_score:
            chosen, chosen_score = members, set_score(members)
    return tuple(m for m in chosen if m is not None)


def _partitions(devices: tuple[int, ...], size: int) -> Iterator[list[tuple[Slot, ...]]]:
    """Partitions of ``devices`` into sets of ``size`` in go-gpuallocator's order."""
    if size == 1:
        for device in devices:
            yield [(device,)]
        return
    slots: list[Slot] = list(devices)
    while len(slots) % size:
        slots.append(None)
    padding = slots.count(None)

    def iterate(
        rest: list[Slot], accum: list[tuple[Slot, ...]]
    ) -> Iterator[list[tuple[Slot, ...]]]:
        if len(rest) == size:
            yield [*accum, tuple(rest)]
            return
        first, others = rest[0], rest[1:]
        for combination in itertools.combinations(range(len(others)), size - 1):
            members = (first, *(others[k] for k in combination))
            pad = members.count(None)
            if pad not in (0, padding):
                continue
            taken = set(combination)
            remaining = [slot for k, slot in enumerate(others) if k not in taken]
            yield from iterate(remaining, [*accum, members])

    yield from iterate(slots, [])


@functools.lru_cache(maxsize=256)
def _machine_scores(machine: cluster_model.MachineType) -> Scores:
    return pair_scores(machine.topology, machine.matrix)


def nvidia_mask(machine: cluster_model.MachineType, free: int, count: int) -> int:
    """The GPUs (bit mask) kubelet allocates from ``free`` with NVIDIA's preference."""
    chosen = best_effort(_machine_scores(machine), tuple(cluster_model.bits(free)), (), count)
    if len(chosen) != count:  # never with count <= free GPUs; as kubelet: lowest indices
        return cluster_model.lowest_bits(free, count)
    mask = 0
    for position in chosen:
        mask |= 1 << position
    return mask


@dataclasses.dataclass(frozen=True)
class GpusByNvidia(placers.TopologyAware):
    """gpufair without the device-plugin proxy: gpufair's placer picks the machines (as
    :class:`~gpufair.sim.placers.TopologyAware`), and on a machine it does not take whole
    kubelet allocates the GPUs NVIDIA's preference names (:func:`nvidia_mask`)."""

    name: str = "topology-aware-node-nvidia-gpus"

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> placers.Parts | None:
        parts = super().place(cluster, gpus)
        if parts is None:
            return None
        return tuple(
            dataclasses.replace(
                part,
                mask=nvidia_mask(
                    cluster.types[cluster.layout[part.node]],
                    cluster.free[part.node],
                    part.mask.bit_count(),
                ),
            )
            for part in parts
        )
