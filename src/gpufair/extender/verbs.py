"""What the extender answers for each verb, computed on one cache snapshot.

The routes decode the wire, call these functions and encode the result; these functions only
ask core (``placement.choose_keeping`` with the pool's waiting demand by size from the
snapshot, ``admission.check_limit``, ``fairshare.compute``,
``preemption.allowed_victims``) about the nodes and tenants in the snapshot, and never write
anything. They are cheap by construction: nodes with the same *shape* (pool, topology, free
GPUs; interned by the cache) get one verdict per request, and ``choose`` results are memoised
across requests in a :class:`Placer`, so a filter over 5,000 nodes makes a few hundred
decisions, not 5,000.

Reasons are short and identical for the same cause on every node, because kube-scheduler
groups them by text in the pod's ``FailedScheduling`` event (cut at 1,024 characters).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import operator
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from gpufair.api import extender_wire as wire
from gpufair.api import names
from gpufair.core import admission, allocation, fairshare, placement, preemption
from gpufair.k8s import pods
from gpufair.state import cache, groups, rules, views

NOT_SYNCED = cache.NOT_SYNCED
UNKNOWN_NODE = "node not (yet) in gpufair's cache"
NO_POOL = "node is in no GPUPool"
NOT_SCHEDULABLE = "node is cordoned or not ready"


class CannotJudgeError(Exception):
    """The pod cannot be judged at all; the message goes into the answer's ``Error``."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodAsk:
    """What a verb needs to know about the pod being scheduled."""

    uid: str
    namespace: str
    name: str
    requests: Mapping[str, int]
    shares: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    """Per resource several containers request: their amounts (``k8s.pods.request_shares``)."""
    planned_node: str | None = None
    """The node the pod's group plan names (``gpufair.dev/group-plan``), ``None``: no plan."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


_last_read: list[tuple[pods.PodDict, PodAsk]] = []
"""The last pod read and what it asks: filter and prioritize get the same pod, one after the
other, and comparing it is cheaper than reading its quantities again."""


def read_pod(pod: pods.PodDict) -> PodAsk:
    """The pod's GPU facts; raises :class:`CannotJudgeError` when they are unreadable."""
    last = _last_read[-1] if _last_read else None
    if last is not None and (last[0] is pod or last[0] == pod):
        return last[1]
    ask = _read_pod(pod)
    _last_read[:] = [(pod, ask)]
    return ask


def _read_pod(pod: pods.PodDict) -> PodAsk:
    try:
        requests = pods.extended_requests(pod)
        shares = pods.request_shares(pod, requests)
    except pods.PodError as exc:
        raise CannotJudgeError(f"cannot judge pod: {exc}") from None
    return PodAsk(
        uid=pods.uid(pod),
        namespace=pods.namespace(pod),
        name=pods.name(pod),
        requests=requests,
        shares=shares,
        planned_node=groups.planned_node(pods.annotations_of(pod)),
    )


def gpu_resources(snapshot: cache.Snapshot) -> frozenset[str]:
    """The resources gpufair manages: every pool's ``resourceName`` and the default."""
    return frozenset({names.DEFAULT_GPU_RESOURCE, *(p.resource for p in snapshot.pools.values())})


def wants_gpus(ask: PodAsk, snapshot: cache.Snapshot) -> bool:
    """Whether gpufair has anything to say about the pod (otherwise it passes untouched)."""
    return any(resource in ask.requests for resource in gpu_resources(snapshot))


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One node's answer for one pod."""

    choice: placement.Choice | None = None
    reason: str = ""
    unresolvable: bool = False
    """Preempting pods on the node would not help (limits, budgets, pool membership)."""
    soon: bool = False
    """The node will take the pod shortly (a bind of the same size there awaits confirmation)."""
    score: int = 0
    """Prioritize's 0..10 score: the choice's (``placement.Choice.score``), 0 when no fit."""

    @property
    def fits(self) -> bool:
        return self.choice is not None


_DEMAND_CAP = 32
"""Waiting pods of one size counted at most, for the verdict tables' key: no node holds more
than 32 pods of 2 GPUs or more in its islands (64-GPU nodes), so more waiting pods of a size
cannot change a verdict (``placement.relevant_demand`` caps per topology), and a cluster with
hundreds of waiting pods keeps its tables while they are bound one by one."""

