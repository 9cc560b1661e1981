"""Statuses, conditions and events of TenantQuotas and GPUPools for one pass (pure).

Called by :mod:`.plan` after metering, sharing, admission and reclaim were decided. Conditions
go through :func:`.conditions.merge`, so each status transition yields exactly one event, and
a restarted operator (reading the persisted conditions) repeats none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from gpufair.api import names
from gpufair.core import fairshare, placement, topology, usage
from gpufair.operator import conditions, intents
from gpufair.state import model, occupancy, passcache, scheduling

Type = conditions.Type
Reason = intents.Reason
Event = intents.Event
ObjectRef = intents.ObjectRef
ObjectKind = intents.ObjectKind
EventType = intents.EventType


def tenant_status(
    tenant: model.Tenant,
    *,
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    usages: Mapping[tuple[str, str], usage.Usage],
    shares: Mapping[str, fairshare.PoolShares],
    conflicts: Sequence[str],
    owned: Sequence[str],
    exhausted: bool,
    known_pools: Mapping[str, model.Pool],
    now: float,
    half_life: float,
    memo: ConditionsMemo | None = None,
) -> tuple[intents.TenantStatus, list[Event]]:
    """The quota's status and the events of its conditions' transitions. ``memo`` (kept by
    the caller from pass to pass) keeps each quota's merged conditions while what they say
    and the persisted ones stay the same (:func:`_conditions`)."""
    pools: list[intents.TenantPoolStatus] = []
    for entitlement in tenant.pools if tenant.invalid is None else ():
        pods = counts.get((tenant.name, entitlement.pool), passcache.NO_PODS)
        share = shares.get(entitlement.pool)
        record = usages.get((tenant.name, entitlement.pool)) or usage.Usage(as_of=now)
        allocated = pods.holding
        pools.append(
            intents.TenantPoolStatus(
                pool=entitlement.pool,
                allocated=allocated,
                guaranteed=entitlement.guaranteed,
                limit=entitlement.limit,
                fair_share=share.share(tenant.name) if share else 0.0,
                borrowed=share.borrowed(tenant.name, allocated) if share else 0.0,
                waiting=pods.gated,
                waiting_gpus=pods.gated_gpus,
                demand=share.demand.get(tenant.name, 0) if share else 0,
                pending=pods.pending,
                pending_gpus=pods.pending_gpus,
                usage=record,
                decayed_now=usage.decayed_at(record, now=now, half_life=half_life),
            )
        )
    # Usage of pools the tenant no longer has (or of every pool while its spec is invalid) is
    # kept as persisted: a bad edit must not erase what was metered.
    listed = {p.pool for p in pools}
    for pool_name, record in sorted(tenant.usage.items()):
        if pool_name not in listed:
            pools.append(
                intents.TenantPoolStatus(
                    pool=pool_name,
                    allocated=0,
                    guaranteed=0,
                    limit=None,
                    fair_share=0.0,
                    borrowed=0.0,
                    waiting=0,
                    waiting_gpus=0,
                    demand=0,
                    pending=0,
                    pending_gpus=0,
                    usage=record,
                    decayed_now=usage.decayed_at(record, now=now, half_life=half_life),
                )
            )
    used_hours = (
        usage.period_gpu_hours(
            (p.usage for p in pools), now=now, period=tenant.budget.period_seconds
        )
        if tenant.budget is not None
        else 0.0
    )
    merged, changed = _conditions(
        tenant,
        conflicts=tuple(conflicts),
        overcommitted=tuple(
            name
            for name in sorted(shares)
            if shares[name].overcommitted and tenant.entitlement(name) is not None
        ),
        missing_pools=tuple(p.pool for p in tenant.pools if p.pool not in known_pools),
        exhausted=exhausted,
        used_hours=used_hours,
        now=now,
        memo=memo,
    )
    status = intents.TenantStatus(
        name=tenant.name,
        observed_generation=tenant.generation,
        namespaces=tuple(owned),
        pools=tuple(pools),
        conditions=merged,
        gpu_seconds=sum(p.usage.gpu_seconds for p in pools),
        budget_used_gpu_hours=used_hours,
        budget_gpu_hours=tenant.budget.gpu_hours if tenant.budget else None,
        budget_exhausted=exhausted,
        period_start=(
            usage.period_start(now, period=tenant.budget.period_seconds)
            if tenant.budget is not None
            else None
        ),
    )
    target = ObjectRef(kind=ObjectKind.TENANT_QUOTA, name=tenant.name)
    return status, [_condition_event(target, want) for want in changed]


ConditionsMemo = dict[
    str,
    tuple[tuple[object, ...], tuple[model.Condition, ...], tuple[model.Condition, ...]],
]
"""Per quota: what its conditions were decided from, the persisted conditions and the
merged ones (:func:`_conditions`)."""


def _conditions(
    tenant: model.Tenant,
    *,
    conflicts: tuple[str, ...],
    overcommitted: tuple[str, ...],
    missing_pools: tuple[str, ...],
    exhausted: bool,
    used_hours: float,
    now: float,
    memo: ConditionsMemo | None,
) -> tuple[tuple[model.Condition, ...], tuple[conditions.Desired, ...]]:
    """The quota's conditions merged with its persisted ones, and the transitions. A merge
    in which no condition transitioned or appeared does not depend on ``now``: it is kept in
    ``memo`` and stands while the inputs and the persisted conditions are the same."""
    inputs = (
        tenant.invalid,
        tenant.generation,
        tenant.budget,
        conflicts,
        overcommitted,
        missing_pools,
        exhausted,
        used_hours if tenant.budget is not None else None,
    )
    known = memo.get(tenant.name) if memo is not None else None
    if known is not None and known[0] == inputs and known[1] == tenant.conditions:
        return known[2], ()
    wanted = _tenant_conditions(
        tenant,
        conflicts=conflicts,
        overcommitted=overcommitted,
        missing_pools=missing_pools,
        exhausted=exhausted,
        used_hours=used_hours,
    )
    merged, changed = conditions.merge(
        tenant.conditions, wanted, now=now, generation=tenant.generation
    )
    if memo is not None:
        before = {condition.type: condition.status for condition in tenant.conditions}
        if all(before.get(condition.type) == condition.status for condition in merged):
            memo[tenant.name] = (inputs, tenant.conditions, merged)
        else:
            memo.pop(tenant.name, None)
    return merged, changed


def _tenant_conditions(
    tenant: model.Tenant,
    *,
    conflicts: Sequence[str],
    overcommitted: Sequence[str],
    missing_pools: Sequence[str],
    exhausted: bool,
    used_hours: float,
) -> Iterable[conditions.Desired]:
    if tenant.invalid is not None:
        yield conditions.Desired(
            Type.READY, False, Reason.INVALID_SPEC, tenant.invalid, warning=True
        )
        return
    if missing_pools:
        yield conditions.Desired(
            Type.READY,
            False,
            Reason.UNKNOWN_POOL,
            f"no GPUPool named {', '.join(missing_pools)}",
            warning=True,
        )
    elif conflicts:
        yield conditions.Desired(
            Type.READY, False, Reason.NAMESPACE_CONFLICT, "; ".join(conflicts), warning=True
        )
    else:
        yield conditions.Desired(
            Type.READY, True, Reason.RECONCILED, "quota reconciled; pods are admitted in order"
        )
    yield conditions.Desired(
        Type.NAMESPACE_CONFLICT,
        bool(conflicts),
        Reason.NAMESPACE_CONFLICT if conflicts else Reason.NO_CONFLICT,
        "; ".join(conflicts) if conflicts else "no other tenant claims these namespaces",
        warning=True,
    )
    yield conditions.Desired(
        Type.OVERCOMMITTED,
        bool(overcommitted),
        Reason.GUARANTEES_EXCEED_CAPACITY if overcommitted else Reason.GUARANTEES_FIT,
        f"guarantees exceed the capacity of pool {', '.join(overcommitted)}"
        if overcommitted
        else "the guarantees fit every pool",
        warning=True,
    )
    if tenant.budget is not None:
        budget = tenant.budget
        yield conditions.Desired(
            Type.BUDGET_EXHAUSTED,
            exhausted,
            Reason.BUDGET_EXHAUSTED if exhausted else Reason.WITHIN_BUDGET,
            f"used {used_hours:.2f} of {budget.gpu_hours:g} GPU-hours this period"
            + (
                f"; enforcement {budget.enforcement}: new pods wait for the next period"
                if exhausted and budget.enforcement == "Hard"
                else ""
            ),
            warning=True,
        )


def pool_status(
    view: occupancy.PoolOccupancy,
    *,
    shares: fairshare.PoolShares,
    tenant_allocated: Mapping[str, int],
    now: float,
    figures: FreeFigures | None = None,
) -> tuple[intents.PoolStatus, list[Event]]:
    """The pool's status; ``figures`` are :func:`free_figures` of ``view`` when known."""
    pool = view.pool
    free, largest, fragmentation = figures if figures is not None else free_figures(view)
    wanted: list[conditions.Desired] = []
    schedulable = sum(1 for node in view.nodes if node.schedulable)
    if pool.invalid is not None:
        wanted.append(
            conditions.Desired(Type.READY, False, Reason.INVALID_SPEC, pool.invalid, warning=True)
        )
    elif view.capacity == 0:
        message = (
            f"no schedulable node with {pool.resource_name} matches the node selector"
            f" ({len(view.nodes)} matching, {schedulable} schedulable)"
        )
        wanted.append(
            conditions.Desired(Type.READY, False, Reason.NO_MATCHING_NODES, message, warning=True)
        )
        wanted.append(
            conditions.Desired(Type.NO_NODES, True, Reason.NO_MATCHING_NODES, message, warning=True)
        )
    else:
        wanted.append(
            conditions.Desired(
                Type.READY,
                True,
                Reason.NODES_FOUND,
                f"{schedulable} schedulable nodes, {view.capacity} GPUs",
            )
        )
        wanted.append(
            conditions.Desired(
                Type.NO_NODES, False, Reason.NODES_FOUND, f"{schedulable} schedulable nodes"
            )
        )
    wanted.append(
        conditions.Desired(
            Type.TOPOLOGY_MISSING,
            bool(view.missing_topology),
            Reason.LABELS_MISSING if view.missing_topology else Reason.LABELS_PRESENT,
            "nodes without gpufair topology labels (placement cannot keep jobs on one NVLink"
            f" island there): {', '.join(view.missing_topology)}"
            if view.missing_topology
            else "every node publishes its GPU topology",
            warning=True,
        )
    )
    wanted.append(
        conditions.Desired(
            Type.OVERCOMMITTED,
            shares.overcommitted,
            Reason.GUARANTEES_EXCEED_CAPACITY if shares.overcommitted else Reason.GUARANTEES_FIT,
            f"guarantees add up to {shares.guaranteed_total} GPUs, capacity is {view.capacity}",
            warning=True,
        )
    )
    merged, changed = conditions.merge(pool.conditions, wanted, now=now, generation=pool.generation)
    status = intents.PoolStatus(
        name=pool.name,
        observed_generation=pool.generation,
        nodes=len(view.nodes),
        schedulable_nodes=schedulable,
        capacity=view.capacity,
        allocated=view.allocated,
        free=free,
        largest_free_island=largest,
        fragmentation=fragmentation,
        tenants={name: tenant_allocated.get(name, 0) for name in sorted(shares.shares)},
        shares=dict(shares.shares),
        conditions=merged,
    )
    target = ObjectRef(kind=ObjectKind.GPU_POOL, name=pool.name)
    return status, [_condition_event(target, want) for want in changed]


