"""A pool's nodes, capacity and free GPUs at one instant: what statuses, admission and
reclaim of that pool are computed from (called by the scheduling pass,
:mod:`gpufair.state.scheduling`, and by the operator's statuses)."""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Mapping, Sequence

from gpufair.core import preemption
from gpufair.core import topology as topo
from gpufair.state import model, rules


def pools_of_nodes(
    pools: Mapping[str, model.Pool], nodes: Mapping[str, model.Node]
) -> dict[str, str]:
    """The pool of each node (:func:`gpufair.state.rules.pool_of_node` over the valid pools)."""
    valid = {name: pool.selector for name, pool in pools.items() if pool.invalid is None}
    result: dict[str, str] = {}
    for node_name, node in nodes.items():
        pool_name = rules.pool_of_node(valid, node.labels)
        if pool_name is not None:
            result[node_name] = pool_name
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class PoolOccupancy:
    """One pool's nodes with their free GPUs, and every GPU pod on them."""

    pool: model.Pool
    nodes: tuple[model.Node, ...]
    free: Mapping[str, frozenset[int]]
    """Free GPU indices of each schedulable node."""
    indices: Mapping[str, tuple[int, ...]]
    """GPU indices each pod on the pool's nodes holds (recorded, or assumed when unrecorded)."""
    topologies: Mapping[str, topo.NodeTopology]
    capacity: int
    allocated: int
    in_flight: int
    """Pods on the pool's nodes that are terminating (evictions or deletions in progress), not
    counting stuck ones (:func:`leaving`)."""
    missing_topology: tuple[str, ...]
    holders: tuple[model.GpuPod, ...]
    spare: Mapping[str, preemption.Room | None] = dataclasses.field(default_factory=dict)
    """CPU and memory of each node not requested by the pods bound to it (``None``: the node
    does not report them)."""
    draining: frozenset[str] = frozenset()
    """Nodes with a pod whose termination is in progress (:func:`leaving`): the GPUs freed
    there are spoken for (by the pod a reclaim evicted for), so no other pod is admitted onto
    them until the termination is over."""


def pool_occupancy(
    pool: model.Pool, *, snap: model.Snapshot, node_pool: Mapping[str, str]
) -> PoolOccupancy:
    members = tuple(
        node for name, node in sorted(snap.nodes.items()) if node_pool.get(name) == pool.name
    )
    names = {node.name for node in members}
    holders = tuple(pod for pod in snap.pods if pod.holds_gpus and pod.node in names)
    holders_by_node: dict[str | None, list[model.GpuPod]] = collections.defaultdict(list)
    for pod in holders:
        holders_by_node[pod.node].append(pod)
    free: dict[str, frozenset[int]] = {}
    indices: dict[str, tuple[int, ...]] = {}
    topologies: dict[str, topo.NodeTopology] = {}
    capacity = 0
    allocated = 0
    for node in members:
        count = node.allocatable.get(pool.resource_name, 0)
        node_topology = rules.node_topology(node.topology, count)
        topologies[node.name] = node_topology
        on_node = holders_by_node.get(node.name, [])
        allocated += sum(pod.gpus for pod in on_node)
        held, usable = _node_gpus(
            node_topology, count, tuple((pod.uid, pod.gpu_indices, pod.gpus) for pod in on_node)
        )
        indices.update(held)
        if not node.schedulable:
            continue
        capacity += count
        free[node.name] = usable
    return PoolOccupancy(
        pool=pool,
        nodes=members,
        free=free,
        indices=indices,
        topologies=topologies,
        capacity=capacity,
        allocated=allocated,
        in_flight=sum(
            1
            for pod in holders
            if pod.state is model.PodState.TERMINATING
            and leaving(pod, snap.nodes.get(pod.node or ""), snap.now)
        ),
        draining=frozenset(
            pod.node
            for pod in holders
            if pod.node is not None and leaving(pod, snap.nodes.get(pod.node), snap.now)
        ),
        missing_topology=tuple(
            node.name
            for node in members
            if node.topology is None and node.allocatable.get(pool.resource_name, 0) > 0
        ),
        holders=holders,
        spare={
            node.name: _spare(
                node,
                holders_by_node.get(node.name, []),
                snap.other_requests.get(node.name, (0, 0)),
            )
            for node in members
        },
    )


def _spare(
    node: model.Node, on_node: Sequence[model.GpuPod], others: tuple[int, int]
) -> preemption.Room | None:
    """The node's CPU and memory not requested by the pods on it (GPU pods and ``others``)."""
    if node.cpu_millis is None or node.memory_bytes is None:
        return None
    return preemption.Room(
        cpu_millis=node.cpu_millis - others[0] - sum(pod.cpu_millis for pod in on_node),
        memory_bytes=node.memory_bytes - others[1] - sum(pod.memory_bytes for pod in on_node),
    )


STUCK_AFTER_SECONDS = 60.0
"""How long past the end of its grace period a terminating pod is still expected to go."""


def leaving(pod: model.GpuPod, node: model.Node | None, now: float) -> bool:
    """Whether a pod's termination is in progress, so the GPUs it frees are spoken for and no
    new reclaim should start in its pool (ARCHITECTURE.md §5).

    A terminating pod on a NotReady or unreachable node, or more than
    :data:`STUCK_AFTER_SECONDS` past its grace period, is stuck, not leaving: its kubelet is
    not acting on the deletion, and waiting for it would stop reclaim in the pool for good
    (issue 13 item 2). It still holds its GPUs (they are not counted free).
    """
    if pod.state is not model.PodState.TERMINATING:
        return False
    if node is not None and not node.reachable:
        return False
    return pod.deleting_at is None or now <= pod.deleting_at + STUCK_AFTER_SECONDS


HeldBy = tuple[tuple[str, frozenset[int] | None, int], ...]
"""The pods on a node as (uid, recorded GPU indices, GPU count)."""


@functools.lru_cache(maxsize=16384)
def _node_gpus(
    node_topology: topo.NodeTopology, allocatable: int, on_node: HeldBy
) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], frozenset[int]]:
    """The GPUs each pod on the node holds (:func:`_held_indices`) and the node's usable free
    GPUs (:func:`gpufair.state.rules.free_gpus`). Remembered: a node's pods change far less
    often than passes run (every pass asks for every node)."""
    held = _held_indices(node_topology, on_node)
    free = rules.free_gpus(
        gpus=node_topology, allocatable=allocatable, held=[(gpus, n) for _, gpus, n in on_node]
    )
    return tuple(held.items()), free.usable


def _held_indices(node_topology: topo.NodeTopology, on_node: HeldBy) -> dict[str, tuple[int, ...]]:
    """The GPUs each pod holds: as recorded by bind; a pod without a record (bound by another
    scheduler) is assumed to hold the highest indices nobody recorded."""
    held: dict[str, tuple[int, ...]] = {}
    taken: set[int] = set()
    for uid, recorded, _ in on_node:
        if recorded is not None:
            held[uid] = tuple(sorted(recorded))
            taken |= recorded
    rest = [index for index in reversed(node_topology.indices) if index not in taken]
    for uid, recorded, count in on_node:
        if recorded is None:
            mine, rest = rest[:count], rest[count:]
            held[uid] = tuple(sorted(mine))
    return held