_MAX_TABLES = 4096
"""Verdict tables kept at most (one per distinct request, pool settings and larger demand)."""

_UNKNOWN = Verdict(reason=UNKNOWN_NODE)
_NO_POOL = Verdict(reason=NO_POOL, unresolvable=True)
_NOT_SCHEDULABLE = Verdict(reason=NOT_SCHEDULABLE, unresolvable=True)


class Placer:
    """``placement.choose_keeping`` memoised per (node shape, count, mode, rule, the part of the
    pool's waiting demand that can change the answer: ``placement.relevant_demand``).

    One per cache (shape and topology ids are the cache's interned ids); safe to share between
    threads. A node with ``hidden`` GPUs (in use, indices unknown) must have that many more
    free than the pod asks.
    """

    def __init__(self, *, max_entries: int = 200_000) -> None:
        self._memo: dict[tuple[object, ...], placement.Choice | placement.NoFit] = {}
        self._max = max_entries
        self._lock = threading.Lock()
        self._last_judge: Judge | None = None
        self._tables: dict[tuple[object, ...], dict[int, Verdict]] = {}

    def choose(
        self,
        node: views.NodeView,
        *,
        count: int,
        pool: views.PoolView,
        demand: Mapping[int, int] | None = None,
    ) -> placement.Choice | placement.NoFit:
        waiting = placement.relevant_demand(node.topology, count, demand) if demand else ()
        key: tuple[object, ...] = (
            (node.shape_id, count, pool.mode, pool.rule, waiting)
            if node.shape_id >= 0
            else (node.topology_id, node.free, node.hidden, count, pool.mode, pool.rule, waiting)
        )
        found = self._memo.get(key)
        if found is not None:
            return found
        available = len(node.free) - node.hidden
        if count > available and count <= len(node.topology.gpus):
            found = placement.NoFit(reason=f"{max(available, 0)} free GPUs, {count} requested")
        else:
            found = placement.choose_keeping(
                node.topology,
                free=node.free,
                count=count,
                demand=dict(waiting),
                mode=pool.mode,
                rule=pool.rule,
            )
        with self._lock:
            if len(self._memo) >= self._max or len(self._tables) >= _MAX_TABLES:
                self._memo.clear()
                self._tables.clear()
            self._memo[key] = found
        return found

    def table(self, key: tuple[object, ...]) -> dict[int, Verdict]:
        """Shape id -> verdict for pods asking the same, while every pool is open to them.

        Such a verdict depends only on the node shape (pool, topology, free GPUs, hidden,
        problems, schedulability: shape ids are never reused), the pod's requests, the pools'
        settings and their waiting demand for larger pods, which ``key`` names; so it holds
        across requests and snapshots.
        """
        with self._lock:
            found = self._tables.get(key)
            if found is None:
                found = self._tables[key] = {}
            return found

    def release(self, uid: str) -> None:
        """The pod's scheduling cycle is over (it is being bound): forget the judge kept for
        its prioritize, so that its snapshot does not outlive the cycle (while a snapshot
        lives, the cache copies its node maps before changing them)."""
        last = self._last_judge
        if last is not None and last.ask.uid == uid:
            self._last_judge = None

    def judge(self, snapshot: cache.Snapshot, ask: PodAsk) -> Judge:
        """A :class:`Judge` for the pod on this snapshot: the last one when both are the same.

        kube-scheduler calls prioritize right after filter for the same pod, usually with no
        event in between (the same snapshot object), so prioritize reuses filter's verdicts
        instead of judging every node shape again.
        """
        last = self._last_judge
        if last is not None and last.snapshot is snapshot and last.ask == ask:
            return last
        judge = self._last_judge = Judge(snapshot, ask, self)
        return judge


