"""One reconcile pass, decided: from a :class:`~.snapshot.Snapshot` to what the operator writes.

:func:`plan` is pure (no clock, no I/O) and reads as a numbered pipeline; the kopf side
(:mod:`.reconciler`) applies its result: status patches, gate removals, evictions, events and
metrics. Every decision is delegated to :mod:`gpufair.core` (fair share, usage, admission
order, preemption victims, placement); this module only gathers the inputs per pool and turns
the answers into statuses and intents.

Two rules keep reclaim from oscillating (ARCHITECTURE.md §5):

- a pool with an eviction in flight (a pod of the pool is terminating) starts no new reclaim:
  the GPUs being freed are already spoken for, and a restarted operator sees the terminating
  pods too, so it never repeats an eviction;
- admission serves tenants below their fair share before borrowers, so GPUs freed for a
  reclaiming tenant are not handed back to the tenant they were taken from.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence

from gpufair.core import admission, fairshare, placement, preemption, usage
from gpufair.core import topology as topo
from gpufair.k8s import nodes as k8s_nodes
from gpufair.k8s import selectors
from gpufair.operator import conditions, metering, snapshot

Type = conditions.Type


class ObjectKind(enum.StrEnum):
    POD = "Pod"
    TENANT_QUOTA = "TenantQuota"
    GPU_POOL = "GPUPool"


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(enum.StrEnum):
    """Event and condition reasons the operator writes (CamelCase, as Kubernetes expects)."""

    ADMITTED = "Admitted"
    PREEMPTED = "Preempted"
    RECLAIMING = "Reclaiming"
    RECLAIMED_FROM = "ReclaimedFrom"
    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    NAMESPACE_CONFLICT = "NamespaceConflict"
    NO_CONFLICT = "NoConflict"
    GUARANTEES_EXCEED_CAPACITY = "GuaranteesExceedCapacity"
    GUARANTEES_FIT = "GuaranteesFit"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    WITHIN_BUDGET = "WithinBudget"
    NO_MATCHING_NODES = "NoMatchingNodes"
    NODES_FOUND = "NodesFound"
    LABELS_MISSING = "TopologyLabelsMissing"
    LABELS_PRESENT = "TopologyLabelsPresent"
    UNKNOWN_POOL = "UnknownPool"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: ObjectKind
    name: str
    namespace: str | None = None
    uid: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    target: ObjectRef
    type: EventType
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """Remove the pod's admission gate; it waited ``waited`` seconds."""

    pod: snapshot.GpuPod
    tenant: str
    pool: str
    waited: float


@dataclasses.dataclass(frozen=True, slots=True)
class Eviction:
    """Evict ``pod`` (tenant ``tenant``) so that ``for_pod`` of ``preemptor`` can run."""

    pod: snapshot.GpuPod
    tenant: str
    pool: str
    preemptor: str
    for_pod: snapshot.GpuPod
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class TenantPoolStatus:
    pool: str
    allocated: int
    """GPUs held on nodes by the tenant's pods (terminating ones included)."""
    guaranteed: int
    limit: int | None
    fair_share: float
    borrowed: float
    waiting: int
    """Pods behind the admission gate."""
    waiting_gpus: int
    demand: int
    """GPUs of bound, admitted and waiting pods (what the fair share was computed from)."""
    pending: int
    """Admitted pods not bound yet."""
    pending_gpus: int
    usage: usage.Usage
    decayed_now: float


