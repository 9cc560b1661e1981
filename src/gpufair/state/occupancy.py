"""A pool's nodes, capacity and free GPUs at one instant: what statuses, admission and
reclaim of that pool are computed from (called by the scheduling pass,
:mod:`gpufair.state.scheduling`, and by the operator's statuses)."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Mapping, Sequence

from gpufair.core import preemption
from gpufair.core import topology as topo
from gpufair.state import changes, model, rules


def pools_of_nodes(
    pools: Mapping[str, model.Pool],
    nodes: Mapping[str, model.Node],
    memo: Memo | None = None,
) -> dict[str, str]:
    """The pool of each node (:func:`gpufair.state.rules.pool_of_node` over the valid pools).

    With a ``memo`` kept between passes, a node object seen before (same object, same pool
    selectors) keeps its answer: only nodes a watch event replaced are matched again.
    """
    valid = {name: pool.selector for name, pool in pools.items() if pool.invalid is None}
    memo = memo if memo is not None else Memo()
    selectors = list(valid.items())
    if memo.selectors != selectors:
        memo.selectors = selectors
        memo.pool_of = {}
    known = memo.pool_of
    seen: dict[str, tuple[model.Node, str | None]] = {}
    result: dict[str, str] = {}
    for node_name, node in nodes.items():
        hit = known.get(node_name)
        if hit is not None and hit[0] is node:
            pool_name = hit[1]
        else:
            pool_name = rules.pool_of_node(valid, node.labels)
        seen[node_name] = (node, pool_name)
        if pool_name is not None:
            result[node_name] = pool_name
    memo.pool_of = seen
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
    """One pool's occupancy (:func:`pool_occupancies` for every pool at once)."""
    only = dataclasses.replace(snap, pools={pool.name: pool})
    return pool_occupancies(only, node_pool=node_pool)[pool.name]


@dataclasses.dataclass(frozen=True, slots=True)
class _NodeAnswer:
    """What one node contributes to its pool, and the inputs it was computed from."""

    node: model.Node
    resource: str
    pods: tuple[model.GpuPod, ...]
    others: tuple[int, int]
    topology: topo.NodeTopology
    free: frozenset[int] | None
    """``None``: the node is not schedulable."""
    indices: Mapping[str, tuple[int, ...]]
    capacity: int
    allocated: int
    missing_topology: bool
    spare: preemption.Room | None

    def same(
        self,
        node: model.Node,
        resource: str,
        pods: Sequence[model.GpuPod],
        others: tuple[int, int],
    ) -> bool:
        return (
            self.node is node
            and self.resource == resource
            and self.others == others
            and len(self.pods) == len(pods)
            and all(map(operator.is_, self.pods, pods))
        )

    def alike(self, other: _NodeAnswer) -> bool:
        """Whether ``other`` (made from new objects) contributes exactly what this one does."""
        return (
            self.node == other.node
            and self.free == other.free
            and list(self.indices.items()) == list(other.indices.items())
            and self.topology == other.topology
            and self.capacity == other.capacity
            and self.allocated == other.allocated
            and self.missing_topology == other.missing_topology
            and self.spare == other.spare
        )


def _names(nodes: Sequence[model.Node]) -> tuple[str, ...]:
    return tuple(node.name for node in nodes)


def _node_answer(
    node: model.Node, resource: str, pods: tuple[model.GpuPod, ...], others: tuple[int, int]
) -> _NodeAnswer:
    count = node.allocatable.get(resource, 0)
    node_topology = rules.node_topology(node.topology, count)
    held, usable = _node_gpus(
        node_topology, count, tuple((pod.uid, pod.gpu_indices, pod.gpus) for pod in pods)
    )
    return _NodeAnswer(
        node=node,
        resource=resource,
        pods=pods,
        others=others,
        topology=node_topology,
        free=usable if node.schedulable else None,
        indices=dict(held),
        capacity=count if node.schedulable else 0,
        allocated=sum(pod.gpus for pod in pods),
        missing_topology=node.topology is None and count > 0,
        spare=_spare(node, pods, others),
    )


class Memo:
    """Per-node answers kept between passes by the caller (the operator's reconciler, the
    benchmark): the pool of each node object, the GPU pods on each node, and what each node
    contributes to its pool. Told which pods and nodes changed (:mod:`gpufair.state.changes`),
    a pass recomputes only their nodes and rebuilds only their pools, so a pass with a memo
    decides exactly what a pass without one does."""

    def __init__(self) -> None:
        self.selectors: list[tuple[str, model.LabelSelector]] | None = None
        self.pool_of: dict[str, tuple[model.Node, str | None]] = {}
        self.valid = False
        self.node_pool: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.others: dict[str, tuple[int, int]] = {}
        self.members: dict[str, tuple[str, ...]] = {}
        """Each pool's node names, in name order."""
        self.on_node: dict[str, tuple[model.GpuPod, ...]] = {}
        """The GPU-holding pods on each pool node, in the snapshot's order."""
        self.holders: dict[str, tuple[model.GpuPod, ...]] = {}
        self.terminating: dict[str, tuple[model.GpuPod, ...]] = {}
        self.nodes: dict[str, _NodeAnswer] = {}
        self.views: dict[str, PoolOccupancy] = {}