class Judge:
    """Verdicts for one pod on one snapshot, memoised per pool and per node shape."""

    def __init__(self, snapshot: cache.Snapshot, ask: PodAsk, placer: Placer) -> None:
        self.snapshot = snapshot
        self.ask = ask
        self.tenant = snapshot.tenant_of(ask.namespace)
        self.placer = placer
        self._pools: dict[str, Verdict | None] = {}
        self._shapes: dict[int, Verdict] = {}
        self.grouped: list[tuple[Sequence[str], Sequence[int], dict[int, Verdict]]] = []
        """Names lists seen for this pod (filter's candidates, then those it passed), each with
        its shape ids and their verdicts: prioritize usually gets exactly the nodes filter
        passed, and then looks none of them up again."""

    def count(self, pool: views.PoolView) -> int:
        return self.ask.requests.get(pool.resource, 0)

    def larger(self, pool: views.PoolView) -> tuple[tuple[int, int], ...]:
        """The pool's waiting pods larger than this pod, by size: all of the demand that can
        change where this pod goes (``placement.choose_keeping`` ignores the rest)."""
        count = self.count(pool)
        return tuple(
            sorted(
                (size, min(n, _DEMAND_CAP))
                for size, n in self.snapshot.demand(pool.name).items()
                if size > count
            )
        )

    def pool_verdict(self, pool_name: str) -> Verdict | None:
        """Why no node of the pool can take the pod, or ``None`` when the pool is open to it."""
        if pool_name in self._pools:
            return self._pools[pool_name]
        verdict = self._pool_verdict(pool_name)
        self._pools[pool_name] = verdict
        return verdict

    def _pool_verdict(self, pool_name: str) -> Verdict | None:
        pool = self.snapshot.pools[pool_name]
        count = self.count(pool)
        if count == 0:
            return Verdict(
                reason=f"pool {pool_name} offers {pool.resource}, not requested by the pod",
                unresolvable=True,
            )
        if self.tenant is None:
            return Verdict(
                reason=f"namespace {self.ask.namespace} belongs to no TenantQuota",
                unresolvable=True,
            )
        tenant = self.snapshot.tenants[self.tenant]
        if pool_name not in tenant.pools:
            return Verdict(
                reason=f"tenant {self.tenant} has no quota in pool {pool_name}", unresolvable=True
            )
        if tenant.budget_exhausted:
            return Verdict(
                reason=f"tenant {self.tenant} GPU-hour budget exhausted", unresolvable=True
            )
        allocated = self.snapshot.used(self.tenant, pool_name)
        own = self.snapshot.assumed.get(self.ask.uid)
        own_node = self.snapshot.nodes.get(own.node) if own is not None else None
        if own is not None and own_node is not None and own_node.pool == pool_name:
            allocated -= len(own.gpus)  # a retried bind does not count against itself
        message = admission.check_limit(
            tenant=self.tenant,
            pool=pool_name,
            allocated=allocated,
            requested=count,
            limit=tenant.pools[pool_name].limit,
        )
        if message is not None:
            return Verdict(reason=message, unresolvable=True)
        return None

    def verdicts(self, shape_ids: Iterable[int]) -> dict[int, Verdict]:
        """The verdict of each shape (``cache.UNKNOWN_SHAPE``: a node the cache does not know).

        When every pool is open to the pod (the usual case), verdicts come from the placer's
        table for pods asking the same, in one C-level pass; only shapes never judged before
        for such a pod are judged here.
        """
        snapshot = self.snapshot
        pools = snapshot.pools
        if any(self.pool_verdict(name) is not None for name in pools):
            return {
                shape_id: _UNKNOWN
                if shape_id == cache.UNKNOWN_SHAPE
                else self.verdict_for(snapshot.shapes[shape_id])
                for shape_id in shape_ids
            }
        key = (
            tuple(sorted(self.ask.requests.items())),
            tuple((p.name, p.resource, p.mode, p.rule, self.larger(p)) for p in pools.values()),
        )
        table = self.placer.table(key)
        wanted = shape_ids if isinstance(shape_ids, set) else set(shape_ids)
        for shape_id in wanted - table.keys():
            table[shape_id] = (
                _UNKNOWN
                if shape_id == cache.UNKNOWN_SHAPE
                else self._judge(snapshot.shapes[shape_id])
            )
        return {shape_id: table[shape_id] for shape_id in wanted}

    def verdict_for(self, node: views.NodeView) -> Verdict:
        """The verdict for this view of a node (bind passes the node's newest view)."""
        if node.shape_id < 0:  # a view the cache did not intern (tests, what-if)
            return self._judge(node)
        verdict = self._shapes.get(node.shape_id)
        if verdict is None:
            verdict = self._shapes[node.shape_id] = self._judge(node)
        return verdict

    def _judge(self, node: views.NodeView) -> Verdict:
        if node.problem is not None:
            return Verdict(reason=node.problem, unresolvable=True)
        if node.pool is None or node.pool not in self.snapshot.pools:
            return _NO_POOL
        if not node.schedulable:
            return _NOT_SCHEDULABLE
        closed = self.pool_verdict(node.pool)
        if closed is not None:
            return closed
        pool = self.snapshot.pools[node.pool]
        count = self.count(pool)
        shares = self.ask.shares.get(pool.resource, ())
        if allocation.blocks_bind(unconfirmed_sizes=node.waiting, size=count, shares=shares):
            return Verdict(reason=waiting_reason(count, shares), soon=True)
        found = self.placer.choose(
            node, count=count, pool=pool, demand=self.snapshot.demand(pool.name)
        )
        if isinstance(found, placement.NoFit):
            return Verdict(reason=found.reason)
        return Verdict(choice=found, score=found.score)


