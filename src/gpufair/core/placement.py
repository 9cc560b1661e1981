"""Which free GPUs of a node a pod should get, how good that is, and how fragmented a node is.

The extender calls :func:`choose` for every candidate node of a pod (filter: ``NoFit`` drops the
node with its ``reason``; prioritize: ``Choice.score``; bind: ``Choice.gpus``), the simulator
calls it for every placement, and pool status reports :func:`largest_free_island` and
:func:`fragmentation`. Up to 5,000 nodes per pod, so it is memoised: nodes of one machine type
with the same free GPUs share one answer. The rules are in ``docs/topology.md``:

- set quality first: one NVLink island > one PCIe switch > one NUMA node > the machine;
- ``Pack`` then keeps wholly free islands intact and fills the fullest islands / switches /
  NUMA nodes first (best fit); ``Spread`` takes the emptiest ones;
- ``Required`` refuses a node that cannot give a request fitting one island a free island;
- :func:`choose_keeping` adds the waiting demand: a set that costs waiting *larger* pods their
  one-island room on this node (:func:`island_loss`), or that takes GPUs of a partly used
  island such a pod needs drained (:func:`island_drain`), ranks below every set that costs none.

The score ranks the candidate nodes of one pod, so it is absolute: set quality first (the
bands do not overlap), then for ``Pack`` breaking no wholly free island, then breaking a smaller
one, then the fuller node; for ``Spread`` the emptier node.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping

from gpufair.core import policy
from gpufair.core import topology as topo

LinkLevel = topo.LinkLevel

MAX_SCORE = 10
"""Scores are integers 0..MAX_SCORE, the range kube-scheduler accepts from an extender."""

BANDS: dict[LinkLevel, tuple[int, int]] = {
    LinkLevel.SELF: (0, 10),
    LinkLevel.NVLINK: (6, 10),
    LinkLevel.PIX: (4, 5),
    LinkLevel.PXB: (4, 5),
    LinkLevel.PHB: (4, 5),
    LinkLevel.NODE: (2, 3),
    LinkLevel.SYS: (0, 1),
}
"""Scores a set whose worst pair has this level can get, lowest and highest.

Link quality dominates: the bands of a multi-GPU pod's levels do not overlap, so one NVLink
island beats one PCIe switch beats one NUMA node beats the machine, whatever the goal. A single
GPU (``SELF``) is equally good on every node, so it gets the whole range for the goal. ``PXB``
and ``PHB`` are not produced by the model (the labels have no place for them): scored as ``PIX``.
"""

BREAK_CLASSES = 3
"""Pack's classes of broken islands below "breaks none": 1 GPU stranded; 2-3; 4 or more.