@dataclasses.dataclass(frozen=True, slots=True)
class TenantStatus:
    name: str
    observed_generation: int
    namespaces: tuple[str, ...]
    pools: tuple[TenantPoolStatus, ...]
    conditions: tuple[snapshot.Condition, ...]
    gpu_seconds: float
    """Cumulative GPU-seconds over all pools."""
    budget_used_gpu_hours: float
    budget_gpu_hours: float | None
    budget_exhausted: bool
    period_start: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class PoolStatus:
    name: str
    observed_generation: int
    nodes: int
    schedulable_nodes: int
    capacity: int
    allocated: int
    free: int
    largest_free_island: int
    fragmentation: float
    tenants: Mapping[str, int]
    shares: Mapping[str, float]
    conditions: tuple[snapshot.Condition, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Everything one pass decided; :mod:`.reconciler` applies it in this order: statuses,
    gate removals, evictions, events, metrics."""

    now: float
    tenants: Mapping[str, TenantStatus]
    pools: Mapping[str, PoolStatus]
    admissions: tuple[Admission, ...]
    evictions: tuple[Eviction, ...]
    events: tuple[Event, ...]
    holds: Mapping[str, str]
    """Why each waiting pod (by uid) stays gated."""
    pod_pools: Mapping[str, tuple[str, str]]
    """(tenant, pool) of every GPU pod of a tenant, by uid."""
    owners: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Tenant of each namespace."""
    states: Mapping[str, admission.TenantState] = dataclasses.field(default_factory=dict)
    """What admission knew of each valid tenant (the webhook's input until the next pass)."""


# ---------------------------------------------------------------------------------------------
# the pipeline


def plan(snap: snapshot.Snapshot, *, half_life: float) -> Plan:
    """Decide one pass: meter, share, admit, reclaim, report (see the module docstring)."""
    now = snap.now
    # 1. Who owns which namespace, which nodes form which pool, where each pod belongs.
    owners, conflicts = namespace_owners(snap)
    node_pool = pools_of_nodes(snap.pools, snap.nodes)
    tenants = {name: t for name, t in snap.tenants.items() if t.invalid is None}
    placed = place_pods(snap, owners=owners, tenants=tenants, node_pool=node_pool)

    # 2. Meter every (tenant, pool) pair up to now.
    usages = {
        (name, pool.pool): metering.advance(
            tenant.usage.get(pool.pool),
            placed.get((name, pool.pool), ()),
            tenant=tenant,
            now=now,
            half_life=half_life,
        )
        for name, tenant in tenants.items()
        for pool in tenant.pools
    }
    budgets = {name: _budget(tenant, usages, now=now) for name, tenant in tenants.items()}
    exhausted = {name: b is not None and b.exhausted for name, b in budgets.items()}
    blocked = {name for name, b in budgets.items() if b is not None and b.blocks}

    # 3. Per pool: capacity and fair shares; then admission over all pools at once.
    pool_views = {
        name: _pool_view(pool, snap=snap, node_pool=node_pool)
        for name, pool in sorted(snap.pools.items())
    }
    shares: dict[str, fairshare.PoolShares] = {}
    for name, view in pool_views.items():
        members = {t: tenants[t] for t in tenants if tenants[t].entitlement(name) is not None}
        shares[name] = _shares(view, members, placed, blocked=blocked)
    states = tenant_states(
        tenants, placed=placed, usages=usages, budgets=budgets, now=now, half_life=half_life
    )
    admissions, holds = _admit(pool_views, placed=placed, states=states, shares=shares, now=now)

    # 4. Reclaim, per pool, for tenants below their fair share whose pods still wait.
    evictions: list[Eviction] = []
    for name, view in pool_views.items():
        evictions.extend(
            _reclaim(
                view,
                tenants=tenants,
                placed=placed,
                shares=shares[name],
                states=states,
                holds=holds,
                admitted=any(a.pool == name for a in admissions),
                blocked=blocked,
                protected=snap.blocked,
                now=now,
            )
        )

    # 5. Statuses, conditions and the events of their transitions.
    events: list[Event] = []
    tenant_statuses: dict[str, TenantStatus] = {}
    for name, tenant in sorted(snap.tenants.items()):
        status, tenant_events = _tenant_status(
            tenant,
            placed=placed,
            usages=usages,
            shares=shares,
            conflicts=conflicts.get(name, ()),
            owned=sorted(ns for ns, owner in owners.items() if owner == name),
            exhausted=exhausted.get(name, False),
            known_pools=snap.pools,
            now=now,
            half_life=half_life,
        )
        tenant_statuses[name] = status
        events.extend(tenant_events)
    pool_statuses: dict[str, PoolStatus] = {}
    for name, view in pool_views.items():
        pool_statuses[name], pool_events = _pool_status(
            view,
            shares=shares[name],
            tenant_allocated={
                tenant: sum(pod.gpus for pod in pods if pod.holds_gpus)
                for (tenant, pool), pods in placed.items()
                if pool == name
            },
            now=now,
        )
        events.extend(pool_events)
    events.extend(_admission_events(admissions))
    events.extend(_eviction_events(evictions))

    return Plan(
        now=now,
        tenants=tenant_statuses,
        pools=pool_statuses,
        admissions=tuple(admissions),
        evictions=tuple(evictions),
        events=tuple(events),
        holds=holds,
        pod_pools={pod.uid: pair for pair, pods in placed.items() for pod in pods if pod.uid},
    )


# ---------------------------------------------------------------------------------------------
# 1. ownership and membership


def namespace_owners(
    snap: snapshot.Snapshot,
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Owner of each namespace, and for each tenant the conflicts it is part of (messages).

    A namespace claimed by several tenants goes to one of them by the same rule every
    component uses (:func:`gpufair.k8s.pods.tenant_of_namespace`: a listing beats a selector,
    then the alphabetically first); all claimants get ``NamespaceConflict``.
    """
    claims: dict[str, list[str]] = {}
    names = set(snap.namespaces)
    for tenant in snap.tenants.values():
        names |= tenant.namespaces
    for namespace in sorted(names):
        labels = snap.namespaces[namespace].labels if namespace in snap.namespaces else {}
        listed = [t.name for t in snap.tenants.values() if namespace in t.namespaces]
        by_selector = [
            t.name
            for t in snap.tenants.values()
            if namespace not in t.namespaces
            and t.namespace_selector is not None
            and namespace in snap.namespaces
            and _selector_matches(t.namespace_selector, labels)
        ]
        claimants = sorted(listed) + sorted(by_selector)
        if claimants:
            claims[namespace] = claimants
    owners = {namespace: claimants[0] for namespace, claimants in claims.items()}
    conflicts: dict[str, list[str]] = {}
    for namespace, claimants in claims.items():
        if len(claimants) > 1:
            for claimant in claimants:
                others = ", ".join(c for c in claimants if c != claimant)
                conflicts.setdefault(claimant, []).append(
                    f"namespace {namespace} is also claimed by {others};"
                    f" it belongs to {claimants[0]}"
                )
    return owners, {tenant: tuple(msgs) for tenant, msgs in conflicts.items()}


def pools_of_nodes(
    pools: Mapping[str, snapshot.Pool], nodes: Mapping[str, snapshot.Node]
) -> dict[str, str]:
    """The pool of each node: the alphabetically first valid pool whose selector matches."""
    result: dict[str, str] = {}
    for node_name, node in nodes.items():
        for pool_name in sorted(pools):
            pool = pools[pool_name]
            if pool.invalid is None and _selector_matches(pool.selector, node.labels):
                result[node_name] = pool_name
                break
    return result


def place_pods(
    snap: snapshot.Snapshot,
    *,
    owners: Mapping[str, str],
    tenants: Mapping[str, snapshot.Tenant],
    node_pool: Mapping[str, str],
) -> dict[tuple[str, str], tuple[snapshot.GpuPod, ...]]:
    """The GPU pods of each (tenant, pool) pair.

    A pod on a node belongs to the node's pool. A pod not on a node belongs to the pool its
    ``gpufair.dev/pool`` annotation names, else to the first of its tenant's pools whose nodes
    satisfy the pod's ``nodeSelector``, else to the tenant's first pool.
    """
    result: dict[tuple[str, str], list[snapshot.GpuPod]] = {}
    for pod in snap.pods:
        tenant_name = owners.get(pod.namespace)
        tenant = tenants.get(tenant_name) if tenant_name else None
        if tenant is None or not tenant.pools:
            continue
        own = [p.pool for p in tenant.pools]
        pool: str | None
        if pod.node is not None:
            pool = node_pool.get(pod.node)
            if pool not in own:
                pool = pod.pool_hint if pod.pool_hint in own else None
        elif pod.pool_hint in own:
            pool = pod.pool_hint
        else:
            pool = next(
                (
                    name
                    for name in own
                    if any(
                        node_pool.get(n) == name
                        and all(node.labels.get(k) == v for k, v in pod.node_selector.items())
                        for n, node in snap.nodes.items()
                    )
                ),
                own[0],
            )
        if pool is not None:
            result.setdefault((tenant.name, pool), []).append(pod)
    return {pair: tuple(pods) for pair, pods in result.items()}


def _selector_matches(selector: snapshot.LabelSelector, labels: Mapping[str, str]) -> bool:
    try:
        return selectors.matches(selector, labels)
    except selectors.SelectorError:
        return False


# ---------------------------------------------------------------------------------------------
# 3. per pool


@dataclasses.dataclass(frozen=True, slots=True)
class PoolView:
    """One pool's nodes with their free GPUs, and every GPU pod on them."""

    pool: snapshot.Pool
    nodes: tuple[snapshot.Node, ...]
    free: Mapping[str, frozenset[int]]
    """Free GPU indices of each schedulable node."""
    indices: Mapping[str, tuple[int, ...]]
    """GPU indices each pod on the pool's nodes holds (recorded, or assumed when unrecorded)."""
    topologies: Mapping[str, topo.NodeTopology]
    capacity: int
    allocated: int
    in_flight: int
    """Pods on the pool's nodes that are terminating (evictions or deletions in progress)."""
    missing_topology: tuple[str, ...]
    holders: tuple[snapshot.GpuPod, ...]


def _pool_view(
    pool: snapshot.Pool, *, snap: snapshot.Snapshot, node_pool: Mapping[str, str]
) -> PoolView:
    members = tuple(
        node for name, node in sorted(snap.nodes.items()) if node_pool.get(name) == pool.name
    )
    names = {node.name for node in members}
    holders = tuple(pod for pod in snap.pods if pod.holds_gpus and pod.node in names)
    free: dict[str, frozenset[int]] = {}
    indices: dict[str, tuple[int, ...]] = {}
    topologies: dict[str, topo.NodeTopology] = {}
    capacity = 0
    allocated = 0
    for node in members:
        count = node.allocatable.get(pool.resource_name, 0)
        node_topology = node.topology
        if node_topology is None or len(node_topology.gpus) != count:
            node_topology = k8s_nodes.flat_topology(count)
        topologies[node.name] = node_topology
        on_node = [pod for pod in holders if pod.node == node.name]
        allocated += sum(pod.gpus for pod in on_node)
        held = _held_indices(node_topology, on_node)
        indices.update(held)
        if not node.schedulable:
            continue
        capacity += count
        taken = {gpu for gpus in held.values() for gpu in gpus}
        free[node.name] = frozenset(node_topology.indices) - taken
    return PoolView(
        pool=pool,
        nodes=members,
        free=free,
        indices=indices,
        topologies=topologies,
        capacity=capacity,
        allocated=allocated,
        in_flight=sum(1 for pod in holders if pod.state is snapshot.PodState.TERMINATING),
        missing_topology=tuple(
            node.name
            for node in members
            if node.topology is None and node.allocatable.get(pool.resource_name, 0) > 0
        ),
        holders=holders,
    )


def _held_indices(
    node_topology: topo.NodeTopology, on_node: Sequence[snapshot.GpuPod]
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


def _demand(pods: Iterable[snapshot.GpuPod], *, include_waiting: bool) -> int:
    states = {snapshot.PodState.BOUND, snapshot.PodState.PENDING}
    if include_waiting:
        states.add(snapshot.PodState.GATED)
    return sum(pod.gpus for pod in pods if pod.state in states)


def _shares(
    view: PoolView,
    members: Mapping[str, snapshot.Tenant],
    placed: Mapping[tuple[str, str], Sequence[snapshot.GpuPod]],
    *,
    blocked: set[str],
) -> fairshare.PoolShares:
    """Fair shares of the pool; a tenant stopped by its budget claims no waiting demand."""
    claims = []
    for name, tenant in sorted(members.items()):
        entitlement = tenant.entitlement(view.pool.name)
        assert entitlement is not None
        claims.append(
            fairshare.TenantClaim(
                tenant=name,
                weight=tenant.weight,
                guaranteed=entitlement.guaranteed,
                limit=entitlement.limit,
                lendable=entitlement.lendable,
                demand=_demand(
                    placed.get((name, view.pool.name), ()), include_waiting=name not in blocked
                ),
            )
        )
    return fairshare.compute(view.capacity, claims)


def _held(pods: Iterable[snapshot.GpuPod]) -> int:
    """GPUs the tenant holds or was admitted for (terminating pods are leaving: not counted)."""
    return sum(
        pod.gpus
        for pod in pods
        if pod.state in (snapshot.PodState.BOUND, snapshot.PodState.PENDING)
    )


def _budget(
    tenant: snapshot.Tenant, usages: Mapping[tuple[str, str], usage.Usage], *, now: float
) -> admission.Budget | None:
    if tenant.budget is None:
        return None
    used = usage.period_gpu_hours(
        (u for (name, _), u in usages.items() if name == tenant.name),
        now=now,
        period=tenant.budget.period_seconds,
    )
    return admission.Budget(
        gpu_hours=tenant.budget.gpu_hours,
        used_gpu_hours=used,
        enforcement=tenant.budget.enforcement,
    )


def tenant_states(
    tenants: Mapping[str, snapshot.Tenant],
    *,
    placed: Mapping[tuple[str, str], Sequence[snapshot.GpuPod]],
    usages: Mapping[tuple[str, str], usage.Usage],
    budgets: Mapping[str, admission.Budget | None],
    now: float,
    half_life: float,
) -> dict[str, admission.TenantState]:
    """What core admission knows of each tenant (also the webhook's input)."""
    return {
        name: admission.TenantState(
            tenant=name,
            weight=tenant.weight,
            decayed_usage=sum(
                usage.decayed_at(usages[(name, p.pool)], now=now, half_life=half_life)
                for p in tenant.pools
                if (name, p.pool) in usages
            ),
            allocated={p.pool: _held(placed.get((name, p.pool), ())) for p in tenant.pools},
            limits={p.pool: p.limit for p in tenant.pools},
            budget=budgets.get(name),
            on_limit=tenant.on_limit,
        )
        for name, tenant in tenants.items()
    }


def _admit(
    views: Mapping[str, PoolView],
    *,
    placed: Mapping[tuple[str, str], Sequence[snapshot.GpuPod]],
    states: Mapping[str, admission.TenantState],
    shares: Mapping[str, fairshare.PoolShares],
    now: float,
) -> tuple[list[Admission], dict[str, str]]:
    """Core's admission decision, then a node-fit check: a pod is admitted only when some node
    of its pool can give it a GPU set (pods admitted earlier but not bound are placed first)."""
    pods = {pod.uid: (tenant, pool, pod) for (tenant, pool), ps in placed.items() for pod in ps}
    waiting = [
        admission.WaitingPod(
            uid=pod.uid,
            tenant=tenant,
            pool=pool,
            gpus=pod.gpus,
            priority=pod.priority,
            created_at=pod.created_at,
            name=pod.key,
        )
        for tenant, pool, pod in pods.values()
        if pod.state is snapshot.PodState.GATED
    ]
    free_sets = {name: dict(view.free) for name, view in views.items()}
    pending = [
        (pool, pod)
        for _, pool, pod in pods.values()
        if pod.state is snapshot.PodState.PENDING and pool in views
    ]
    for pool, pod in sorted(pending, key=lambda item: item[1].created_at):
        _take(views[pool], free_sets[pool], pod.gpus)
    free = {name: sum(len(gpus) for gpus in free_sets[name].values()) for name in views}
    decision = admission.decide(
        waiting=waiting,
        tenants=states,
        free=free,
        shares=shares,
    )
    holds = {hold.pod.uid: hold.message for hold in decision.held}
    admitted: list[Admission] = []
    for chosen in decision.admit:
        tenant, pool, pod = pods[chosen.uid]
        if _take(views[pool], free_sets[pool], pod.gpus):
            admitted.append(
                Admission(pod=pod, tenant=tenant, pool=pool, waited=max(0.0, now - pod.created_at))
            )
        else:
            holds[pod.uid] = (
                f"waiting for {pod.gpus} GPUs on one node of pool {pool}"
                f" (largest free set: {max((len(g) for g in free_sets[pool].values()), default=0)})"
            )
    return admitted, holds


def _take(view: PoolView, free: dict[str, frozenset[int]], gpus: int) -> bool:
    """Place ``gpus`` GPUs on the best node as the extender would; False when none fits."""
    best: tuple[int, str, tuple[int, ...]] | None = None
    for name, available in sorted(free.items()):
        if len(available) < gpus:
            continue
        choice = placement.choose(
            view.topologies[name],
            free=available,
            count=gpus,
            mode=view.pool.mode,
            rule=view.pool.rule,
        )
        if isinstance(choice, placement.Choice) and (best is None or choice.score > best[0]):
            best = (choice.score, name, choice.gpus)
    if best is None:
        return False
    _, name, chosen = best
    free[name] = free[name] - frozenset(chosen)
    return True


# ---------------------------------------------------------------------------------------------
# 4. statuses, conditions, events


def _tenant_status(
    tenant: snapshot.Tenant,
    *,
    placed: Mapping[tuple[str, str], Sequence[snapshot.GpuPod]],
    usages: Mapping[tuple[str, str], usage.Usage],
    shares: Mapping[str, fairshare.PoolShares],
    conflicts: Sequence[str],
    owned: Sequence[str],
    exhausted: bool,
    known_pools: Mapping[str, snapshot.Pool],
    now: float,
    half_life: float,
) -> tuple[TenantStatus, list[Event]]:
    pools: list[TenantPoolStatus] = []
    for entitlement in tenant.pools if tenant.invalid is None else ():
        pods = placed.get((tenant.name, entitlement.pool), ())
        share = shares.get(entitlement.pool)
        record = usages.get((tenant.name, entitlement.pool)) or usage.Usage(as_of=now)
        allocated = sum(pod.gpus for pod in pods if pod.holds_gpus)
        waiting = [pod for pod in pods if pod.state is snapshot.PodState.GATED]
        pools.append(
            TenantPoolStatus(
                pool=entitlement.pool,
                allocated=allocated,
                guaranteed=entitlement.guaranteed,
                limit=entitlement.limit,
                fair_share=share.share(tenant.name) if share else 0.0,
                borrowed=share.borrowed(tenant.name, allocated) if share else 0.0,
                waiting=len(waiting),
                waiting_gpus=sum(pod.gpus for pod in waiting),
                demand=share.demand.get(tenant.name, 0) if share else 0,
                pending=sum(1 for pod in pods if pod.state is snapshot.PodState.PENDING),
                pending_gpus=sum(
                    pod.gpus for pod in pods if pod.state is snapshot.PodState.PENDING
                ),
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
    wanted = list(
        _tenant_conditions(
            tenant,
            conflicts=conflicts,
            overcommitted=[
                name
                for name in sorted(shares)
                if tenant.entitlement(name) is not None and shares[name].overcommitted
            ],
            missing_pools=[p.pool for p in tenant.pools if p.pool not in known_pools],
            exhausted=exhausted,
            used_hours=used_hours,
        )
    )
    merged, changed = conditions.merge(
        tenant.conditions, wanted, now=now, generation=tenant.generation
    )
    status = TenantStatus(
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


def _tenant_conditions(
    tenant: snapshot.Tenant,
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


def _pool_status(
    view: PoolView,
    *,
    shares: fairshare.PoolShares,
    tenant_allocated: Mapping[str, int],
    now: float,
) -> tuple[PoolStatus, list[Event]]:
    pool = view.pool
    free = sum(len(gpus) for gpus in view.free.values())
    largest = max(
        (
            placement.largest_free_island(view.topologies[name], gpus)
            for name, gpus in view.free.items()
        ),
        default=0,
    )
    fragmentation = (
        sum(
            placement.fragmentation(view.topologies[name], gpus) * len(gpus)
            for name, gpus in view.free.items()
        )
        / free
        if free
        else 0.0
    )
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
    status = PoolStatus(
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


def _condition_event(target: ObjectRef, want: conditions.Desired) -> Event:
    bad = want.status != (want.type is Type.READY)
    return Event(
        target=target,
        type=EventType.WARNING if bad and want.warning else EventType.NORMAL,
        reason=f"{want.type}{want.status_text}"
        if want.type is not Type.READY
        else (want.reason if not want.status else "Ready"),
        message=want.message,
    )


def _pod_ref(pod: snapshot.GpuPod) -> ObjectRef:
    return ObjectRef(kind=ObjectKind.POD, name=pod.name, namespace=pod.namespace, uid=pod.uid)


def _admission_events(admissions: Iterable[Admission]) -> Iterable[Event]:
    for admitted in admissions:
        yield Event(
            target=_pod_ref(admitted.pod),
            type=EventType.NORMAL,
            reason=Reason.ADMITTED,
            message=f"admitted to pool {admitted.pool} for tenant {admitted.tenant}"
            f" after waiting {admitted.waited:.0f}s",
        )


def _eviction_events(evictions: Iterable[Eviction]) -> Iterable[Event]:
    for eviction in evictions:
        yield Event(
            target=_pod_ref(eviction.pod),
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


def _reclaim(
    view: PoolView,
    *,
    tenants: Mapping[str, snapshot.Tenant],
    placed: Mapping[tuple[str, str], Sequence[snapshot.GpuPod]],
    states: Mapping[str, admission.TenantState],
    shares: fairshare.PoolShares,
    holds: Mapping[str, str],
    admitted: bool,
    blocked: set[str],
    protected: frozenset[str],
    now: float,
) -> list[Eviction]:
    """At most one reclaim per pool and pass, for the first waiting pod (in admission order)
    core finds victims for; none while an eviction in the pool is still in flight or pods were
    just admitted into it (the freed or free GPUs are already spoken for)."""
    if view.in_flight or admitted:
        return []
    pool = view.pool.name
    members = {name: t for name, t in tenants.items() if t.entitlement(pool) is not None}
    allocated = {name: _held(placed.get((name, pool), ())) for name in members}
    policies = {
        name: preemption.Policy(reclaim=t.reclaim, min_runtime_seconds=t.min_runtime_seconds)
        for name, t in members.items()
    }
    running = [
        preemption.RunningPod(
            uid=pod.uid,
            tenant=name,
            pool=pool,
            node=pod.node,
            gpus=view.indices[pod.uid],
            priority=pod.priority,
            started_at=pod.started_at if pod.started_at is not None else now,
            checkpoint_at=pod.checkpoint_at,
            name=pod.key,
        )
        for name in members
        for pod in placed.get((name, pool), ())
        if pod.state is snapshot.PodState.BOUND
        and pod.node is not None
        and pod.uid in view.indices
        and pod.uid not in protected
    ]
    nodes = {
        name: preemption.NodeGPUs(topology=view.topologies[name], free=free)
        for name, free in view.free.items()
    }
    pods = {pod.uid: pod for name in members for pod in placed.get((name, pool), ())}
    waiting = sorted(
        (
            admission.WaitingPod(
                uid=pod.uid,
                tenant=name,
                pool=pool,
                gpus=pod.gpus,
                priority=pod.priority,
                created_at=pod.created_at,
                name=pod.key,
            )
            for name in members
            if name not in blocked
            for pod in placed.get((name, pool), ())
            if pod.state is snapshot.PodState.GATED and pod.uid in holds
        ),
        key=lambda pod: admission.order_key(pod, states),
    )
    for wanted in waiting:
        victims = preemption.choose_victims(
            preemptor=wanted,
            running=running,
            nodes=nodes,
            shares=shares,
            allocated=allocated,
            policies=policies,
            now=now,
            mode=view.pool.mode,
            rule=view.pool.rule,
        )
        if victims is None:
            continue
        share = shares.share(wanted.tenant)
        return [
            Eviction(
                pod=pods[victim.uid],
                tenant=victim.tenant,
                pool=pool,
                preemptor=wanted.tenant,
                for_pod=pods[wanted.uid],
                message=f"preempted by gpufair: tenant {wanted.tenant} is below its fair share"
                f" in pool {pool} ({allocated[wanted.tenant]} of {share:g} GPUs) and"
                f" {wanted.name} needs {wanted.gpus} GPUs on node {victims.node};"
                f" tenant {victim.tenant} keeps at least"
                f" {shares.protected(victim.tenant):g} GPUs",
            )
            for victim in victims.pods
        ]
    return []