def waiting_reason(count: int, shares: Sequence[int] = ()) -> str:
    """Why filter refuses a node while a request of the same size waits there unconfirmed."""
    if len(shares) > 1:
        sizes = ", ".join(str(size) for size in sorted(allocation.request_sizes(count, shares)))
        what = (
            "a pod bound here with a request the size of one of this pod's per-container "
            f"requests ({sizes} GPUs)"
        )
    else:
        what = f"a {count}-GPU pod bound here"
    return (
        f"{what} is not yet confirmed by the node agent "
        "(one unconfirmed request per size and node; retried once kubelet has allocated it)"
    )


_Key = TypeVar("_Key")
_Value = TypeVar("_Value")

_CHOICE = operator.attrgetter("choice")
_SCORE = operator.attrgetter("score")
_REASON = operator.attrgetter("reason")
_UNRESOLVABLE = operator.attrgetter("unresolvable")


@dataclasses.dataclass(frozen=True)
class FilterOutcome:
    passed: list[str]
    failed: dict[str, str]
    unresolvable: dict[str, str]
    plan: groups.PlanStep = groups.PlanStep.NONE
    """What became of the pod's group plan (:func:`gpufair.state.groups.plan_step`)."""
    plan_note: str = ""
    """Why the plan was dropped (``FALL_BACK``), for the log."""


def _group(judge: Judge, candidates: Sequence[str]) -> tuple[Sequence[int], dict[int, Verdict]]:
    """Each candidate's shape id, and one verdict per distinct shape.

    The per-node work is a few C-level passes over the list (``itemgetter``, ``map``,
    ``compress``); Python-level decisions happen once per distinct shape, of which a large
    cluster has a few hundred. This keeps a 5,000-node filter around a millisecond.
    """
    snapshot = judge.snapshot
    if not candidates:
        return (), {}
    for seen, ids, verdicts in judge.grouped:
        # The decoders hand out the very list (or its strings) seen before, so this compares
        # by identity, without hashing.
        if seen is candidates or seen == candidates:
            return ids, verdicts
    ids = _pick(candidates, snapshot.shape_of)
    verdicts = judge.verdicts(set(ids))
    _remember(judge, candidates, ids, verdicts)
    return ids, verdicts


def _remember(
    judge: Judge, names: Sequence[str], ids: Sequence[int], verdicts: dict[int, Verdict]
) -> None:
    del judge.grouped[:-1]
    judge.grouped.append((names, ids, verdicts))


