"""What the scheduling pass keeps from one pass to the next, so a pass costs what changed.

The operator's store (:mod:`gpufair.operator.store`) replaces a model object only when a watch
event changes it: every other node, pod and namespace is the very same Python object from one
snapshot to the next. :func:`gpufair.state.scheduling.schedule` therefore keeps its per-node,
per-pod and per-(tenant, pool) answers here together with the objects they were computed from,
and reuses an answer only while those inputs are the same objects (``is``) or equal. A pass
with a fresh :class:`PassCache` computes everything, so a caller that builds a whole new
Snapshot each time (the simulator, the tests) gets the same :class:`Decisions` as one that
keeps a cache; at 5,000 nodes a pass that reuses them costs a fraction (issue 16,
docs/operator.md).

A cache belongs to one caller and one stream of snapshots; it holds no lock (passes never
overlap in the reconciler).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gpufair.core import admission, fairshare, preemption, usage
from gpufair.core import topology as topo
from gpufair.state import changes, metering, model, occupancy, rules

Pair = tuple[str, str]
"""(tenant, pool)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PairCounts:
    """What shares, admission and statuses count of one (tenant, pool)'s pods."""

    held: int = 0
    """GPUs of bound and admitted-but-unbound pods (terminating pods are leaving)."""
    holding: int = 0
    """GPUs of pods on a node that hold them (bound or terminating)."""
    gated: int = 0
    gated_gpus: int = 0
    pending: int = 0
    pending_gpus: int = 0
    active: tuple[model.GpuPod, ...] = ()
    """The pods admission looks at (gated, admitted-but-unbound, or members of a group), in
    the pair's order."""
    unstarted: bool = False
    """Whether a bound pod has no start time (reclaim then takes ``now`` as its start)."""
    waiting_sizes: tuple[int, ...] = ()
    """The GPU counts of the gated and the admitted-but-unbound pods, in the pair's order
    (the pool's waiting demand by size: ``scheduling._waiting_demand``)."""


NO_PODS = PairCounts()


def count(pods: Sequence[model.GpuPod]) -> PairCounts:
    """The counts of one pair's pods."""
    held = holding = gated = gated_gpus = pending = pending_gpus = 0
    active: list[model.GpuPod] = []
    waiting: list[int] = []
    unstarted = False
    for pod in pods:
        state = pod.state
        if (
            state is model.PodState.GATED
            or state is model.PodState.PENDING
            or pod.group is not None
        ):
            active.append(pod)
        if state is model.PodState.BOUND:
            held += pod.gpus
            unstarted = unstarted or pod.started_at is None
            if pod.node is not None:
                holding += pod.gpus
        elif state is model.PodState.PENDING:
            held += pod.gpus
            pending += 1
            pending_gpus += pod.gpus
            waiting.append(pod.gpus)
        elif state is model.PodState.GATED:
            gated += 1
            gated_gpus += pod.gpus
            waiting.append(pod.gpus)
        elif state is model.PodState.TERMINATING and pod.node is not None:
            holding += pod.gpus
    return PairCounts(
        held=held,
        holding=holding,
        gated=gated,
        gated_gpus=gated_gpus,
        pending=pending,
        pending_gpus=pending_gpus,
        active=tuple(active),
        unstarted=unstarted,
        waiting_sizes=tuple(waiting),
    )


same_items = changes.same_items