A class is the number of binary digits of the stranded count, so a 1-GPU pod breaking an island
of 2 is class 1, of 4 class 2, of 8 (or more) class 3: a bigger island broken costs more.
"""


@dataclasses.dataclass(frozen=True)
class Choice:
    """The GPUs a pod gets on a node."""

    gpus: tuple[int, ...]
    """GPU indices, ascending."""
    level: LinkLevel
    """Worst link between two GPUs of the set (``SELF`` for one GPU)."""
    score: int
    """0..10: the band of the set's quality, then how well the choice serves the pool's mode.

    Comparable across the nodes of one request only (a single GPU uses the whole range)."""


@dataclasses.dataclass(frozen=True)
class NoFit:
    """The node cannot take the pod; ``reason`` is the same short text for the same cause."""

    reason: str


def choose(
    topology: topo.NodeTopology,
    *,
    free: frozenset[int],
    count: int,
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
) -> Choice | NoFit:
    """The best set of ``count`` GPUs among ``free`` on this node, or why there is none.

    ``ValueError`` when ``count`` is below 1 or ``free`` names a GPU the node does not have.
    """
    return _choose(topology, free, count, mode, rule)


def largest_free_island(topology: topo.NodeTopology, free: frozenset[int]) -> int:
    """Most free GPUs inside one NVLink island (0 on a node without islands)."""
    return max((len(island & free) for island in _shape(topology).islands), default=0)


def fragmentation(topology: topo.NodeTopology, free: frozenset[int]) -> float:
    """Share of the free GPUs sitting in partly used NVLink islands, 0..1.

    0 when every free GPU belongs to a wholly free island (or to no island: a GPU without
    NVLink peers cannot be cut off from them) or nothing is free; 1 when every free GPU is a
    leftover of a partly used island.
    """
    if not free:
        return 0.0
    stranded = sum(len(island & free) for island in _shape(topology).islands if not island <= free)
    return stranded / len(free)


KEEPING_PENALTY = BANDS[LinkLevel.NVLINK][1] - BANDS[LinkLevel.PIX][0] + 1
"""Score taken off a choice that costs waiting larger pods an island or holds one back from
draining (:func:`choose_keeping`): 7, so the best such NVLink choice (10) scores below the worst
PCIe-switch choice that costs none (4), not level with it."""


def island_slots(topology: topo.NodeTopology, free: frozenset[int], size: int) -> int:
    """How many pods of ``size`` GPUs the free GPUs can hold, each inside one NVLink island."""
    if size < 1:
        raise ValueError(f"a pod requests at least one GPU, not {size}")
    return sum(len(island & free) // size for island in _shape(topology).islands)


def island_loss(
    topology: topo.NodeTopology,
    *,
    free: frozenset[int],
    chosen: frozenset[int],
    demand: Mapping[int, int],
) -> int:
    """GPUs of waiting pods *larger* than ``chosen`` that lose one-island room on this node if
    ``chosen`` is taken: for each waiting size ``s`` (``demand[s]`` pods) with
    ``len(chosen) < s``, ``s x (min(demand, slots before) - min(demand, slots after))``.

    Pods of the same size or smaller are not counted: a pod taking an island serves its own
    size, and the bigger pod is the one that loses most when spread. ``demand`` is explicit (no
    hidden state), so results may be cached by every argument.
    """
    if not chosen <= free:
        raise ValueError(f"chosen GPUs {sorted(chosen - free)} are not free")
    after = free - chosen
    loss = 0
    for size, waiting in demand.items():
        if size <= len(chosen) or size < 2 or waiting <= 0:
            continue
        before_slots = island_slots(topology, free, size)
        if not before_slots:
            continue
        kept = min(waiting, island_slots(topology, after, size))
        loss += size * (min(waiting, before_slots) - kept)
    return loss


def island_drain(
    topology: topo.NodeTopology,
    *,
    free: frozenset[int],
    chosen: frozenset[int],
    demand: Mapping[int, int],
) -> int:
    """Chosen GPUs that sit in a *partly used* NVLink island big enough for a waiting pod larger
    than ``chosen`` (``demand[s]`` pods of ``s`` GPUs, ``len(chosen) < s <= island size``).

    Such an island has no whole-island room left (:func:`island_loss` sees nothing to lose), but
    it is the room the waiting pod gets once its pods finish; a small pod put there holds it
    back, while the same pod on a machine without such islands costs the waiting pod nothing.
    """
    if not chosen <= free:
        raise ValueError(f"chosen GPUs {sorted(chosen - free)} are not free")
    sizes = [s for s, waiting in demand.items() if waiting > 0 and s >= 2 and s > len(chosen)]
    if not sizes:
        return 0
    smallest = min(sizes)
    return sum(
        len(island & chosen)
        for island in _shape(topology).islands
        if len(island) >= smallest and not island <= free
    )


def choose_keeping(
    topology: topo.NodeTopology,
    *,
    free: frozenset[int],
    count: int,
    demand: Mapping[int, int],
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
) -> Choice | NoFit:
    """:func:`choose`, aware of the waiting demand by size (``demand[s]``: pods of ``s`` GPUs).

    Among the node's sets, the one that costs waiting larger pods the least island room
    (:func:`island_loss`) wins, then the one that holds back the fewest partly used islands they
    need (:func:`island_drain`), then :func:`choose`'s order. A set that costs either gets
    :data:`KEEPING_PENALTY` off its score, so a node where the pod breaks or holds back no
    needed island outranks one where it does, unless link quality differs by more than the
    NVLink band (a worse-linked set costing nothing beats an NVLink set costing islands).
    Without demand for larger pods this is :func:`choose` exactly.
    """
    return _choose_keeping(
        topology, free, count, relevant_demand(topology, count, demand), mode, rule
    )


def relevant_demand(
    topology: topo.NodeTopology, count: int, demand: Mapping[int, int]
) -> tuple[tuple[int, int], ...]:
    """The part of ``demand`` that can change :func:`choose_keeping`'s answer for a ``count``-GPU
    pod on this topology, as sorted ``(size, pods)`` pairs: sizes above ``count`` that fit one of
    its islands, each capped at the slots the whole node could offer. Equal keys give equal
    answers, so callers may cache by it."""
    shape = _shape(topology)
    key = []
    for size in sorted(demand):
        if count < size <= shape.largest_island and size >= 2 and demand[size] > 0:
            cap = sum(len(island) // size for island in shape.islands)
            key.append((size, min(demand[size], cap)))
    return tuple(key)


@functools.lru_cache(maxsize=65536)
def _choose_keeping(
    topology: topo.NodeTopology,
    free: frozenset[int],
    count: int,
    demand: tuple[tuple[int, int], ...],
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> Choice | NoFit:
    plain = _choose(topology, free, count, mode, rule)
    if not demand or isinstance(plain, NoFit):
        return plain
    waiting = dict(demand)
    if keeping_cost(topology, free, frozenset(plain.gpus), waiting) == (0, 0):
        return plain
    shape = _shape(topology)
    island_only = rule is policy.TopologyRule.REQUIRED and 2 <= count <= shape.largest_island
    best: tuple[tuple[object, ...], tuple[int, ...], _Measure, tuple[int, int]] | None = None
    for gpus in _candidates(shape, free, count):
        measure = _measure(shape, free, gpus)
        if island_only and measure.level is not LinkLevel.NVLINK:
            continue
        cost = keeping_cost(topology, free, frozenset(gpus), waiting)
        key = (*cost, *_key(measure, mode, gpus))
        if best is None or key < best[0]:
            best = (key, gpus, measure, cost)
    assert best is not None  # plain is a candidate
    _, gpus, measure, cost = best
    score = _score(shape, free=free, count=count, measure=measure, mode=mode)
    if cost != (0, 0):
        score = max(0, score - KEEPING_PENALTY)
    return Choice(gpus=gpus, level=measure.level, score=score)


def keeping_cost(
    topology: topo.NodeTopology,
    free: frozenset[int],
    chosen: frozenset[int],
    demand: Mapping[int, int],
) -> tuple[int, int]:
    """What taking ``chosen`` costs waiting pods larger than it: :func:`island_loss`, then
    :func:`island_drain`; ``(0, 0)`` when it costs them nothing."""
    return (
        island_loss(topology, free=free, chosen=chosen, demand=demand),
        island_drain(topology, free=free, chosen=chosen, demand=demand),
    )


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What placement needs of a topology, computed once per topology."""

    topology: topo.NodeTopology
    total: int
    islands: tuple[frozenset[int], ...]
    largest_island: int
    island: dict[int, int | None]
    pcie: dict[int, int | None]
    numa: dict[int, int | None]