def plan_step(judge: Judge, candidates: Sequence[str]) -> tuple[groups.PlanStep, str]:
    """What becomes of the pod's group plan among ``candidates`` (the rule is
    :func:`gpufair.state.groups.plan_step`), and, when it is dropped, why."""
    planned = judge.ask.planned_node
    if planned is None:
        return groups.PlanStep.NONE, ""
    node = judge.snapshot.nodes.get(planned)
    offered = node is not None and planned in candidates
    verdict = judge.verdict_for(node) if node is not None and offered else None
    step = groups.plan_step(
        planned,
        offered=offered,
        fits=verdict is not None and verdict.fits,
        soon=verdict is not None and verdict.soon,
    )
    if step is not groups.PlanStep.FALL_BACK:
        return step, ""
    why = verdict.reason if verdict is not None else ""
    return step, groups.plan_dropped(planned, offered=offered, why=why)


def filter_nodes(judge: Judge, candidates: Sequence[str]) -> FilterOutcome:
    """Split the candidates into those that can take the pod and why each other cannot.

    A group member whose plan's node can take it gets only that node (the others are refused
    as unresolvable: preemption there would not help); while a bind of its size awaits
    confirmation there, no node; when the planned node is gone or full, every node that fits,
    with the reason in ``plan_note``.
    """
    outcome = _filter_nodes(judge, candidates)
    step, note = plan_step(judge, candidates)
    planned = judge.ask.planned_node
    if planned is None or step is groups.PlanStep.FALL_BACK:
        return dataclasses.replace(outcome, plan=step, plan_note=note)
    refused = [name for name in outcome.passed if name != planned]
    return FilterOutcome(
        passed=[planned] if step is groups.PlanStep.FOLLOW else [],
        failed=outcome.failed,
        unresolvable={**outcome.unresolvable, **dict.fromkeys(refused, groups.off_plan(planned))},
        plan=step,
    )


def _filter_nodes(judge: Judge, candidates: Sequence[str]) -> FilterOutcome:
    ids, verdicts = _group(judge, candidates)
    # Verdict.fits in one C-level pass: a Choice is always true, a missing one is None.
    fits = set(itertools.compress(verdicts, map(_CHOICE, verdicts.values())))
    if len(fits) == len(verdicts):
        # The very list when it is one: the codec then writes its JSON back as it came.
        passed = candidates if isinstance(candidates, list) else list(candidates)
        return FilterOutcome(passed=passed, failed={}, unresolvable={})
    fit_of = dict.fromkeys(verdicts, False)
    fit_of.update(dict.fromkeys(fits, True))
    mask = _pick(ids, fit_of)
    passed = list(itertools.compress(candidates, mask))
    if passed:
        _remember(
            judge,
            passed,
            list(itertools.compress(ids, mask)),
            dict(zip(fits, map(verdicts.__getitem__, fits), strict=True)),
        )
    # Per failing shape (hundreds) and per failing name (thousands), C-level passes only.
    failing = list(itertools.filterfalse(fits.__contains__, verdicts))
    judged = list(map(verdicts.__getitem__, failing))
    reason_of = dict(zip(failing, map(_REASON, judged), strict=True))
    hard = set(itertools.compress(failing, map(_UNRESOLVABLE, judged)))
    missing = _pick(ids, dict(zip(fit_of, map(operator.not_, fit_of.values()), strict=True)))
    names = list(itertools.compress(candidates, missing))
    if not hard:
        return FilterOutcome(
            passed=passed, failed=_reasons(names, ids, missing, reason_of, failing), unresolvable={}
        )
    if len(hard) == len(failing):
        return FilterOutcome(
            passed=passed, failed={}, unresolvable=_reasons(names, ids, missing, reason_of, failing)
        )
    failing_ids = list(itertools.compress(ids, missing))
    in_hard = list(map(hard.__contains__, failing_ids))
    soft = list(map(operator.not_, in_hard))
    return FilterOutcome(
        passed=passed,
        failed=_reasons(
            list(itertools.compress(names, soft)), failing_ids, soft, reason_of, set(failing) - hard
        ),
        unresolvable=_reasons(
            list(itertools.compress(names, in_hard)), failing_ids, in_hard, reason_of, hard
        ),
    )


