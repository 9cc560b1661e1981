"""Where a job's GPUs go: the topology-blind placers of the baselines and gpufair's.

* :class:`SpreadGPUs` is stock kube-scheduler with one-GPU worker pods: each GPU goes to the
  machine with the most free GPUs (``NodeResourcesFit`` with its default ``LeastAllocated``
  strategy), and the device plugin hands out the lowest free GPU indices. A 4-GPU job on an
  idle cluster lands on four machines.
* :class:`SpreadPods` is the same scheduler with one pod per job (jobs wider than a machine:
  one pod per machine-full): each pod goes to the machine with the most free GPUs that can hold
  it, lowest free indices.
* :class:`BinPack` is the placement of Kueue's topology-aware scheduling and of gang schedulers
  with bin-packing (Volcano ``binpack``, KAI's default): a job's pods on the fewest machines,
  the fullest machine that holds them first, whole free machines for jobs wider than one; inside
  a machine the device plugin still hands out the lowest free indices (node-level topology
  only). With one-GPU pods (``spill``) a job no single machine holds spreads over the machines
  with the most free GPUs (Kueue's *preferred* topology); with one pod per job it waits.
* :class:`TopologyAware` is gpufair's extender: for a pod of up to one machine it asks
  ``gpufair.core.placement.choose`` on every distinct (machine type, free set) and takes the
  best score; jobs wider than a machine take whole free machines plus one best-scored part.
  Given the waiting demand by size (``demand``) it asks ``placement.choose_keeping`` instead,
  which keeps islands that waiting larger pods need.

Placers only choose; the engine allocates. A placer returns ``None`` when the job cannot be
placed now; :meth:`could_fit` is a cheap necessary condition checked first.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
from collections.abc import Mapping
from typing import Protocol

from gpufair.core import placement, policy
from gpufair.core import topology as topo
from gpufair.sim import cluster as cluster_model

Parts = tuple[cluster_model.Part, ...]


class Placer(Protocol):
    @property
    def name(self) -> str: ...

    def could_fit(self, cluster: cluster_model.Cluster, gpus: int) -> bool:
        """False when the job certainly cannot be placed now."""

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        """The GPUs the job would get, or ``None``."""


def pod_sizes(gpus: int, machine_gpus: int) -> list[int]:
    """One pod per machine-full, the rest in one pod: 20 GPUs on 8-GPU machines -> 8, 8, 4."""
    full, rest = divmod(gpus, machine_gpus)
    return [machine_gpus] * full + ([rest] if rest else [])


@dataclasses.dataclass(frozen=True)
class SpreadGPUs:
    """Topology-blind, one-GPU pods, least-allocated machine first."""

    name: str = "spread-gpus"

    def could_fit(self, cluster: cluster_model.Cluster, gpus: int) -> bool:
        return cluster.total_free >= gpus

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        if cluster.total_free < gpus:
            return None
        # Only the `gpus` emptiest machines can receive a GPU (each pick lowers the emptiest).
        heap: list[tuple[int, int, int]] = []
        for count in range(cluster.machine_gpus, 0, -1):
            for node in cluster.by_free[count]:
                heap.append((-count, len(heap), node))
                if len(heap) == gpus:
                    break
            if len(heap) == gpus:
                break
        heapq.heapify(heap)
        taken: dict[int, int] = {}
        for _ in range(gpus):
            negative, order, node = heapq.heappop(heap)
            remaining = cluster.free[node] & ~taken.get(node, 0)
            taken[node] = taken.get(node, 0) | (remaining & -remaining)
            if negative + 1 < 0:
                heapq.heappush(heap, (negative + 1, order, node))
        return tuple(cluster_model.Part(node=n, mask=m) for n, m in taken.items())


@dataclasses.dataclass(frozen=True)
class SpreadPods:
    """Topology-blind, one pod per job (per machine-full), least-allocated machine first."""

    name: str = "spread-pods"

    def could_fit(self, cluster: cluster_model.Cluster, gpus: int) -> bool:
        return _pods_could_fit(cluster, gpus)

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        if not _pods_could_fit(cluster, gpus):
            return None
        parts: list[cluster_model.Part] = []
        used: set[int] = set()
        for size in pod_sizes(gpus, cluster.machine_gpus):
            node = _emptiest(cluster, size, exclude=used)
            if node is None:
                return None
            used.add(node)
            mask = cluster_model.lowest_bits(cluster.free[node], size)
            parts.append(cluster_model.Part(node=node, mask=mask))
        return tuple(parts)


def _pods_could_fit(cluster: cluster_model.Cluster, gpus: int) -> bool:
    if gpus <= cluster.machine_gpus:
        return cluster.most_free() >= gpus
    return cluster.whole_free_machines() >= gpus // cluster.machine_gpus


def _emptiest(cluster: cluster_model.Cluster, size: int, *, exclude: set[int]) -> int | None:
    for count in range(cluster.machine_gpus, size - 1, -1):
        for node in cluster.by_free[count]:
            if node not in exclude:
                return node
    return None


@dataclasses.dataclass(frozen=True)
class BinPack:
    """Fewest machines, fullest first, topology-blind inside a machine (see module docstring)."""

    spill: bool = True
    """One-GPU pods: a job no machine holds whole may spread over the emptiest machines."""
    name: str = "bin-pack"

    def could_fit(self, cluster: cluster_model.Cluster, gpus: int) -> bool:
        if self.spill:
            return cluster.total_free >= gpus
        return _pods_could_fit(cluster, gpus)

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        if not self.could_fit(cluster, gpus):
            return None
        packed = self._packed(cluster, gpus)
        if packed is not None or not self.spill:
            return packed
        return _spill(cluster, gpus)

    def _packed(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        sizes = pod_sizes(gpus, cluster.machine_gpus)
        rest = sizes[-1] if sizes[-1] < cluster.machine_gpus else 0
        whole = len(sizes) - (1 if rest else 0)
        free_nodes = sorted(cluster.by_free[cluster.machine_gpus])
        if len(free_nodes) < whole:
            return None
        parts = [cluster_model.Part(node=n, mask=cluster.free[n]) for n in free_nodes[:whole]]
        if rest:
            node = _fullest(cluster, rest, exclude=set(free_nodes[:whole]))
            if node is None:
                return None
            mask = cluster_model.lowest_bits(cluster.free[node], rest)
            parts.append(cluster_model.Part(node=node, mask=mask))
        return tuple(parts)


def _fullest(cluster: cluster_model.Cluster, size: int, *, exclude: set[int]) -> int | None:
    """The machine with the fewest free GPUs that still has ``size`` (lowest id on ties)."""
    for count in range(size, cluster.machine_gpus + 1):
        candidates = cluster.by_free[count] - exclude
        if candidates:
            return min(candidates)
    return None


def _spill(cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
    """``gpus`` one-GPU pods on the fewest machines: the emptiest first, lowest indices."""
    parts: list[cluster_model.Part] = []
    wanted = gpus
    for count in range(cluster.machine_gpus, 0, -1):
        for node in sorted(cluster.by_free[count]):
            take = min(count, wanted)
            mask = cluster_model.lowest_bits(cluster.free[node], take)
            parts.append(cluster_model.Part(node=node, mask=mask))
            wanted -= take
            if not wanted:
                return tuple(parts)
    return None


@dataclasses.dataclass(frozen=True)
class TopologyAware:
    """gpufair's extender placement: ``gpufair.core.placement.choose`` on every machine kind."""

    mode: policy.PlacementMode = policy.PlacementMode.PACK
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED
    name: str = "topology-aware"
    demand: Mapping[int, int] | None = dataclasses.field(default=None, compare=False)
    """Live count of waiting jobs by GPU count (the policy's queue), or ``None``: no island
    keeping. Read at every placement."""

    def could_fit(self, cluster: cluster_model.Cluster, gpus: int) -> bool:
        return _pods_could_fit(cluster, gpus)

    def place(self, cluster: cluster_model.Cluster, gpus: int) -> Parts | None:
        if not _pods_could_fit(cluster, gpus):
            return None
        sizes = pod_sizes(gpus, cluster.machine_gpus)
        parts: list[cluster_model.Part] = []
        rest = sizes[-1] if sizes[-1] < cluster.machine_gpus else 0
        used: set[int] = set()
        if rest:
            best = self._best(cluster, rest)
            if best is None:
                return None
            parts.append(best)
            used.add(best.node)
        whole = len(sizes) - (1 if rest else 0)
        if whole:
            # Wholly free machines are interchangeable up to their type; take the lowest ids.
            free_nodes = sorted(cluster.by_free[cluster.machine_gpus] - used)
            if len(free_nodes) < whole:
                return None
            for node in free_nodes[:whole]:
                parts.append(cluster_model.Part(node=node, mask=cluster.free[node]))
        return tuple(parts)

    def _best(self, cluster: cluster_model.Cluster, count: int) -> cluster_model.Part | None:
        best: tuple[int, int, int, int] | None = None
        best_chosen = 0
        for kind, mask in cluster.by_key:
            free_count = mask.bit_count()
            if free_count < count:
                continue
            node_type = cluster.types[kind].topology
            waiting = (
                placement.relevant_demand(node_type, count, self.demand) if self.demand else ()
            )
            answer = _choose(node_type, mask, count, self.mode, self.rule, waiting)
            if answer is None:
                continue
            score, chosen = answer
            # Highest score; then the fullest machine (kube-scheduler picks among equal scores
            # at random: the fullest is the deterministic, Pack-friendly choice).
            key = (-score, free_count, kind, mask)
            if best is None or key < best:
                best, best_chosen = key, chosen
        if best is None:
            return None
        node = next(iter(cluster.by_key[best[2], best[3]]))
        return cluster_model.Part(node=node, mask=best_chosen)


@functools.lru_cache(maxsize=131072)
def _choose(
    node: topo.NodeTopology,
    mask: int,
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    demand: tuple[tuple[int, int], ...] = (),
) -> tuple[int, int] | None:
    """``placement.choose_keeping`` on a bit-mask free set: ``(score, chosen mask)`` or ``None``
    (``demand``: ``placement.relevant_demand``; empty: plain ``placement.choose``)."""
    free = frozenset(node.gpus[bit].index for bit in cluster_model.bits(mask))
    answer = placement.choose_keeping(
        node, free=free, count=count, demand=dict(demand), mode=mode, rule=rule
    )
    if isinstance(answer, placement.NoFit):
        return None
    position = {gpu.index: bit for bit, gpu in enumerate(node.gpus)}
    chosen = 0
    for index in answer.gpus:
        chosen |= 1 << position[index]
    return answer.score, chosen