FreeFigures = tuple[int, int, float]
"""A pool's free GPUs, largest free island and fragmentation ratio."""


def free_figures(view: occupancy.PoolOccupancy, measure: Measure | None = None) -> FreeFigures:
    """Free GPUs, the largest free island of one node, and the fragmentation of the free GPUs
    (weighted by each node's free GPUs) of a pool; ``measure`` answers :func:`node_figures`
    (kept per topology and free set by the caller: nodes alike are many)."""
    measure = measure if measure is not None else node_figures
    figures = [
        (measure(view.topologies[name], gpus), len(gpus)) for name, gpus in view.free.items()
    ]
    free = sum(count for _, count in figures)
    largest = max((island for (island, _), _ in figures), default=0)
    weighted = sum(fragmentation * count for (_, fragmentation), count in figures)
    return free, largest, weighted / free if free else 0.0


Measure = Callable[[topology.NodeTopology, frozenset[int]], tuple[int, float]]


def node_figures(node: topology.NodeTopology, free: frozenset[int]) -> tuple[int, float]:
    """The largest free island and the fragmentation of one node's free GPUs."""
    return placement.largest_free_island(node, free), placement.fragmentation(node, free)


def _condition_event(target: ObjectRef, want: conditions.Desired) -> Event:
    """The event of a transition: ``Ready`` or the cause of not being ready (``InvalidSpec``
    …); other types as ``<Type><Status>`` (``OvercommittedTrue``). Problems are warnings."""
    is_ready = want.type is Type.READY
    problem = want.status != is_ready
    if is_ready:
        reason = "Ready" if want.status else str(want.reason)
    else:
        reason = f"{want.type}{want.status_text}"
    return Event(
        target=target,
        type=EventType.WARNING if problem and want.warning else EventType.NORMAL,
        reason=reason,
        message=want.message,
    )