def _reasons(
    names: list[str],
    ids: Sequence[int],
    mask: Sequence[bool],
    reason_of: Mapping[int, str],
    shapes: Iterable[int],
) -> dict[str, str]:
    """``names`` (those of the candidates whose shapes are ``ids`` that ``mask`` selects; their
    shapes are among ``shapes``) -> the reason of their shape, in C-level passes."""
    if not names:
        return {}
    distinct = set(map(reason_of.__getitem__, shapes))
    if len(distinct) == 1:  # usual: every failing node is full, say; no per-name lookup
        (reason,) = distinct
        return dict.fromkeys(names, reason)
    return dict(zip(names, _pick(list(itertools.compress(ids, mask)), reason_of), strict=True))


def _pick(keys: Sequence[_Key], values: Mapping[_Key, _Value]) -> Sequence[_Value]:
    """``values[key]`` for each of ``keys``, in one C-level pass: ``itemgetter`` builds a tuple
    of the exact size, about half the time of a list from ``map(values.__getitem__, keys)``."""
    if len(keys) == 1:
        return (values[keys[0]],)
    return operator.itemgetter(*keys)(values) if keys else ()


def prioritize(judge: Judge, candidates: Sequence[str]) -> wire.Scores:
    """Each candidate's 0..10 score: the quality of its best GPU set and how little that set
    fragments free NVLink islands (``placement.Choice.score``); 0 where the pod cannot fit.
    Scored per node shape, each candidate keyed by its shape, so the answer is written without
    a Python step per node. A group member following its plan scores 10 on the planned node
    and 0 elsewhere."""
    planned = judge.ask.planned_node
    if planned is not None and plan_step(judge, candidates)[0] is groups.PlanStep.FOLLOW:
        others = [name for name in candidates if name != planned]
        return wire.Scores.grouped(
            {placement.MAX_SCORE: [planned], **({0: others} if others else {})}
        )
    ids, verdicts = _group(judge, candidates)
    return wire.Scores(
        hosts=candidates,
        keys=ids,
        score_of=dict(zip(verdicts, map(_SCORE, verdicts.values()), strict=True)),
    )


def numa_of(node: views.NodeView, gpus: Iterable[int]) -> int | None:
    """The NUMA node shared by all ``gpus``, or ``None`` when mixed or unknown."""
    numa = {node.topology.gpu(index).numa for index in gpus}
    if len(numa) == 1:
        (only,) = numa
        return only
    return None


# -- preempt ---------------------------------------------------------------------------------