def same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two mappings map the same keys to the very same objects."""
    return len(a) == len(b) and all(b.get(key) is value for key, value in a.items())


class PassCache:
    """Answers of earlier passes, each with the inputs it was computed from (module
    docstring). Pass the same instance to every :func:`~gpufair.state.scheduling.schedule`
    call of one stream of snapshots."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything (the next pass computes afresh)."""
        self.occupancy = occupancy.Memo()
        self.owners_key: tuple[Any, ...] | None = None
        self.owners_namespaces: Mapping[str, model.Namespace] = {}
        self.owners: tuple[dict[str, str], dict[str, tuple[str, ...]]] | None = None
        self.place_key: tuple[Any, ...] | None = None
        self.node_index = changes.MappingIndex()
        self.pod_index = changes.PodIndex()
        self._observed: model.Snapshot | None = None
        self._changes: tuple[changes.PodChanges | None, changes.Changes | None] = (None, None)
        self.pod_pairs: dict[str, Pair | None] = {}
        """The pair of every pod of the previous pass (``None``: no tenant's)."""
        self.unbound: set[str] = set()
        """Pods not on a node (their pool depends on node labels)."""
        self.placed: dict[Pair, tuple[model.GpuPod, ...]] = {}
        self.placed_valid = False
        self.fits: rules.PoolFit | None = None
        """Answers of which pools have a node a selector allows (while no node moved)."""
        self._counts: dict[Pair, tuple[tuple[model.GpuPod, ...], PairCounts]] = {}
        self._spans: dict[Pair, _Spans] = {}
        self._usages: dict[Pair, tuple[tuple[Any, ...], tuple[model.GpuPod, ...], usage.Usage]] = {}
        self._waiting: dict[str, tuple[model.GpuPod, Pair, admission.WaitingPod]] = {}
        self._running: dict[
            Pair,
            tuple[tuple[Any, ...], tuple[model.GpuPod, ...], list[preemption.RunningPod]],
        ] = {}
        self.placements: dict[
            tuple[Any, Any],
            dict[tuple[tuple[topo.NodeTopology, frozenset[int]], int, tuple[Any, ...]], Any],
        ] = {}
        """placement.choose_keeping's answers per (mode, rule), (topology, free set), size and
        the waiting demand that can change them (``placement.relevant_demand``)."""
        self.shares: dict[str, tuple[tuple[Any, ...], fairshare.PoolShares]] = {}
        """Per pool, the fair shares of the previous pass and the capacity and claims they
        were computed from (``scheduling._shares``)."""
        self.replays: dict[str, Any] = {}
        """Per pool, admission's placements of the previous pass (``scheduling._PoolFree``)."""
        self.free_groups: dict[
            str,
            tuple[
                Mapping[str, frozenset[int]],
                dict[tuple[topo.NodeTopology, frozenset[int]], list[str]],
            ],
        ] = {}

    def observe(
        self, snap: model.Snapshot
    ) -> tuple[changes.PodChanges | None, changes.Changes | None]:
        """What changed in the snapshot's pods and nodes since the previous snapshot this
        cache saw (``None``: compare nothing, compute afresh); asked once per snapshot."""
        if self._observed is not snap:
            self._observed = snap
            self._changes = (self.pod_index.update(snap.pods), self.node_index.update(snap.nodes))
        return self._changes

    def waiting_pod(
        self,
        pod: model.GpuPod,
        pair: Pair,
        make: Callable[[], admission.WaitingPod],
    ) -> admission.WaitingPod:
        """The pod as core admission sees it (``make``), kept while the pod object and its
        pair are the same."""
        known = self._waiting.get(pod.uid)
        if known is None or known[0] is not pod or known[1] != pair:
            known = (pod, pair, make())
            self._waiting[pod.uid] = known
        return known[2]

    def forget_waiting(self, live: Mapping[str, object]) -> None:
        """Drop the admission views of pods no longer waiting (``live``: uids still in use)."""
        if len(self._waiting) > 2 * len(live) + 64:
            self._waiting = {uid: v for uid, v in self._waiting.items() if uid in live}

    def running(
        self,
        pair: Pair,
        pods: tuple[model.GpuPod, ...],
        key: tuple[Any, ...],
        make: Callable[[], list[preemption.RunningPod]],
    ) -> list[preemption.RunningPod]:
        """The pair's bound pods as preemption sees them (``make``), kept while the pods and
        ``key`` (what else they are made from) are the same."""
        known = self._running.get(pair)
        if known is None or known[1] is not pods or known[0] != key:
            known = (key, pods, make())
            self._running[pair] = known
        return known[2]

    def counts(self, placed: Mapping[Pair, tuple[model.GpuPod, ...]]) -> dict[Pair, PairCounts]:
        """:func:`count` of every pair, recounting only pairs whose pods changed."""
        fresh: dict[Pair, tuple[tuple[model.GpuPod, ...], PairCounts]] = {}
        for pair, pods in placed.items():
            known = self._counts.get(pair)
            if known is None or known[0] is not pods:
                known = (pods, count(pods))
            fresh[pair] = known
        self._counts = fresh
        return {pair: known[1] for pair, known in fresh.items()}

    def meter(
        self,
        tenants: Mapping[str, model.Tenant],
        placed: Mapping[Pair, tuple[model.GpuPod, ...]],
        *,
        now: float,
        half_life: float,
    ) -> dict[Pair, usage.Usage]:
        """:func:`gpufair.state.metering.advance` of every (tenant, pool) of the valid
        tenants; a pair whose record, pods and instant are those of the previous pass keeps
        its answer, and a pair whose pods and persisted ``asOf`` did not change since the
        previous pass is metered from its spans grouped (:func:`gpufair.state.metering.grouped`:
        one term per stretch, the same figures)."""
        fresh: dict[Pair, tuple[tuple[Any, ...], tuple[model.GpuPod, ...], usage.Usage]] = {}
        intervals: dict[Pair, _Spans] = {}
        for name, tenant in tenants.items():
            period = tenant.budget.period_seconds if tenant.budget is not None else None
            for entitlement in tenant.pools:
                pair = (name, entitlement.pool)
                pods = placed.get(pair, ())
                record = tenant.usage.get(entitlement.pool)
                key = (record, tenant.created_at, period, now, half_life)
                known = self._usages.get(pair)
                if known is not None and known[1] is pods and known[0] == key:
                    fresh[pair] = known
                    spans = self._spans.get(pair)
                    if spans is not None:
                        intervals[pair] = spans
                    continue
                since = metering.since(record, tenant=tenant, now=now)
                spans = self._spans.get(pair)
                if spans is None or spans[0] is not pods:
                    spans = (pods, metering.spans(pods), since, None)
                elif spans[2] != since:
                    spans = (pods, spans[1], since, None)
                elif spans[3] is None:  # the second pass from this asOf: grouping pays off
                    spans = (pods, spans[1], since, metering.grouped(spans[1], since=since))
                intervals[pair] = spans
                fresh[pair] = (
                    key,
                    pods,
                    metering.advance_spans(
                        record,
                        spans[1] if spans[3] is None else spans[3],
                        tenant=tenant,
                        now=now,
                        half_life=half_life,
                    ),
                )
        self._usages = fresh
        self._spans = intervals
        return {pair: known[2] for pair, known in fresh.items()}


_Spans = tuple[
    tuple[model.GpuPod, ...], tuple[usage.Span, ...], float, tuple[usage.Span, ...] | None
]
"""A pair's pods, their spans, the instant metering charges from and the spans grouped from
it (:func:`gpufair.state.metering.grouped`; ``None`` until a second pass meters from the same
instant: the simulator persists usage every pass, the operator every 30 s)."""