def pool_occupancies(
    snap: model.Snapshot,
    *,
    node_pool: Mapping[str, str],
    memo: Memo | None = None,
    pods_moved: changes.PodChanges | None = None,
    nodes_moved: changes.Changes | None = None,
) -> dict[str, PoolOccupancy]:
    """The occupancy of every pool of ``snap`` (by name, in name order).

    The GPU pods are grouped by node once for all pools. With a ``memo`` of the previous
    pass and what changed since (``pods_moved``, ``nodes_moved``), only nodes whose object,
    pods or other requests changed are recomputed, only their pools' maps rebuilt, and every
    other pool keeps its maps; without them (or when the pools' nodes or resources changed)
    everything is computed afresh.
    """
    memo = memo if memo is not None else Memo()
    pools = sorted(snap.pools.items())
    resources = {name: pool.resource_name for name, pool in pools}
    if (
        memo.valid
        and pods_moved is not None
        and nodes_moved is not None
        and not nodes_moved.removed
        and memo.node_pool == node_pool
        and memo.resources == resources
    ):
        dirty = _dirty_nodes(snap, memo, pods_moved, nodes_moved, node_pool=node_pool)
    else:
        _group(snap, memo, node_pool=node_pool)
        dirty = None
    memo.node_pool, memo.resources = dict(node_pool), resources
    memo.others = dict(snap.other_requests)
    result: dict[str, PoolOccupancy] = {}
    for name, pool in pools:
        members = memo.members.get(name, ())
        previous = memo.views.get(name)
        in_flight, draining = _leaving(memo.terminating.get(name, ()), snap)
        if dirty is not None and previous is not None and not dirty.get(name):
            result[name] = dataclasses.replace(
                previous, pool=pool, in_flight=in_flight, draining=draining
            )
            continue
        holders = memo.holders.get(name, ())
        followed = dirty is not None and previous is not None and _names(previous.nodes) == members
        changed = dirty.get(name, set()) if dirty is not None else set()
        if followed and previous is not None and _still_alike(snap, memo, pool, changed):
            # Objects sent again with the same content (the watch re-sends them): the pool's
            # maps stand, so what later steps keep for them (free-GPU groups) stands too.
            result[name] = dataclasses.replace(
                previous,
                pool=pool,
                nodes=tuple(snap.nodes[node_name] for node_name in members),
                in_flight=in_flight,
                draining=draining,
                holders=holders,
            )
            continue
        answers = []
        # (When the changed nodes were just found to differ, the pool's maps are rebuilt.)
        alike = not followed and previous is not None and len(previous.nodes) == len(members)
        for node_name in members:
            node = snap.nodes[node_name]
            pods = memo.on_node.get(node_name, ())
            others = snap.other_requests.get(node_name, (0, 0))
            answer = memo.nodes.get(node_name)
            if answer is None or not answer.same(node, pool.resource_name, pods, others):
                fresh = _node_answer(node, pool.resource_name, pods, others)
                alike = alike and answer is not None and answer.alike(fresh)
                answer = memo.nodes[node_name] = fresh
            answers.append(answer)
        if alike and previous is not None and _names(previous.nodes) == members:
            # Objects sent again with the same content (the watch re-sends them): the pool's
            # maps stand, so what later steps keep for them (free-GPU groups) stands too.
            result[name] = dataclasses.replace(
                previous,
                pool=pool,
                nodes=tuple(answer.node for answer in answers),
                in_flight=in_flight,
                draining=draining,
                holders=holders,
            )
            continue
        result[name] = _pool(pool, tuple(answers), holders, in_flight=in_flight, draining=draining)
    memo.views = result
    memo.valid = True
    return result


def _group(snap: model.Snapshot, memo: Memo, *, node_pool: Mapping[str, str]) -> None:
    """Every pool's nodes and every node's GPU-holding pods, from scratch."""
    on_node: dict[str, list[model.GpuPod]] = {}
    holders: dict[str, list[model.GpuPod]] = {}
    for pod in snap.pods:
        node_name = pod.node
        if node_name is None or pod.state not in _HOLDING:
            continue
        pool_name = node_pool.get(node_name)
        if pool_name is None:
            continue
        on_node.setdefault(node_name, []).append(pod)
        holders.setdefault(pool_name, []).append(pod)
    members: dict[str, list[str]] = {}
    for name in sorted(snap.nodes):
        pool_name = node_pool.get(name)
        if pool_name is not None:
            members.setdefault(pool_name, []).append(name)
    memo.members = {name: tuple(names) for name, names in members.items()}
    memo.on_node = {name: tuple(pods) for name, pods in on_node.items()}
    memo.holders = {name: tuple(pods) for name, pods in holders.items()}
    memo.terminating = {name: _terminating(pods) for name, pods in memo.holders.items()}
    memo.nodes = {name: answer for name, answer in memo.nodes.items() if name in node_pool}