def _seconds(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class PreemptOutcome:
    kept: dict[str, list[str]]
    """Node -> victim UIDs kept (a subset of the proposal); nodes left out are dropped."""
    removed: dict[str, str]
    """Victim UID -> why the fair-share policy protects it (for logs and metrics)."""


def pool_capacity(snapshot: cache.Snapshot, pool: str) -> int:
    return sum(
        snapshot.nodes[name].allocatable
        for name in snapshot.pool_nodes.get(pool, ())
        if snapshot.nodes[name].schedulable
    )


def pool_shares(
    snapshot: cache.Snapshot, pool: str, *, asking: admission.WaitingPod | None = None
) -> fairshare.PoolShares:
    """Fair shares in ``pool`` as the operator computes them: each tenant's claim
    (:func:`gpufair.state.rules.tenant_claim`) holds its bound, assumed and pending pods, plus
    its gated pods unless its hard budget is used up; ``asking`` (the pod being placed) counts
    for its tenant if the cache does not list it yet. Pods being deleted hold GPUs but claim
    no share (they are leaving)."""
    resource = snapshot.pools[pool].resource
    leaving = _leaving(snapshot, pool, resource)
    claims = []
    for tenant in snapshot.tenants.values():
        entry = tenant.pools.get(pool)
        if entry is None:
            continue
        unbound = snapshot.unbound.get((tenant.name, pool), ())
        staying = [pod for pod in unbound if not pod.deleting]
        pending = sum(pod.request(resource) for pod in staying if not pod.gated)
        gated = sum(pod.request(resource) for pod in staying if pod.gated)
        if (
            asking is not None
            and asking.tenant == tenant.name
            and all(pod.uid != asking.uid for pod in unbound)
        ):
            pending += asking.gpus
        claims.append(
            rules.tenant_claim(
                tenant=tenant.name,
                weight=tenant.weight,
                guaranteed=entry.guaranteed,
                limit=entry.limit,
                lendable=entry.lendable,
                held=snapshot.used(tenant.name, pool) - leaving.get(tenant.name, 0) + pending,
                waiting=0 if tenant.budget_exhausted else gated,
            )
        )
    return fairshare.compute(pool_capacity(snapshot, pool), claims)


def _leaving(snapshot: cache.Snapshot, pool: str, resource: str) -> dict[str, int]:
    """GPUs each tenant holds in ``pool`` through pods whose deletion was requested."""
    leaving: dict[str, int] = {}
    for name in snapshot.pool_nodes.get(pool, ()):
        for pod in snapshot.nodes[name].pods:
            tenant = snapshot.tenant_of(pod.namespace) if pod.deleting else None
            if tenant is not None:
                leaving[tenant] = leaving.get(tenant, 0) + pod.request(resource)
    return leaving


def preempt(judge: Judge, proposals: Mapping[str, Sequence[str]], *, now: float) -> PreemptOutcome:
    """Narrow kube-scheduler's proposed victims to those the fair-share policy allows
    (``preemption.allowed_victims``: victim tenants keep ``max(fair share, guarantee)``, young
    pods are protected, the preemptor's tenant stays within its share, and the kept victims must
    make the pod fit on the node, topology included). A node whose allowed victims do not make
    room is dropped. Victims that are not GPU pods are kube-scheduler's business and are kept.
    """
    snapshot = judge.snapshot
    me = judge.tenant
    kept: dict[str, list[str]] = {}
    removed: dict[str, str] = {}
    shares: dict[str, fairshare.PoolShares] = {}
    policies = {
        name: preemption.Policy(reclaim=t.reclaim, min_runtime_seconds=t.min_runtime_seconds)
        for name, t in snapshot.tenants.items()
    }
    for node_name, uids in proposals.items():
        node = snapshot.nodes.get(node_name)
        if node is None or me is None or node.problem is not None:
            continue
        if node.pool is None or node.pool not in snapshot.pools:
            continue
        if judge.pool_verdict(node.pool) is not None:
            continue
        pool = snapshot.pools[node.pool]
        count = judge.count(pool)
        asking = admission.WaitingPod(
            uid=judge.ask.uid, tenant=me, pool=pool.name, gpus=count, name=judge.ask.ref
        )
        if node.pool not in shares:
            shares[node.pool] = pool_shares(snapshot, node.pool, asking=asking)
        running: list[preemption.RunningPod] = []
        others: set[str] = set()
        on_node = {pod.uid: pod for pod in node.pods}
        for uid in uids:
            victim = on_node.get(uid)
            if victim is None or victim.request(pool.resource) == 0:
                others.add(uid)
                continue
            running.append(
                preemption.RunningPod(
                    uid=uid,
                    tenant=snapshot.tenant_of(victim.namespace) or "",
                    pool=pool.name,
                    node=node_name,
                    gpus=tuple(sorted(victim.gpus or ())),
                    priority=victim.priority,
                    started_at=_seconds(victim.started) or _seconds(victim.created) or 0.0,
                    checkpoint_at=_seconds(victim.checkpoint),
                    name=victim.ref,
                )
            )
        allowed = preemption.allowed_victims(
            preemptor=asking,
            victims=running,
            shares=shares[node.pool],
            allocated={
                tenant: snapshot.used(tenant, pool.name)
                for tenant, entry in snapshot.tenants.items()
                if pool.name in entry.pools
            },
            policies=policies,
            now=now,
            node=preemption.NodeGPUs(topology=node.topology, free=node.free),
            mode=pool.mode,
            rule=pool.rule,
        )
        if allowed is None:
            for pod in running:
                removed[pod.uid] = "the fair-share policy allows no victim set that makes room"
            continue
        allowed_uids = {pod.uid for pod in allowed} | others
        for pod in running:
            if pod.uid not in allowed_uids:
                removed[pod.uid] = "protected by the fair-share policy or not needed"
        kept[node_name] = [uid for uid in uids if uid in allowed_uids]
    return PreemptOutcome(kept=kept, removed=removed)
