"""A pool's nodes, capacity and free GPUs at one instant: what statuses, admission and
reclaim of that pool are computed from (called by the scheduling pass,
:mod:`gpufair.state.scheduling`, and by the operator's statuses)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence

from gpufair.core import preemption
from gpufair.core import topology as topo
from gpufair.state import model, rules


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


def _node_answer(
    node: model.Node, resource: str, pods: tuple[model.GpuPod, ...], others: tuple[int, int]
) -> _NodeAnswer:
    count = node.allocatable.get(resource, 0)
    node_topology = rules.node_topology(node.topology, count)
    return _NodeAnswer(
        node=node,
        resource=resource,
        pods=pods,
        others=others,
        topology=node_topology,
        free=rules.free_gpus(
            gpus=node_topology,
            allocatable=count,
            held=[(pod.gpu_indices, pod.gpus) for pod in pods],
        ).usable
        if node.schedulable
        else None,
        indices=_held_indices(node_topology, pods),
        capacity=count if node.schedulable else 0,
        allocated=sum(pod.gpus for pod in pods),
        missing_topology=node.topology is None and count > 0,
        spare=_spare(node, pods, others),
    )


class Memo:
    """Per-node answers kept between passes by the caller (the operator's reconciler, the
    benchmark): the pool of each node object, and what each node contributes to its pool for
    the pods on it. An answer is reused only for the very same node and pod objects (the store
    replaces an object on each watch event that changes it), so a pass with a memo decides
    exactly what a pass without one does."""

    def __init__(self) -> None:
        self.selectors: list[tuple[str, model.LabelSelector]] | None = None
        self.pool_of: dict[str, tuple[model.Node, str | None]] = {}
        self.nodes: dict[str, _NodeAnswer] = {}
        self.pools: dict[str, tuple[tuple[_NodeAnswer, ...], PoolOccupancy]] = {}


def pool_occupancies(
    snap: model.Snapshot, *, node_pool: Mapping[str, str], memo: Memo | None = None
) -> dict[str, PoolOccupancy]:
    """The occupancy of every pool of ``snap`` (by name, in name order).

    The GPU pods are grouped by node once for all pools; with a ``memo``, a node whose object
    and pods are those of the previous pass keeps its answer, and a pool none of whose nodes
    changed keeps its maps.
    """
    memo = memo if memo is not None else Memo()
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
    members: dict[str, list[model.Node]] = {}
    for name, node in sorted(snap.nodes.items()):
        pool_name = node_pool.get(name)
        if pool_name is not None:
            members.setdefault(pool_name, []).append(node)
    answers: dict[str, _NodeAnswer] = {}
    result: dict[str, PoolOccupancy] = {}
    for name, pool in sorted(snap.pools.items()):
        pool_answers = []
        for node in members.get(name, ()):
            pods = on_node.get(node.name, ())
            others = snap.other_requests.get(node.name, (0, 0))
            answer = memo.nodes.get(node.name)
            if answer is None or not answer.same(node, pool.resource_name, pods, others):
                answer = _node_answer(node, pool.resource_name, tuple(pods), others)
            answers[node.name] = answer
            pool_answers.append(answer)
        result[name] = _pool(pool, tuple(pool_answers), holders.get(name, []), snap=snap, memo=memo)
    memo.nodes = answers
    memo.pools = {
        name: (tuple(answers[node.name] for node in view.nodes), view)
        for name, view in result.items()
    }
    return result


_HOLDING = (model.PodState.BOUND, model.PodState.TERMINATING)
"""States of a pod on a node that holds its GPUs (:attr:`model.GpuPod.holds_gpus`)."""


def _pool(
    pool: model.Pool,
    answers: tuple[_NodeAnswer, ...],
    holders: Sequence[model.GpuPod],
    *,
    snap: model.Snapshot,
    memo: Memo,
) -> PoolOccupancy:
    """A pool's occupancy from its nodes' answers (the previous maps when none changed)."""
    in_flight = sum(
        1
        for pod in holders
        if pod.state is model.PodState.TERMINATING
        and leaving(pod, snap.nodes.get(pod.node or ""), snap.now)
    )
    previous = memo.pools.get(pool.name)
    if (
        previous is not None
        and len(previous[0]) == len(answers)
        and all(map(operator.is_, previous[0], answers))
        and len(previous[1].holders) == len(holders)
        and all(map(operator.is_, previous[1].holders, holders))
    ):
        return dataclasses.replace(previous[1], pool=pool, in_flight=in_flight)
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
        missing_topology=tuple(answer.node.name for answer in answers if answer.missing_topology),
        holders=tuple(holders),
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


def _held_indices(
    node_topology: topo.NodeTopology, on_node: Sequence[model.GpuPod]
) -> dict[str, tuple[int, ...]]:
    """The GPUs each pod holds: as recorded by bind; a pod without a record (bound by another
    scheduler) is assumed to hold the highest indices nobody recorded."""
    held: dict[str, tuple[int, ...]] = {}
    taken: set[int] = set()
    for pod in on_node:
        if pod.gpu_indices is not None:
            held[pod.uid] = tuple(sorted(pod.gpu_indices))
            taken |= pod.gpu_indices
    rest = [index for index in reversed(node_topology.indices) if index not in taken]
    for pod in on_node:
        if pod.gpu_indices is None:
            mine, rest = rest[: pod.gpus], rest[pod.gpus :]
            held[pod.uid] = tuple(sorted(mine))
    return held