def _dirty_nodes(
    snap: model.Snapshot,
    memo: Memo,
    pods_moved: changes.PodChanges,
    nodes_moved: changes.Changes,
    *,
    node_pool: Mapping[str, str],
) -> dict[str, set[str]]:
    """Bring the memo's pods per node and per pool up to date with what changed; the nodes
    of each pool whose object, pods or other requests changed."""
    gone = pods_moved.gone
    touched: set[str] = set()
    for uid in gone:
        old = pods_moved.before.get(uid)
        if old is not None and old.node is not None and old.state in _HOLDING:
            touched.update((old.node,) if old.node in node_pool else ())
    arrived: dict[str, list[model.GpuPod]] = {}
    for uid in pods_moved.changed:
        pod = pods_moved.after[uid]
        if pod.node is not None and pod.state in _HOLDING and pod.node in node_pool:
            touched.add(pod.node)
            arrived.setdefault(pod.node, []).append(pod)
    position = pods_moved.position
    pools_touched: set[str] = set()
    for node_name in touched:
        pods = [pod for pod in memo.on_node.get(node_name, ()) if pod.uid not in gone]
        pods.extend(arrived.get(node_name, ()))
        pods.sort(key=lambda pod: position[pod.uid])
        memo.on_node[node_name] = tuple(pods)
        pools_touched.add(node_pool[node_name])
    for pool_name in pools_touched:
        pods = [pod for pod in memo.holders.get(pool_name, ()) if pod.uid not in gone]
        pods.extend(
            pod
            for node_name, new in arrived.items()
            if node_pool[node_name] == pool_name
            for pod in new
        )
        pods.sort(key=lambda pod: position[pod.uid])
        memo.holders[pool_name] = tuple(pods)
        memo.terminating[pool_name] = _terminating(memo.holders[pool_name])
    dirty: dict[str, set[str]] = {}
    for name in touched:
        dirty.setdefault(node_pool[name], set()).add(name)
    for name in nodes_moved.changed:
        if name in node_pool:
            dirty.setdefault(node_pool[name], set()).add(name)
    if snap.other_requests != memo.others:
        for name, _ in snap.other_requests.items() ^ memo.others.items():
            if name in node_pool:
                dirty.setdefault(node_pool[name], set()).add(name)
    return dirty


def _still_alike(snap: model.Snapshot, memo: Memo, pool: model.Pool, names: set[str]) -> bool:
    """Recompute the answers of the changed nodes ``names``; whether each contributes exactly
    what it did (then the pool's maps stand)."""
    alike = True
    for node_name in names:
        node = snap.nodes[node_name]
        pods = memo.on_node.get(node_name, ())
        others = snap.other_requests.get(node_name, (0, 0))
        answer = memo.nodes.get(node_name)
        if answer is not None and answer.same(node, pool.resource_name, pods, others):
            continue
        fresh = _node_answer(node, pool.resource_name, pods, others)
        alike = alike and answer is not None and answer.alike(fresh)
        memo.nodes[node_name] = fresh
    return alike


def _terminating(holders: Sequence[model.GpuPod]) -> tuple[model.GpuPod, ...]:
    return tuple(pod for pod in holders if pod.state is model.PodState.TERMINATING)


def _leaving(
    terminating: Sequence[model.GpuPod], snap: model.Snapshot
) -> tuple[int, frozenset[str]]:
    """How many terminating pods' deletions are in progress (:func:`leaving`), and their nodes."""
    going = [pod for pod in terminating if leaving(pod, snap.nodes.get(pod.node or ""), snap.now)]
    return len(going), frozenset(pod.node for pod in going if pod.node is not None)


_HOLDING = (model.PodState.BOUND, model.PodState.TERMINATING)
"""States of a pod on a node that holds its GPUs (:attr:`model.GpuPod.holds_gpus`)."""


def _pool(
    pool: model.Pool,
    answers: tuple[_NodeAnswer, ...],
    holders: tuple[model.GpuPod, ...],
    *,
    in_flight: int,
    draining: frozenset[str],
) -> PoolOccupancy:
    """A pool's occupancy from its nodes' answers."""
    free: dict[str, frozenset[int]] = {}
    indices: dict[str, tuple[int, ...]] = {}
    for answer in answers:
        indices.update(answer.indices)
        if answer.free is not None:
            free[answer.node.name] = answer.free
    return PoolOccupancy(
        pool=pool,
        nodes=tuple(answer.node for answer in answers),
        free=free,
        indices=indices,
        topologies={answer.node.name: answer.topology for answer in answers},
        capacity=sum(answer.capacity for answer in answers),
        allocated=sum(answer.allocated for answer in answers),
        in_flight=in_flight,
        draining=draining,
        missing_topology=tuple(answer.node.name for answer in answers if answer.missing_topology),
        holders=holders,
        spare={answer.node.name: answer.spare for answer in answers},
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