@functools.lru_cache(maxsize=1024)
def _shape(topology: topo.NodeTopology) -> _Shape:
    islands = tuple(frozenset(members) for members in topology.nvlink_islands())
    return _Shape(
        topology=topology,
        total=len(topology.gpus),
        islands=islands,
        largest_island=max((len(island) for island in islands), default=0),
        island={gpu.index: gpu.nvlink_island for gpu in topology.gpus},
        pcie={gpu.index: gpu.pcie_switch for gpu in topology.gpus},
        numa={gpu.index: gpu.numa for gpu in topology.gpus},
    )


@functools.lru_cache(maxsize=65536)
def _choose(
    topology: topo.NodeTopology,
    free: frozenset[int],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> Choice | NoFit:
    if count < 1:
        raise ValueError(f"a pod requests at least one GPU, not {count}")
    unknown = free - frozenset(topology.indices)
    if unknown:
        raise ValueError(f"free GPUs {sorted(unknown)} are not on the node {topology.indices}")
    mode = policy.PlacementMode(mode)
    rule = policy.TopologyRule(rule)
    shape = _shape(topology)
    if count > shape.total:
        return NoFit(reason=f"node has {shape.total} GPUs, {count} requested")
    if count > len(free):
        return NoFit(reason=f"{len(free)} free GPUs, {count} requested")
    island_only = rule is policy.TopologyRule.REQUIRED and 2 <= count <= shape.largest_island
    best: tuple[tuple[object, ...], tuple[int, ...], _Measure] | None = None
    for gpus in _candidates(shape, free, count):
        measure = _measure(shape, free, gpus)
        if island_only and measure.level is not LinkLevel.NVLINK:
            continue
        key = _key(measure, mode, gpus)
        if best is None or key < best[0]:
            best = (key, gpus, measure)
    if best is None:
        return NoFit(
            reason=(
                f"no free NVLink island of {count} GPUs "
                f"(largest free: {largest_free_island(topology, free)})"
            )
        )
    _, gpus, measure = best
    return Choice(
        gpus=gpus,
        level=measure.level,
        score=_score(shape, free=free, count=count, measure=measure, mode=mode),
    )


@dataclasses.dataclass(frozen=True)
class _Measure:
    level: LinkLevel
    numa_nodes: int
    """Distinct NUMA nodes the set touches (``None`` counts as one)."""
    stranded: int
    """Free GPUs of wholly free islands that the choice leaves in a partly used island."""
    room: tuple[int, int, int]
    """Free GPUs (before) in the island, PCIe switch and NUMA node of each chosen GPU, summed."""


def _candidates(shape: _Shape, free: frozenset[int], count: int) -> Iterator[tuple[int, ...]]:
    """Every distinct set up to interchangeable GPUs.

    GPUs with the same island, switch and NUMA node are interchangeable for every measure, so
    only how many come from each such class matters; within a class the lowest indices are taken.
    """
    classes: dict[tuple[int | None, int | None, int | None], list[int]] = {}
    for index in sorted(free):
        key = (shape.island[index], shape.pcie[index], shape.numa[index])
        classes.setdefault(key, []).append(index)
    members = list(classes.values())
    capacity_after = [sum(len(m) for m in members[i:]) for i in range(len(members) + 1)]

    def pick(position: int, wanted: int) -> Iterator[tuple[int, ...]]:
        if wanted == 0:
            yield ()
            return
        if position == len(members) or capacity_after[position] < wanted:
            return
        group = members[position]
        for taken in range(min(wanted, len(group)), -1, -1):
            for rest in pick(position + 1, wanted - taken):
                yield (*group[:taken], *rest)

    for gpus in pick(0, count):
        yield tuple(sorted(gpus))


def _measure(shape: _Shape, free: frozenset[int], gpus: tuple[int, ...]) -> _Measure:
    chosen = frozenset(gpus)
    stranded = 0
    for island in shape.islands:
        if island <= free:
            taken = len(island & chosen)
            if 0 < taken < len(island):
                stranded += len(island) - taken
    return _Measure(
        level=_level(shape, gpus),
        numa_nodes=len({shape.numa[g] for g in gpus}),
        stranded=stranded,
        room=(
            sum(_free_in(shape.island, g, free) for g in gpus),
            sum(_free_in(shape.pcie, g, free) for g in gpus),
            sum(_free_in(shape.numa, g, free) for g in gpus),
        ),
    )


def _free_in(domain_of: dict[int, int | None], gpu: int, free: frozenset[int]) -> int:
    """Free GPUs in ``gpu``'s domain; a GPU outside any domain shares the whole node's room."""
    domain = domain_of[gpu]
    if domain is None:
        return len(free)
    return sum(1 for other in free if domain_of[other] == domain)


def _level(shape: _Shape, gpus: tuple[int, ...]) -> LinkLevel:
    """The worst link between two GPUs of the set (:meth:`NodeTopology.level` of each pair)."""
    if len(gpus) == 1:
        return LinkLevel.SELF
    for domain_of, level in (
        (shape.island, LinkLevel.NVLINK),
        (shape.pcie, LinkLevel.PIX),
        (shape.numa, LinkLevel.NODE),
    ):
        values = {domain_of[g] for g in gpus}
        if len(values) == 1 and None not in values:
            return level
    # No one domain holds the set; each pair may still share one (GPU a and b an island, b
    # and c a switch, a and c a NUMA node): the worst pair decides.
    worst = LinkLevel.NVLINK
    for i, a in enumerate(gpus):
        for b in gpus[i + 1 :]:
            worst = max(worst, shape.topology.level(a, b))
            if worst is LinkLevel.SYS:
                return worst
    return worst


def _key(
    measure: _Measure, mode: policy.PlacementMode, gpus: tuple[int, ...]
) -> tuple[object, ...]:
    """Lower is better: link level first, then the mode's goal, then the lowest indices.

    Pack ranks keeping whole islands free above NUMA alignment: inside one island (the only
    case where the two disagree) the pod keeps its NVLink either way.
    """
    if mode is policy.PlacementMode.PACK:
        return (measure.level, measure.stranded, measure.numa_nodes, *measure.room, gpus)
    return (measure.level, measure.numa_nodes, *(-room for room in measure.room), gpus)


def _score(
    shape: _Shape,
    *,
    free: frozenset[int],
    count: int,
    measure: _Measure,
    mode: policy.PlacementMode,
) -> int:
    """The level's band, then the mode's goal inside it (docs/topology.md).

    Scores compare the nodes of one pod, so every term is absolute, never relative to what the
    node happens to have: a node that breaks no island beats any node that breaks one, however
    many islands the latter has left.
    """
    low, high = BANDS[measure.level]
    size = high - low + 1
    free_after = len(free) - count
    if mode is policy.PlacementMode.PACK:
        position = _pack_position(
            size,
            broken=measure.stranded.bit_length(),
            used=shape.total - free_after,
            total=shape.total,
        )
    else:
        position = _share_position(size, free_after, shape.total)
    return low + position


def _pack_position(size: int, *, broken: int, used: int, total: int) -> int:
    """0..size-1 in a band of ``size`` scores: fewer / smaller islands broken, then fuller.

    Each break class gets ``size // (BREAK_CLASSES + 1)`` positions from the bottom, the worst
    class lowest, and the class that breaks nothing the rest at the top; a band too narrow for
    that gives every break class position 0 and the whole band to the class that breaks nothing.
    Inside its positions a class is ordered by ``used / total``, the share of the node in use
    once the pod runs. Classes never overlap: a smaller island broken wins whatever the fill.
    """
    per_class = size // (BREAK_CLASSES + 1)
    broken = min(broken, BREAK_CLASSES)
    if broken == 0:
        base = per_class * BREAK_CLASSES
        return base + _share_position(size - base, used, total)
    if per_class == 0:
        return 0
    return per_class * (BREAK_CLASSES - broken) + _share_position(per_class, used, total)


def _share_position(width: int, part: int, total: int) -> int:
    """``part / total`` (0..1) as one of ``width`` equal steps, 0..width-1; exact arithmetic."""
    return min(width - 1, width * part // total)
