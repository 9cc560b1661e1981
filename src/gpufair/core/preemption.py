"""Which running pods to evict so that a tenant below its fair share can run (ARCHITECTURE.md §5).

Two callers, one policy:

* the operator's reclaim pass calls :func:`choose_victims` for a waiting pod whose tenant is
  below its fair share, then evicts the returned pods through the Eviction API (deciding and
  acting are separate: nothing here evicts);
* the extender's ``preempt`` verb calls :func:`allowed_victims` to narrow the victims
  kube-scheduler proposes on a node to those this policy allows.

The rules that keep reclaim from oscillating:

* the preemptor's tenant may reclaim only while the pod keeps it within its fair share
  (``allocated + requested <= share``), so a tenant never preempts its way above its share;
* a victim's tenant is never pushed below ``max(fair share, guarantee)``, only its share in a
  rationed pool (:meth:`fairshare.PoolShares.protected`), so no tenant that lost pods can win
  them back by preemption under the same demands: after a reclaim, every tenant involved is
  where the other cannot take from it (no A-evicts-B-evicts-A);
* victims must make the pod fit *on one node, topology included* (``placement.choose`` on the
  freed GPUs); the set is then pruned so that every victim is needed: no pointless eviction;
* pods that ran less than their tenant's ``minRuntimeSeconds`` are protected;
* among the allowed sets the cheapest wins: lowest top priority, then least work lost in total
  (time since each pod's newest checkpoint, or since its start), then fewest pods and GPUs;
  among nodes equally cheap, the best placement score.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence

from gpufair.core import admission, fairshare, placement, policy, topology


@dataclasses.dataclass(frozen=True)
class RunningPod:
    """A pod holding GPUs on a node; ``checkpoint_at`` is its newest checkpoint, if it says."""

    uid: str
    tenant: str
    pool: str
    node: str
    gpus: tuple[int, ...]
    priority: int = 0
    started_at: float = 0.0
    checkpoint_at: float | None = None
    name: str = ""
    """``namespace/name``, only for messages."""
    cpu_millis: int = 0
    memory_bytes: int = 0
    """CPU and memory the pod requests: what its eviction frees besides its GPUs."""

    def lost_work(self, now: float) -> float:
        """Seconds of work an eviction now throws away."""
        saved = self.started_at
        if self.checkpoint_at is not None:
            saved = max(saved, self.checkpoint_at)
        return max(0.0, now - saved)

    def runtime(self, now: float) -> float:
        return max(0.0, now - self.started_at)


@dataclasses.dataclass(frozen=True)
class Policy:
    """A tenant's ``spec.preemption``: may it reclaim, and how long its pods are protected."""

    reclaim: bool = True
    min_runtime_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Room:
    """CPU (millicores) and memory (bytes): a pod's request, or what a node has spare."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def holds(self, need: Room) -> bool:
        return self.cpu_millis >= need.cpu_millis and self.memory_bytes >= need.memory_bytes

    def plus(self, pods: Iterable[RunningPod]) -> Room:
        """The room once ``pods`` are gone."""
        pods = list(pods)
        return Room(
            cpu_millis=self.cpu_millis + sum(pod.cpu_millis for pod in pods),
            memory_bytes=self.memory_bytes + sum(pod.memory_bytes for pod in pods),
        )


@dataclasses.dataclass(frozen=True)
class NodeGPUs:
    """A node's topology, the GPUs free on it now and, when known, its spare CPU and memory
    (``None``: not checked)."""

    topology: topology.NodeTopology
    free: frozenset[int]
    spare: Room | None = None


@dataclasses.dataclass(frozen=True)
class Victims:
    """Pods to evict on ``node``, cheapest first, and where the preemptor will then fit."""

    node: str
    pods: tuple[RunningPod, ...]
    choice: placement.Choice

    @property
    def gpus(self) -> int:
        return sum(len(pod.gpus) for pod in self.pods)


def choose_victims(
    *,
    preemptor: admission.WaitingPod,
    running: Sequence[RunningPod],
    nodes: Mapping[str, NodeGPUs],
    shares: fairshare.PoolShares,
    allocated: Mapping[str, int],
    policies: Mapping[str, Policy],
    now: float,
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
    needs: Room = Room(),
    demand: Mapping[int, int] | None = None,
) -> Victims | None:
    """The cheapest allowed victims on one node of the pool that let ``preemptor`` run, or None.

    Across nodes (:func:`_rank`): the lowest top priority among the victims, then a node where
    the preemptor's set costs the pool's waiting larger pods (``demand``, pods by size) no
    island (:func:`gpufair.core.placement.keeping_cost`), then the best link level, then the
    cheapest victims: a wide pod's reclaim frees a whole island, a small pod's leaves the
    islands waiting wide pods need. A multi-GPU pod with no larger pod waiting, in a pool with
    an island of its size, evicts only to run in one island: ``None`` when victims could only
    make room spread (it waits for an island, or for GPUs freed by pods that finish).

    ``nodes`` are the pool's schedulable nodes *the preemptor may use* (its node selector,
    required affinity and tolerations admit them: :func:`gpufair.state.rules.node_admits`),
    ``running`` the pods bound in the pool, ``shares`` and ``allocated`` (GPUs per tenant in
    this pool, bound and admitted) describe the same instant; ``needs`` is the preemptor's CPU
    and memory, checked against each node's ``spare`` plus what the victims free.
    ``None`` when the tenant may not reclaim, would end above its share, the pod already fits
    somewhere, or no allowed set of victims makes room. Inputs are not changed.
    """
    if not may_reclaim(preemptor=preemptor, shares=shares, allocated=allocated, policies=policies):
        return None
    # Nodes in the same state give the same answer: test each distinct state once.
    if any(
        _has_room(state, (), needs)
        and isinstance(_fit(state, (), preemptor.gpus, mode, rule), placement.Choice)
        for state in set(nodes.values())
    ):
        return None

    budget = {
        name: shares.reclaimable(name, amount)
        for name, amount in allocated.items()
        if name != preemptor.tenant
    }
    larger = {size: n for size, n in (demand or {}).items() if size > preemptor.gpus}
    candidates = sorted(
        (
            pod
            for pod in running
            if pod.pool == preemptor.pool
            and pod.node in nodes
            and pod.tenant != preemptor.tenant
            and len(pod.gpus) <= budget.get(pod.tenant, 0)
            and _old_enough(pod, policies, now)
        ),
        key=lambda pod: _cost(pod, now),
    )
    by_node: dict[str, list[RunningPod]] = {}
    for pod in candidates:
        by_node.setdefault(pod.node, []).append(pod)

    best: tuple[tuple[object, ...], Victims] | None = None
    for node_name in sorted(by_node):
        found = _victims_on_node(
            node_name,
            nodes[node_name],
            by_node[node_name],
            budget=budget,
            count=preemptor.gpus,
            mode=mode,
            rule=rule,
            now=now,
            bound=None
            if best is None
            else _bound(best[1], nodes[node_name], preemptor.gpus, mode, rule, now, larger),
            needs=needs,
        )
        if found is None:
            continue
        key = _rank(found, now, _keeps(found, nodes[node_name], larger))
        if best is None or key < best[0]:
            best = (key, found)
    if best is None:
        return None
    spread = best[1].choice.level is not placement.LinkLevel.NVLINK
    if spread and not larger and _island_possible(nodes, preemptor.gpus):
        return None  # it waits for an island rather than evict pods to run spread
    return best[1]


def _island_possible(nodes: Mapping[str, NodeGPUs], count: int) -> bool:
    """Some node of the pool has an NVLink island of ``count`` GPUs or more (multi-GPU pods)."""
    return count >= 2 and any(
        any(len(island) >= count for island in state.topology.nvlink_islands())
        for state in set(nodes.values())
    )


@dataclasses.dataclass(frozen=True)
class Preemptor:
    """One waiting pod, or every member of one pod group (room for all of them or none), with
    the nodes it may use (``None``: all) and the CPU and memory each pod needs, by uid."""

    pods: tuple[admission.WaitingPod, ...]
    nodes: frozenset[str] | None = None
    needs: Mapping[str, Room] = dataclasses.field(default_factory=dict)

    @property
    def group(self) -> bool:
        return len(self.pods) > 1

    @property
    def wide(self) -> bool:
        """A group or a multi-GPU pod: it reclaims alone (see :func:`reclaim_in_turn`)."""
        return self.group or self.pods[0].gpus > 1


@dataclasses.dataclass(frozen=True)
class Reclaim:
    """What one preemptor gets: the pods to evict for it (on one or more nodes) and where each
    of its pods then runs (pod uid -> node and GPUs)."""

    preemptor: Preemptor
    pods: tuple[RunningPod, ...]
    placements: Mapping[str, tuple[str, tuple[int, ...]]]


def reclaim_in_turn(
    *,
    preemptors: Sequence[Preemptor],
    running: Sequence[RunningPod],
    nodes: Mapping[str, NodeGPUs],
    shares: fairshare.PoolShares,
    allocated: Mapping[str, int],
    policies: Mapping[str, Policy],
    now: float,
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
    demand: Mapping[int, int] | None = None,
    limit: int = 1,
) -> list[Reclaim]:
    """Victims for several waiting pods and pod groups at once, in the order given (admission
    order), at most ``limit`` of them.

    Each preemptor is judged as if those served before it had run: their victims gone, their
    pods placed, their tenants' and the victims' tenants' allocations moved. So no victim's
    tenant is taken below what it keeps over the whole batch, and no preemptor's tenant above
    its share, exactly as when the reclaims happen one after the other. A single pod gets what
    :func:`choose_victims` picks; a group places its members largest first, each on free GPUs
    where it fits, else at the victims :func:`choose_victims` picks for it; if any member finds
    no room, the group gets nothing. A preemptor that finds nothing (or needs no victim) is
    skipped: those behind it may still be served.

    Only one-GPU pods share a batch. A multi-GPU pod or a group is served alone, first of its
    batch, and a batch of one-GPU pods stops where one comes: the room made for it must still
    be free, in the shape it needs, when admission next places pods (admission places in its own
    order, not the reclaim's), so nothing else is made room for beside it. ``demand``: the
    pool's waiting pods by size (:func:`choose_victims` keeps their islands).
    """
    turns = _Turns(nodes=dict(nodes), running=list(running), held=dict(allocated))
    served: list[Reclaim] = []
    for preemptor in preemptors:
        if len(served) >= limit or (served and preemptor.wide):
            break
        trial = turns.copy()
        placements: dict[str, tuple[str, tuple[int, ...]]] = {}
        victims: list[RunningPod] = []
        whole = dataclasses.replace(preemptor.pods[0], gpus=sum(pod.gpus for pod in preemptor.pods))
        if not may_reclaim(preemptor=whole, shares=shares, allocated=trial.held, policies=policies):
            continue
        for pod in sorted(preemptor.pods, key=lambda member: (-member.gpus, member.uid)):
            need = preemptor.needs.get(pod.uid, Room())
            usable = {
                name: state
                for name, state in trial.nodes.items()
                if preemptor.nodes is None or name in preemptor.nodes
            }
            spot = _free_spot(usable, pod.gpus, need, mode, rule) if preemptor.group else None
            gone: tuple[RunningPod, ...] = ()
            if spot is None:
                found = choose_victims(
                    preemptor=pod,
                    running=trial.running,
                    nodes=usable,
                    shares=shares,
                    allocated=trial.held,
                    policies=policies,
                    now=now,
                    mode=mode,
                    rule=rule,
                    needs=need,
                    demand=demand,
                )
                if found is None:
                    break
                spot, gone = (found.node, found.choice.gpus), found.pods
            trial.settle(pod, spot=spot, gone=gone, need=need)
            victims.extend(gone)
            placements[pod.uid] = spot
        else:
            if victims:
                turns = trial
                served.append(Reclaim(preemptor, pods=tuple(victims), placements=placements))
                if preemptor.wide:
                    break
    return served


@dataclasses.dataclass
class _Turns:
    """The pool as the reclaims chosen so far leave it (victims gone, preemptors placed)."""

    nodes: dict[str, NodeGPUs]
    running: list[RunningPod]
    held: dict[str, int]

    def copy(self) -> _Turns:
        return _Turns(nodes=dict(self.nodes), running=list(self.running), held=dict(self.held))

    def settle(
        self,
        pod: admission.WaitingPod,
        *,
        spot: tuple[str, tuple[int, ...]],
        gone: Sequence[RunningPod],
        need: Room,
    ) -> None:
        node, gpus = spot
        self.nodes[node] = _after(self.nodes[node], gone=gone, taken=gpus, need=need)
        uids = {victim.uid for victim in gone}
        if uids:
            self.running = [other for other in self.running if other.uid not in uids]
        for victim in gone:
            self.held[victim.tenant] = self.held.get(victim.tenant, 0) - len(victim.gpus)
        self.held[pod.tenant] = self.held.get(pod.tenant, 0) + pod.gpus


def _free_spot(
    nodes: Mapping[str, NodeGPUs],
    count: int,
    need: Room,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> tuple[str, tuple[int, ...]] | None:
    """The node (best score, then name) whose free GPUs hold ``count`` now, and the GPUs."""
    best: tuple[int, str, tuple[int, ...]] | None = None
    for name in sorted(nodes):
        state = nodes[name]
        if len(state.free) < count or not _has_room(state, (), need):
            continue
        choice = _fit(state, (), count, mode, rule)
        if isinstance(choice, placement.Choice) and (best is None or choice.score > best[0]):
            best = (choice.score, name, choice.gpus)
    return None if best is None else (best[1], best[2])


def _after(
    state: NodeGPUs, *, gone: Sequence[RunningPod], taken: Iterable[int], need: Room
) -> NodeGPUs:
    """The node once ``gone`` have left and a member took ``taken`` GPUs (and ``need``)."""
    freed = state.free.union(*(pod.gpus for pod in gone))
    spare = state.spare
    if spare is not None:
        spare = spare.plus(gone)
        spare = Room(
            cpu_millis=spare.cpu_millis - need.cpu_millis,
            memory_bytes=spare.memory_bytes - need.memory_bytes,
        )
    return NodeGPUs(topology=state.topology, free=freed - frozenset(taken), spare=spare)


def may_reclaim(
    *,
    preemptor: admission.WaitingPod,
    shares: fairshare.PoolShares,
    allocated: Mapping[str, int],
    policies: Mapping[str, Policy],
) -> bool:
    """Whether the preemptor's tenant may take GPUs from others for this pod: its policy allows
    reclaim and the pod keeps it within its fair share (never above its demand, by construction
    of the share)."""
    if not policies.get(preemptor.tenant, Policy()).reclaim:
        return False
    after = allocated.get(preemptor.tenant, 0) + preemptor.gpus
    return fairshare.at_most(after, shares.share(preemptor.tenant))


def allowed_victims(
    *,
    preemptor: admission.WaitingPod,
    victims: Sequence[RunningPod],
    shares: fairshare.PoolShares,
    allocated: Mapping[str, int],
    policies: Mapping[str, Policy],
    now: float,
    node: NodeGPUs | None = None,
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
) -> tuple[RunningPod, ...] | None:
    """Narrow the victims kube-scheduler proposes on one node to those the policy allows.

    Allowed: pods past their tenant's ``minRuntimeSeconds``; of the preemptor's own tenant
    (priority preemption inside a tenant is kube-scheduler's business); of another tenant only
    when :func:`may_reclaim` holds for the preemptor's tenant after its own victims leave, and
    without pushing that tenant below ``max(share, guarantee)``, cheapest victims kept first.

    Returns the allowed victims (in the order given), or ``None`` when the node must be dropped
    from the answer: the allowed ones do not make the pod fit. Without ``node`` (topology and
    free GPUs unknown) a narrowed set is never trusted to fit, so anything but all proposed
    victims is ``None``; with it, the allowed set must free a fitting GPU set and is pruned to
    the victims that set needs.
    """
    if not victims:
        return ()
    eligible = [pod for pod in victims if _old_enough(pod, policies, now)]
    own = [pod for pod in eligible if pod.tenant == preemptor.tenant]
    others = sorted(
        (pod for pod in eligible if pod.tenant != preemptor.tenant),
        key=lambda pod: _cost(pod, now),
    )
    kept: list[RunningPod] = list(own)
    if others:
        own_gpus = sum(len(pod.gpus) for pod in own)
        relieved = {**allocated, preemptor.tenant: allocated.get(preemptor.tenant, 0) - own_gpus}
        if may_reclaim(preemptor=preemptor, shares=shares, allocated=relieved, policies=policies):
            budget = {name: shares.reclaimable(name, amount) for name, amount in allocated.items()}
            for pod in others:
                if len(pod.gpus) <= budget.get(pod.tenant, 0):
                    budget[pod.tenant] -= len(pod.gpus)
                    kept.append(pod)

    if node is None:
        return tuple(victims) if len(kept) == len(victims) else None
    ordered = sorted(kept, key=lambda pod: _cost(pod, now))
    freed = {gpu for pod in ordered for gpu in pod.gpus}
    if not isinstance(_fit(node, freed, preemptor.gpus, mode, rule), placement.Choice):
        return None
    needed = {pod.uid for pod in _prune(node, ordered, preemptor.gpus, mode, rule)}
    return tuple(pod for pod in victims if pod.uid in needed)


EXHAUSTIVE_LIMIT = 8
"""Up to this many candidate pods on a node, every subset is tried (at most 255, and placement
is memoised); beyond it, the cheapest pods are taken greedily until the pod fits, then pruned."""


def _victims_on_node(
    node_name: str,
    state: NodeGPUs,
    candidates: Sequence[RunningPod],
    *,
    budget: Mapping[str, int],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    now: float,
    bound: tuple[object, ...] | None = None,
    needs: Room = Room(),
) -> Victims | None:
    """The cheapest allowed set of pods on the node whose eviction lets the preemptor fit
    (GPUs, topology included, and CPU and memory).

    ``bound`` is the cost of the best set found on another node: dearer sets are not tried.
    """
    if len(candidates) <= EXHAUSTIVE_LIMIT:
        pods = _cheapest_subset(
            state,
            candidates,
            budget=budget,
            count=count,
            mode=mode,
            rule=rule,
            now=now,
            bound=bound,
            needs=needs,
        )
    else:
        pods = _greedy(
            state, candidates, budget=budget, count=count, mode=mode, rule=rule, needs=needs
        )
    if pods is None:
        return None
    pods = _prune(state, pods, count, mode, rule, needs)
    choice = _fit(state, {gpu for pod in pods for gpu in pod.gpus}, count, mode, rule)
    assert isinstance(choice, placement.Choice)
    return Victims(node=node_name, pods=tuple(pods), choice=choice)


def _cheapest_subset(
    state: NodeGPUs,
    candidates: Sequence[RunningPod],
    *,
    budget: Mapping[str, int],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    now: float,
    bound: tuple[object, ...] | None,
    needs: Room,
) -> list[RunningPod] | None:
    """Try every subset, cheapest-known first as the bar: the greedy set seeds it, and subsets
    dearer than the bar (or than ``bound``) are not placed at all."""
    best: tuple[tuple[object, ...], list[RunningPod]] | None = None
    seed = _greedy(state, candidates, budget=budget, count=count, mode=mode, rule=rule, needs=needs)
    if seed is not None:
        seed = _prune(state, seed, count, mode, rule, needs)
        best = (_subset_cost(seed, now), seed)
    costs = [(pod.priority, pod.lost_work(now), len(pod.gpus)) for pod in candidates]
    missing = count - len(state.free)
    for size in range(1, len(candidates) + 1):
        for picks in itertools.combinations(range(len(candidates)), size):
            gpus = sum(costs[i][2] for i in picks)
            if gpus < missing:
                continue
            key = (max(costs[i][0] for i in picks), sum(costs[i][1] for i in picks), size, gpus)
            if (best is not None and key >= best[0]) or (bound is not None and key > bound):
                continue
            subset = [candidates[i] for i in picks]
            if not _within(subset, budget) or not _has_room(state, subset, needs):
                continue
            freed = {gpu for pod in subset for gpu in pod.gpus}
            if isinstance(_fit(state, freed, count, mode, rule), placement.Choice):
                best = (key, subset)
    return None if best is None else best[1]


def _greedy(
    state: NodeGPUs,
    candidates: Sequence[RunningPod],
    *,
    budget: Mapping[str, int],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    needs: Room,
) -> list[RunningPod] | None:
    left = dict(budget)
    taken: list[RunningPod] = []
    freed: set[int] = set()
    for pod in candidates:
        if len(pod.gpus) > left.get(pod.tenant, 0):
            continue
        left[pod.tenant] -= len(pod.gpus)
        taken.append(pod)
        freed.update(pod.gpus)
        if _has_room(state, taken, needs) and isinstance(
            _fit(state, freed, count, mode, rule), placement.Choice
        ):
            return taken
    return None


def _within(pods: Iterable[RunningPod], budget: Mapping[str, int]) -> bool:
    """Whether evicting ``pods`` takes from no tenant more than it may lose."""
    taking: dict[str, int] = {}
    for pod in pods:
        taking[pod.tenant] = taking.get(pod.tenant, 0) + len(pod.gpus)
    return all(amount <= budget.get(name, 0) for name, amount in taking.items())


def _prune(
    state: NodeGPUs,
    pods: Sequence[RunningPod],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    needs: Room = Room(),
) -> list[RunningPod]:
    """Drop victims the fit does not need, the most expensive first (``pods`` cheapest first)."""
    kept = list(pods)
    for pod in reversed(pods):
        trial = [other for other in kept if other.uid != pod.uid]
        freed = {gpu for other in trial for gpu in other.gpus}
        if _has_room(state, trial, needs) and isinstance(
            _fit(state, freed, count, mode, rule), placement.Choice
        ):
            kept = trial
    return kept


def _fit(
    state: NodeGPUs,
    freed: Iterable[int],
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> placement.Choice | placement.NoFit:
    free = (state.free | frozenset(freed)) & _known(state.topology)
    return placement.choose(state.topology, free=free, count=count, mode=mode, rule=rule)


@functools.lru_cache(maxsize=1024)
def _known(node: topology.NodeTopology) -> frozenset[int]:
    """The node's GPU indices (topologies hash once, so this costs a lookup per fit)."""
    return frozenset(node.indices)


def _has_room(state: NodeGPUs, victims: Iterable[RunningPod], needs: Room) -> bool:
    """Whether the node has the CPU and memory the preemptor needs once ``victims`` are gone."""
    return state.spare is None or state.spare.plus(victims).holds(needs)


def _old_enough(pod: RunningPod, policies: Mapping[str, Policy], now: float) -> bool:
    return pod.runtime(now) >= policies.get(pod.tenant, Policy()).min_runtime_seconds


def _cost(pod: RunningPod, now: float) -> tuple[int, float, float, str]:
    """Cheapest victim first: lowest priority, least lost work, youngest, then uid."""
    return (pod.priority, pod.lost_work(now), -pod.started_at, pod.uid)


def _subset_cost(pods: Sequence[RunningPod], now: float) -> tuple[object, ...]:
    """Cheaper victim sets first: lowest top priority, least lost work, fewest pods and GPUs."""
    return (
        max(pod.priority for pod in pods),
        sum(pod.lost_work(now) for pod in pods),
        len(pods),
        sum(len(pod.gpus) for pod in pods),
    )


def _rank(found: Victims, now: float, keeps: bool) -> tuple[object, ...]:
    """Best node first: the lowest top priority among the victims, then a set that costs
    waiting larger pods no island (``keeps``), then the preemptor's best link level (one NVLink
    island before a PCIe switch before the machine: a wide pod's reclaim frees a whole island
    rather than a cheaper spread), then the cheapest victims, then the best placement score,
    then the node name."""
    priority, *cost = _subset_cost(found.pods, now)
    return (priority, not keeps, found.choice.level, *cost, -found.choice.score, found.node)


def _keeps(found: Victims, state: NodeGPUs, larger: Mapping[int, int]) -> bool:
    """Whether the preemptor's set, once the victims are gone, costs waiting larger pods no
    island room (:func:`gpufair.core.placement.keeping_cost`)."""
    if not larger:
        return True
    free = (state.free | {gpu for pod in found.pods for gpu in pod.gpus}) & _known(state.topology)
    chosen = frozenset(found.choice.gpus)
    return placement.keeping_cost(state.topology, free, chosen, larger) == (0, 0)


_ANY = (float("inf"), float("inf"), float("inf"))


def _bound(
    best: Victims,
    state: NodeGPUs,
    count: int,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    now: float,
    larger: Mapping[int, int],
) -> tuple[object, ...]:
    """The dearest victim set on this node that could still rank above ``best``
    (:func:`_rank`): any cost at the same top priority when the node could give a better link
    level (or waiting larger pods make island costs count), only a lower top priority when it
    could only give a worse one."""
    cost = _subset_cost(best.pods, now)
    priority = cost[0]
    assert isinstance(priority, int)
    if larger:
        return (priority, *_ANY)
    fit = _fit(state, state.topology.indices, count, mode, rule)
    level = fit.level if isinstance(fit, placement.Choice) else placement.LinkLevel.SYS
    if level < best.choice.level:
        return (priority, *_ANY)
    if level > best.choice.level:
        return (priority - 1, *_ANY)
    return cost