def admission_events(admissions: Iterable[scheduling.Admission]) -> Iterable[Event]:
    for admitted in admissions:
        yield Event(
            target=ObjectRef.pod(admitted.pod),
            type=EventType.NORMAL,
            reason=Reason.ADMITTED,
            message=f"admitted to pool {admitted.pool} for tenant {admitted.tenant}"
            f" after waiting {admitted.waited:.0f}s"
            + (
                f"; its pod group's plan places it on node {admitted.node}"
                if admitted.node is not None
                else ""
            )
            + _alone(admitted.pod),
        )


def _alone(pod: model.GpuPod) -> str:
    """What the Admitted event says of a pod admitted on its own although a controller groups
    it: the group's size is on an owner object gpufair has not seen (its API is not served,
    the object is not listed yet, or its size cannot be read, :mod:`.owners`)."""
    key = pod.group_unsized
    if key is None:
        return ""
    return (
        f"; admitted on its own: it belongs to {key}, whose size gpufair does not know"
        " (the operator has not read its owner: the API server does not serve that kind, the"
        f" object is not listed yet, or its size is unreadable); set {names.GROUP_SIZE_KEY}"
        " on the pod template to admit the group all or nothing"
    )


def release_events(releases: Iterable[scheduling.Release]) -> Iterable[Event]:
    for released in releases:
        yield Event(
            target=ObjectRef.pod(released.pod),
            type=EventType.NORMAL,
            reason=Reason.RELEASED,
            message=released.message,
        )


def eviction_events(evictions: Iterable[scheduling.Eviction]) -> Iterable[Event]:
    for eviction in evictions:
        yield Event(
            target=ObjectRef.pod(eviction.pod),
            type=EventType.WARNING,
            reason=Reason.PREEMPTED,
            message=eviction.message,
        )
        yield Event(
            target=ObjectRef(kind=ObjectKind.TENANT_QUOTA, name=eviction.tenant),
            type=EventType.WARNING,
            reason=Reason.RECLAIMED_FROM,
            message=f"pod {eviction.pod.key} ({eviction.pod.gpus} GPUs) evicted in pool"
            f" {eviction.pool}: {eviction.message}",
        )
        yield Event(
            target=ObjectRef(kind=ObjectKind.TENANT_QUOTA, name=eviction.preemptor),
            type=EventType.NORMAL,
            reason=Reason.RECLAIMING,
            message=f"evicting {eviction.pod.key} of tenant {eviction.tenant} in pool"
            f" {eviction.pool} so that {eviction.for_pod.key} can run",
        )
