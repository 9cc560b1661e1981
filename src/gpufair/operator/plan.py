"""One reconcile pass, decided: from a :class:`~gpufair.state.model.Snapshot` to what the
operator writes.

:func:`plan` is pure (no clock, no I/O): it runs the scheduling pass the simulator runs too
(:func:`gpufair.state.scheduling.schedule`: ownership, pool of each pod, metering, shares,
admission, reclaim) and adds what only the operator writes: TenantQuota and GPUPool statuses,
their conditions and the events of their transitions. The kopf side (:mod:`.reconciler`)
applies the result: status patches, gate removals, evictions, events and metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gpufair.core import admission, topology
from gpufair.operator import intents, statuses
from gpufair.state import model, occupancy, passcache, scheduling


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Everything one pass decided; :mod:`.reconciler` applies it in this order: statuses,
    gate removals, evictions, events, metrics. ``events`` are those of status transitions;
    the ``Admitted``, ``Released`` and eviction events are the reconciler's, once the act
    succeeded."""

    now: float
    tenants: Mapping[str, intents.TenantStatus]
    pools: Mapping[str, intents.PoolStatus]
    admissions: tuple[scheduling.Admission, ...]
    evictions: tuple[scheduling.Eviction, ...]
    events: tuple[intents.Event, ...]
    holds: Mapping[str, str]
    """Why each waiting pod (by uid) stays gated."""
    pod_pools: Mapping[str, tuple[str, str]]
    """(tenant, pool) of every GPU pod of a tenant, by uid."""
    owners: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Tenant of each namespace."""
    states: Mapping[str, admission.TenantState] = dataclasses.field(default_factory=dict)
    """What admission knew of each valid tenant (the webhook's input until the next pass)."""
    releases: tuple[scheduling.Release, ...] = ()
    """Gated pods of namespaces that belong to no tenant: gpufair's gate comes off."""
    relabels: tuple[scheduling.TenantLabel, ...] = ()
    """Namespaces whose ``gpufair.dev/tenant`` label must change."""


# ---------------------------------------------------------------------------------------------
# the pipeline


class PlanCache:
    """What :func:`plan` keeps between passes (one per reconciler): the scheduling pass's
    :class:`~gpufair.state.passcache.PassCache`, and each pool's free figures with the free
    GPUs they were computed from. Plans are the same with or without it."""

    def __init__(self) -> None:
        self.scheduling = passcache.PassCache()
        self.figures: dict[str, tuple[Mapping[str, frozenset[int]], statuses.FreeFigures]] = {}
        self.nodes: dict[tuple[topology.NodeTopology, frozenset[int]], tuple[int, float]] = {}
        self.conditions: statuses.ConditionsMemo = {}
        self._placed: dict[tuple[str, str], tuple[model.GpuPod, ...]] = {}
        self._pod_pools: dict[str, tuple[str, str]] = {}

    def pod_pools(
        self, placed: Mapping[tuple[str, str], tuple[model.GpuPod, ...]]
    ) -> dict[str, tuple[str, str]]:
        """The (tenant, pool) of every placed pod by uid; only pairs whose pods changed since
        the previous pass are gone through again."""
        before, table = self._placed, dict(self._pod_pools)
        for pair, pods in before.items():
            if placed.get(pair) is not pods:
                for pod in pods:
                    if table.get(pod.uid) == pair:
                        del table[pod.uid]
        for pair, pods in placed.items():
            if before.get(pair) is not pods:
                table.update((pod.uid, pair) for pod in pods if pod.uid)
        if len(table) != sum(map(len, placed.values())):  # a uid twice, or none: from scratch
            table = {pod.uid: pair for pair, pods in placed.items() for pod in pods if pod.uid}
        self._placed, self._pod_pools = dict(placed), table
        return dict(table)

    def free_figures(self, view: occupancy.PoolOccupancy) -> statuses.FreeFigures:
        known = self.figures.get(view.pool.name)
        if known is None or known[0] is not view.free:
            known = (view.free, statuses.free_figures(view, self._node_figures))
            self.figures[view.pool.name] = known
        return known[1]

    def _node_figures(self, node: topology.NodeTopology, free: frozenset[int]) -> tuple[int, float]:
        key = (node, free)
        known = self.nodes.get(key)
        if known is None:
            if len(self.nodes) > 100_000:  # shapes x free sets are few; bound it anyway
                self.nodes.clear()
            known = self.nodes[key] = statuses.node_figures(node, free)
        return known


def plan(snap: model.Snapshot, *, half_life: float, cache: PlanCache | None = None) -> Plan:
    """Decide one pass (:func:`gpufair.state.scheduling.schedule`), then the statuses,
    conditions and the events of their transitions. ``cache``: see :class:`PlanCache`."""
    cache = cache if cache is not None else PlanCache()
    decided = scheduling.schedule(snap, half_life=half_life, cache=cache.scheduling)
    now = decided.now
    placed = decided.placed
    counts = cache.scheduling.counts(placed)
    events: list[intents.Event] = []
    tenant_statuses: dict[str, intents.TenantStatus] = {}
    owned_by: dict[str, list[str]] = {}
    for namespace, owner in sorted(decided.owners.items()):
        owned_by.setdefault(owner, []).append(namespace)
    for name, tenant in sorted(snap.tenants.items()):
        status, tenant_events = statuses.tenant_status(
            tenant,
            counts=counts,
            usages=decided.usages,
            shares=decided.shares,
            conflicts=decided.conflicts.get(name, ()),
            owned=owned_by.get(name, []),
            exhausted=decided.exhausted.get(name, False),
            known_pools=snap.pools,
            now=now,
            half_life=half_life,
            memo=cache.conditions,
        )
        tenant_statuses[name] = status
        events.extend(tenant_events)
    if len(cache.conditions) > 2 * len(snap.tenants) + 64:  # quotas deleted since
        cache.conditions = {k: v for k, v in cache.conditions.items() if k in snap.tenants}
    allocated: dict[str, dict[str, int]] = {}
    for (tenant_name, pool_name), pair_counts in counts.items():
        allocated.setdefault(pool_name, {})[tenant_name] = pair_counts.holding
    pool_statuses: dict[str, intents.PoolStatus] = {}
    for name, view in decided.pools.items():
        pool_statuses[name], pool_events = statuses.pool_status(
            view,
            shares=decided.shares[name],
            tenant_allocated=allocated.get(name, {}),
            now=now,
            figures=cache.free_figures(view),
        )
        events.extend(pool_events)

    return Plan(
        now=now,
        tenants=tenant_statuses,
        pools=pool_statuses,
        admissions=decided.admissions,
        evictions=decided.evictions,
        events=tuple(events),
        holds=decided.holds,
        pod_pools=cache.pod_pools(placed),
        owners=decided.owners,
        states=decided.states,
        releases=decided.releases,
        relabels=decided.relabels,
    )
