"""The scheduling pass: from a :class:`~gpufair.state.model.Snapshot` to what must change.

One pass decides, for one instant ``now`` and nothing else (no clock, no I/O): who owns which
namespace, which pool each GPU pod belongs to, each tenant's metered usage and budget, the fair
shares of every pool, which waiting pods are admitted (their admission gate comes off, with the
pool they were admitted into), and the reclaims of each pool (victims to evict for waiting
pods or for every member of a pod group at once, all chosen from this one instant). Every
decision is
:mod:`gpufair.core`'s (fair share, usage, admission order, preemption victims, placement); this
module gathers the inputs per pool and turns the answers into intents.

Two callers apply the same :class:`Decisions`, each at its own pace: the operator
(:mod:`gpufair.operator.plan` adds statuses and events; :mod:`gpufair.operator.reconciler`
writes) and the simulator (:mod:`gpufair.sim.gpufair_policy`, on a replayed clock). So what
the simulator measures is what the operator decides.

Two rules keep reclaim from oscillating (ARCHITECTURE.md §5):

- a pool with an eviction in flight (a pod of the pool is terminating) starts no new reclaim:
  the GPUs being freed are already spoken for, and a restarted operator sees the terminating
  pods too, so it never repeats an eviction;
- admission serves tenants below their fair share before borrowers, so GPUs freed for a
  reclaiming tenant are not handed back to the tenant they were taken from.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from gpufair.api import names
from gpufair.core import admission, fairshare, placement, preemption, usage
from gpufair.core import gang as gang_fit
from gpufair.core import topology as topo
from gpufair.state import changes, groups, model, occupancy, passcache, rules

# ---------------------------------------------------------------------------------------------
# intents


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """Remove the pod's admission gate; it waited ``waited`` seconds."""

    pod: model.GpuPod
    tenant: str
    pool: str
    waited: float
    node: str | None = None
    """A group member's node in the group's plan (``gpufair.dev/group-plan``); ``None`` for a
    pod admitted on its own, which the extender places wherever it fits."""


@dataclasses.dataclass(frozen=True, slots=True)
class Release:
    """Remove gpufair's gate from a pod gpufair does not queue (its namespace has no tenant).

    The webhook gates every GPU pod while it knows no tenants (before the first pass, or on a
    standby replica); pods of namespaces no tenant owns must not stay behind the gate forever.
    """

    pod: model.GpuPod
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class TenantLabel:
    """Set a namespace's ``gpufair.dev/tenant`` label to its owner (``None``: remove it).

    The ValidatingAdmissionPolicy finds tenant namespaces by this label; the operator keeps it
    from the TenantQuotas, and ownership never comes from the label itself.
    """

    namespace: str
    tenant: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Eviction:
    """Evict ``pod`` (tenant ``tenant``) so that ``for_pod`` of ``preemptor`` can run."""

    pod: model.GpuPod
    tenant: str
    pool: str
    preemptor: str
    for_pod: model.GpuPod
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Decisions:
    """What one pass decided (the intents) and the facts it decided from (for statuses)."""

    now: float
    owners: Mapping[str, str]
    """Tenant of each namespace."""
    conflicts: Mapping[str, tuple[str, ...]]
    """For each tenant, the namespace conflicts it is part of (messages)."""
    tenants: Mapping[str, model.Tenant]
    """The valid tenants (an invalid spec gets nothing)."""
    placed: Mapping[tuple[str, str], tuple[model.GpuPod, ...]]
    """The GPU pods of each (tenant, pool) pair."""
    usages: Mapping[tuple[str, str], usage.Usage]
    """Metered usage of each (tenant, pool) pair at ``now``."""
    exhausted: Mapping[str, bool]
    """Whether each valid tenant's budget of the period is used up."""
    pools: Mapping[str, occupancy.PoolOccupancy]
    shares: Mapping[str, fairshare.PoolShares]
    states: Mapping[str, admission.TenantState]
    """What admission knew of each valid tenant (the webhook's input until the next pass)."""
    admissions: tuple[Admission, ...]
    evictions: tuple[Eviction, ...]
    holds: Mapping[str, str]
    """Why each waiting pod (by uid) stays gated."""
    releases: tuple[Release, ...]
    relabels: tuple[TenantLabel, ...]


def schedule(
    snap: model.Snapshot, *, half_life: float, cache: passcache.PassCache | None = None
) -> Decisions:
    """Decide one pass: own, place, meter, share, admit, reclaim (see the module docstring).

    ``cache`` (kept by the caller from one pass to the next) lets the pass reuse what it
    computed from the same objects before (:mod:`gpufair.state.passcache`); the decisions are
    the same with or without it.
    """
    if cache is None:
        return _schedule(snap, half_life=half_life, cache=passcache.PassCache())
    try:
        return _schedule(snap, half_life=half_life, cache=cache)
    except BaseException:
        cache.clear()  # half-updated answers must not outlive a pass that failed
        raise


def _schedule(snap: model.Snapshot, *, half_life: float, cache: passcache.PassCache) -> Decisions:
    now = snap.now
    # 1. Who owns which namespace, which nodes form which pool, where each pod belongs.
    owners, conflicts = namespace_owners(snap, cache=cache)
    node_pool = occupancy.pools_of_nodes(snap.pools, snap.nodes, cache.occupancy)
    tenants = {name: t for name, t in snap.tenants.items() if t.invalid is None}
    placed = place_pods(snap, owners=owners, tenants=tenants, node_pool=node_pool, cache=cache)
    counts = cache.counts(placed)
    releases = release_unowned(snap, owners=owners)
    relabels = tenant_labels(snap, owners=owners)

    # 2. Meter every (tenant, pool) pair up to now.
    usages = cache.meter(tenants, placed, now=now, half_life=half_life)
    budgets = {name: _budget(tenant, usages, now=now) for name, tenant in tenants.items()}
    exhausted = {name: b is not None and b.exhausted for name, b in budgets.items()}
    blocked = {name for name, b in budgets.items() if b is not None and b.blocks}

    # 3. Per pool: capacity and fair shares; then admission over all pools at once.
    pods_moved, nodes_moved = cache.observe(snap)
    pool_views = occupancy.pool_occupancies(
        snap,
        node_pool=node_pool,
        memo=cache.occupancy,
        pods_moved=pods_moved,
        nodes_moved=nodes_moved,
    )
    shares: dict[str, fairshare.PoolShares] = {}
    for name, view in pool_views.items():
        members = {t: tenants[t] for t in tenants if tenants[t].entitlement(name) is not None}
        shares[name] = _shares(
            view, members, counts, blocked=blocked, unlisted=snap.unlisted_demand, cache=cache
        )
    states = tenant_states(
        tenants, counts=counts, usages=usages, budgets=budgets, now=now, half_life=half_life
    )
    demand = _waiting_demand(counts, snap.unlisted_demand, pools=pool_views)
    admissions, holds, free_after, gangs = _admit(
        pool_views,
        counts=counts,
        states=states,
        shares=shares,
        demand=demand,
        now=now,
        cache=cache,
    )

    # 4. Reclaim, per pool, for tenants below their fair share whose pods still wait.
    evictions: list[Eviction] = []
    for name, view in pool_views.items():
        evictions.extend(
            _reclaim(
                view,
                tenants=tenants,
                placed=placed,
                counts=counts,
                shares=shares[name],
                states=states,
                free=free_after[name],
                holds=holds,
                admitted=any(a.pool == name for a in admissions),
                blocked=blocked,
                protected=snap.blocked,
                demand=demand[name],
                gangs=gangs,
                now=now,
                cache=cache,
            )
        )
    return Decisions(
        now=now,
        owners=owners,
        conflicts=conflicts,
        tenants=tenants,
        placed=placed,
        usages=usages,
        exhausted=exhausted,
        pools=pool_views,
        shares=shares,
        states=states,
        admissions=tuple(admissions),
        evictions=tuple(evictions),
        holds=holds,
        releases=releases,
        relabels=relabels,
    )


# ---------------------------------------------------------------------------------------------
# 1. ownership and membership


def namespace_owners(
    snap: model.Snapshot, *, cache: passcache.PassCache | None = None
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Owner of each namespace, and for each tenant the conflicts it is part of (messages).

    A namespace claimed by several tenants goes to one of them by the same rule every
    component uses (:func:`gpufair.state.rules.namespace_claimants`: a listing beats a
    selector, then the alphabetically first); all claimants get ``NamespaceConflict``.
    With a ``cache``, the answer of the previous pass stands while no tenant's namespaces or
    selector and no namespace object changed.
    """
    if cache is None:
        return _namespace_owners(snap)
    key = tuple((t.name, t.namespaces, t.namespace_selector) for t in snap.tenants.values())
    if (
        cache.owners is None
        or cache.owners_key != key
        or not passcache.same_values(cache.owners_namespaces, snap.namespaces)
    ):
        cache.owners = _namespace_owners(snap)
        cache.owners_key = key
        cache.owners_namespaces = dict(snap.namespaces)
    return cache.owners


def _namespace_owners(
    snap: model.Snapshot,
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    claims: dict[str, tuple[str, ...]] = {}
    names = set(snap.namespaces)
    for tenant in snap.tenants.values():
        names |= tenant.namespaces
    claimed_by = [
        rules.TenantNamespaces(
            tenant=t.name, namespaces=frozenset(t.namespaces), selector=t.namespace_selector
        )
        for t in snap.tenants.values()
    ]
    # Only tenants listing the namespace or selecting by labels can claim it: with 1,000
    # tenants and as many namespaces, asking every tenant about every namespace cost 70 ms.
    listing: dict[str, list[rules.TenantNamespaces]] = {}
    for entry in claimed_by:
        for namespace in entry.namespaces:
            listing.setdefault(namespace, []).append(entry)
    selecting = [entry for entry in claimed_by if entry.selector is not None]
    for namespace in sorted(names):
        known = snap.namespaces.get(namespace)
        claimants = rules.namespace_claimants(
            namespace,
            labels=known.labels if known is not None else None,
            tenants={e.tenant: e for e in (*listing.get(namespace, ()), *selecting)}.values(),
        )
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


def tenant_labels(snap: model.Snapshot, *, owners: Mapping[str, str]) -> tuple[TenantLabel, ...]:
    """Namespaces whose ``gpufair.dev/tenant`` label is not their owner: set it, or remove it
    from a namespace that belongs to no tenant (a label someone else wrote claims nothing)."""
    wanted = []
    for name, namespace in sorted(snap.namespaces.items()):
        owner = owners.get(name)
        if namespace.labels.get(names.TENANT_LABEL) != owner:
            wanted.append(TenantLabel(namespace=name, tenant=owner))
    return tuple(wanted)


def release_unowned(snap: model.Snapshot, *, owners: Mapping[str, str]) -> tuple[Release, ...]:
    """Gated pods in namespaces that belong to no tenant: their gate must come off.

    With knowledge the webhook leaves such pods alone; only a webhook that knew nothing yet
    (before the first pass, or a standby replica) gates them, and no pass would ever admit them:
    admission queues the pods of tenants only. Released, they go to the gpufair scheduler, whose
    extender tells why it cannot place them (no TenantQuota), or places them once a tenant
    claims the namespace. Nothing is judged before the view has synced (the initial listings
    of TenantQuotas and Namespaces are in), and a namespace the view has not seen yet is not
    judged (its labels may match a tenant's selector): their pods stay gated until then.
    """
    if not snap.synced:
        return ()
    return tuple(
        Release(
            pod=pod,
            message=f"namespace {pod.namespace} belongs to no TenantQuota: gpufair does not"
            " queue this pod, its admission gate is removed (it was gated before the operator"
            " knew the tenants); add the namespace to a TenantQuota to get GPUs of a pool",
        )
        for pod in snap.pods
        if pod.state is model.PodState.GATED
        and pod.namespace not in owners
        and pod.namespace in snap.namespaces
    )


def pool_members(
    nodes: Mapping[str, model.Node], node_pool: Mapping[str, str]
) -> dict[str, tuple[model.Node, ...]]:
    """The nodes of each pool (``node_pool`` inverted, nodes in ``nodes``' order); a pool
    without nodes is absent."""
    result: dict[str, list[model.Node]] = {}
    for name, node in nodes.items():
        pool = node_pool.get(name)
        if pool is not None:
            result.setdefault(pool, []).append(node)
    return {pool: tuple(members) for pool, members in result.items()}


def place_pods(
    snap: model.Snapshot,
    *,
    owners: Mapping[str, str],
    tenants: Mapping[str, model.Tenant],
    node_pool: Mapping[str, str],
    cache: passcache.PassCache | None = None,
) -> dict[tuple[str, str], tuple[model.GpuPod, ...]]:
    """The GPU pods of each (tenant, pool) pair.

    A pod on a node belongs to the node's pool (or, when the node left the tenant's pools, the
    pool bind recorded). A pod not on a node belongs to the first of its tenant's pools with a
    node that its ``nodeSelector`` and required node affinity allow, else to the tenant's first
    pool: never to a pool named in an annotation, which a tenant could write.

    Each pool's nodes are looked up in :func:`pool_members` (built once per pass), and each
    (pool, nodeSelector) answer is kept for the pass, since a job's pods share their selector;
    so a waiting pod costs a scan of one pool's nodes at most once per distinct selector instead
    of a scan of every node per pod and pool.

    With a ``cache``, a pod object seen by the previous pass keeps its pair while the owners,
    the tenants' pools, the pool of every node and (for a pod not on a node) every node's
    labels are unchanged; and a pair whose pods are the same objects keeps its tuple, so what
    is computed from it later in the pass can be reused too.
    """
    cache = cache if cache is not None else passcache.PassCache()
    key = (
        dict(owners),
        {name: tuple(p.pool for p in t.pools) for name, t in tenants.items()},
        dict(node_pool),
    )
    moved, labels = cache.observe(snap)
    same_key = cache.place_key == key
    cache.place_key = key
    if cache.fits is None or not same_key or _labels_moved(labels, snap.nodes):
        # The answers of a pool's node labels stand while no node changed pool or labels.
        cache.fits = _pool_fit(snap, node_pool)
    fits = cache.fits

    def fit(pool_name: str, pod: model.GpuPod) -> bool:
        return fits(pool_name, node_selector=pod.node_selector, terms=pod.required_terms)

    def pair_of(pod: model.GpuPod) -> passcache.Pair | None:
        return _pair(pod, owners=owners, tenants=tenants, node_pool=node_pool, fit=fit)

    if moved is not None and same_key and cache.placed_valid:
        placed = _place_changed(snap, moved, labels, cache=cache, pair_of=pair_of)
    else:
        placed = _place_all(snap, cache=cache, pair_of=pair_of)
    cache.placed = placed
    cache.placed_valid = True
    return placed


def _pool_fit(snap: model.Snapshot, node_pool: Mapping[str, str]) -> rules.PoolFit:
    """Whether a pool has a node a selector allows, each answer kept (the pool's nodes listed
    only when first asked)."""
    members: dict[str, tuple[model.Node, ...]] = {}
    nodes = snap.nodes
    node_pool = dict(node_pool)

    def nodes_of(pool: str) -> Iterable[tuple[str, Mapping[str, str]]]:
        if not members:
            members.update(pool_members(nodes, node_pool))
        return ((node.name, node.labels) for node in members.get(pool, ()))

    return rules.PoolFit(nodes_of)


def _place_all(
    snap: model.Snapshot,
    *,
    cache: passcache.PassCache,
    pair_of: Callable[[model.GpuPod], passcache.Pair | None],
) -> dict[passcache.Pair, tuple[model.GpuPod, ...]]:
    """:func:`place_pods` for every pod (a pair whose pods are those of the previous pass
    keeps its tuple)."""
    pairs: dict[str, passcache.Pair | None] = {}
    unbound: set[str] = set()
    result: dict[tuple[str, str], list[model.GpuPod]] = {}
    for pod in snap.pods:
        pair = pair_of(pod)
        pairs[pod.uid] = pair
        if pod.node is None:
            unbound.add(pod.uid)
        if pair is not None:
            result.setdefault(pair, []).append(pod)
    cache.pod_pairs = pairs
    cache.unbound = unbound
    placed: dict[tuple[str, str], tuple[model.GpuPod, ...]] = {}
    for pair, pods in result.items():
        before = cache.placed.get(pair)
        placed[pair] = (
            before if before is not None and passcache.same_items(before, pods) else tuple(pods)
        )
    return placed


def _place_changed(
    snap: model.Snapshot,
    moved: changes.PodChanges,
    labels: changes.Changes | None,
    *,
    cache: passcache.PassCache,
    pair_of: Callable[[model.GpuPod], passcache.Pair | None],
) -> dict[passcache.Pair, tuple[model.GpuPod, ...]]:
    """:func:`place_pods` from the previous pass's answer: only pods that changed (and, when
    a node's labels changed, the pods not on a node) are placed again, and only their pairs
    rebuilt (in the snapshot's order, as :func:`_place_all` would)."""
    redo = set(moved.changed)
    if _labels_moved(labels, snap.nodes):
        redo |= cache.unbound - moved.removed
    pairs, unbound = cache.pod_pairs, cache.unbound
    dirty: set[passcache.Pair] = set()
    for uid in moved.removed | redo:
        old = pairs.pop(uid, None)
        unbound.discard(uid)
        if old is not None:
            dirty.add(old)
    by_uid = {pod.uid: pod for pod in (moved.current(uid) for uid in redo)}
    arrived: dict[passcache.Pair, list[model.GpuPod]] = {}
    for uid, pod in by_uid.items():
        pair = pair_of(pod)
        pairs[uid] = pair
        if pod.node is None:
            unbound.add(uid)
        if pair is not None:
            dirty.add(pair)
            arrived.setdefault(pair, []).append(pod)
    if not dirty:
        return dict(cache.placed)
    placed = dict(cache.placed)
    position = moved.position
    for pair in dirty:
        pods = [pod for pod in placed.get(pair, ()) if pod.uid not in by_uid]
        pods = [pod for pod in pods if pod.uid not in moved.removed]
        pods.extend(arrived.get(pair, ()))
        if pods:
            pods.sort(key=lambda pod: position[pod.uid])
            before = placed.get(pair)
            placed[pair] = (
                before if before is not None and passcache.same_items(before, pods) else tuple(pods)
            )
        else:
            placed.pop(pair, None)
    return {pair: placed[pair] for pair in sorted(placed, key=lambda p: position[placed[p][0].uid])}


def _labels_moved(labels: changes.Changes | None, nodes: Mapping[str, model.Node]) -> bool:
    """Whether a node came, went or changed its labels since the previous pass."""
    if labels is None or labels.removed:
        return True
    return any(
        name not in labels.before or labels.before[name].labels != nodes[name].labels
        for name in labels.changed
    )


def _pair(
    pod: model.GpuPod,
    *,
    owners: Mapping[str, str],
    tenants: Mapping[str, model.Tenant],
    node_pool: Mapping[str, str],
    fit: Callable[..., bool],
) -> passcache.Pair | None:
    """The (tenant, pool) of one pod (:func:`place_pods`), ``None``: none."""
    tenant_name = owners.get(pod.namespace)
    tenant = tenants.get(tenant_name) if tenant_name else None
    if tenant is None or not tenant.pools:
        return None
    own = [p.pool for p in tenant.pools]
    pool: str | None
    if pod.node is not None:
        pool = node_pool.get(pod.node)
        if pool not in own:
            pool = pod.pool_hint if pod.pool_hint in own else None
    else:
        pool = rules.waiting_pool(tenant_pools=own, fits=functools.partial(fit, pod=pod))
    return None if pool is None else (tenant.name, pool)


def _shares(
    view: occupancy.PoolOccupancy,
    members: Mapping[str, model.Tenant],
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    *,
    blocked: set[str],
    unlisted: Mapping[tuple[str, str], Mapping[int, int]],
    cache: passcache.PassCache | None = None,
) -> fairshare.PoolShares:
    """Fair shares of the pool; a tenant stopped by its budget claims no waiting demand.
    ``unlisted``: :attr:`~gpufair.state.model.Snapshot.unlisted_demand`. With a ``cache``, the
    shares of the previous pass stand while the capacity and every claim are the same."""
    pool = view.pool.name
    claimed = []
    for name, tenant in sorted(members.items()):
        entitlement = tenant.entitlement(pool)
        assert entitlement is not None
        pods = counts.get((name, pool), passcache.NO_PODS)
        waiting = (
            0
            if name in blocked
            else pods.gated_gpus + sum(g * n for g, n in unlisted.get((name, pool), {}).items())
        )
        claimed.append(
            (
                name,
                tenant.weight,
                entitlement.guaranteed,
                entitlement.limit,
                entitlement.lendable,
                pods.held,
                waiting,
            )
        )
    key = (view.capacity, tuple(claimed))
    known = cache.shares.get(pool) if cache is not None else None
    if known is not None and known[0] == key:
        return known[1]
    claims = [
        rules.tenant_claim(
            tenant=name,
            weight=weight,
            guaranteed=guaranteed,
            limit=limit,
            lendable=lendable,
            held=held,
            waiting=waiting,
        )
        for name, weight, guaranteed, limit, lendable, held, waiting in claimed
    ]
    result = fairshare.compute(view.capacity, claims)
    if cache is not None:
        cache.shares[pool] = (key, result)
    return result


def _budget(
    tenant: model.Tenant, usages: Mapping[tuple[str, str], usage.Usage], *, now: float
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
    tenants: Mapping[str, model.Tenant],
    *,
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    usages: Mapping[tuple[str, str], usage.Usage],
    budgets: Mapping[str, admission.Budget | None],
    now: float,
    half_life: float,
) -> dict[str, admission.TenantState]:
    """What core admission knows of each tenant (also the webhook's input); ``counts``: of
    each (tenant, pool) pair's pods (:func:`gpufair.state.passcache.count`)."""
    return {
        name: admission.TenantState(
            tenant=name,
            weight=tenant.weight,
            decayed_usage=sum(
                usage.decayed_at(usages[(name, p.pool)], now=now, half_life=half_life)
                for p in tenant.pools
                if (name, p.pool) in usages
            ),
            allocated={
                p.pool: counts.get((name, p.pool), passcache.NO_PODS).held for p in tenant.pools
            },
            limits={p.pool: p.limit for p in tenant.pools},
            budget=budgets.get(name),
            on_limit=tenant.on_limit,
        )
        for name, tenant in tenants.items()
    }


def _waiting(pod: model.GpuPod, tenant: str, pool: str) -> admission.WaitingPod:
    """A gated pod as core admission and preemption see it."""
    return admission.WaitingPod(
        uid=pod.uid,
        tenant=tenant,
        pool=pool,
        gpus=pod.gpus,
        priority=pod.priority,
        created_at=pod.created_at,
        name=pod.key,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Gang:
    """The waiting members of a complete pod group, admitted together or not at all."""

    key: groups.GroupKey
    tenant: str
    pool: str
    members: tuple[model.GpuPod, ...]
    """The group's gated pods, by name (members already admitted are not here)."""

    @property
    def uid(self) -> str:
        """The uid core admission knows the whole group by."""
        return f"group:{self.key.namespace}/{self.key.source}/{self.key.name}"

    @property
    def label(self) -> str:
        """``group train (4 pods of 2 GPUs)``, or ``(3 pods: 8+2+2 GPUs)`` when sizes differ."""
        counts = [pod.gpus for pod in self.members]
        if len(set(counts)) == 1:
            return f"group {self.key.name} ({len(counts)} pods of {counts[0]} GPUs)"
        return f"group {self.key.name} ({len(counts)} pods: {'+'.join(map(str, counts))} GPUs)"

    def waiting(self) -> admission.WaitingPod:
        """The group as one waiting pod of core admission: all its GPUs, its oldest member's
        age and its highest priority, so it takes its place in fair-share order as a whole."""
        return admission.WaitingPod(
            uid=self.uid,
            tenant=self.tenant,
            pool=self.pool,
            gpus=sum(pod.gpus for pod in self.members),
            priority=max(pod.priority for pod in self.members),
            created_at=min(pod.created_at for pod in self.members),
            name=str(self.key),
        )


def _gangs(
    pods: Mapping[str, tuple[str, str, model.GpuPod]],
) -> tuple[list[_Gang], dict[str, str]]:
    """The complete groups whose members wait, and a hold for every gated pod that cannot be
    considered yet (its group incomplete, spread over pools, or its annotations unreadable)."""
    by_key: dict[groups.GroupKey, list[tuple[str, str, model.GpuPod]]] = {}
    holds: dict[str, str] = {}
    for tenant, pool, pod in pods.values():
        if pod.state is not model.PodState.GATED:
            if pod.group is not None and pod.state in (
                model.PodState.PENDING,
                model.PodState.BOUND,
            ):
                by_key.setdefault(pod.group.key, []).append((tenant, pool, pod))
            continue
        if pod.group_error is not None:
            holds[pod.uid] = f"pod group annotations cannot be read: {pod.group_error}"
        elif pod.group is not None:
            by_key.setdefault(pod.group.key, []).append((tenant, pool, pod))
    gangs: list[_Gang] = []
    for key, entries in sorted(by_key.items()):
        size = max(pod.group.size or 0 for _, _, pod in entries if pod.group is not None)
        gated = sorted(
            (entry for entry in entries if entry[2].state is model.PodState.GATED),
            key=lambda entry: entry[2].name,
        )
        if not gated:
            continue
        pools = sorted({pool for _, pool, _ in gated})
        message: str | None = None
        if len(entries) < size:
            message = f"group {key.name} waits: {len(entries)} of {size} members created"
        elif len(pools) > 1:
            message = (
                f"group {key.name} waits: its members would run in different pools"
                f" ({', '.join(pools)}); a group is admitted into one pool"
            )
        if message is not None:
            holds.update({pod.uid: message for _, _, pod in gated})
            continue
        tenant = gated[0][0]
        gangs.append(
            _Gang(
                key=key,
                tenant=tenant,
                pool=pools[0],
                members=tuple(pod for _, _, pod in gated),
            )
        )
    return gangs, holds


def _waiting_demand(
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    unlisted: Mapping[tuple[str, str], Mapping[int, int]],
    *,
    pools: Iterable[str],
) -> dict[str, dict[int, int]]:
    """The pods waiting in each pool by GPU count (gated, or admitted but not bound, and those
    not listed: ``Snapshot.unlisted_demand``): the demand island keeping weighs in admission's
    placement and in reclaim (:func:`gpufair.state.rules.demand_by_size`, as the extender).
    ``counts``: of each pair's pods, in the pairs' order (their ``waiting_sizes``)."""
    sizes: dict[str, list[int]] = {pool: [] for pool in pools}
    for (_, pool), pair_counts in counts.items():
        if pool in sizes:
            sizes[pool].extend(pair_counts.waiting_sizes)
    demand = {pool: rules.demand_by_size(found) for pool, found in sizes.items()}
    for (_, pool), by_size in unlisted.items():
        if pool in demand:
            for size, count in by_size.items():
                demand[pool][size] = demand[pool].get(size, 0) + count
    return demand


def _admit(
    views: Mapping[str, occupancy.PoolOccupancy],
    *,
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    states: Mapping[str, admission.TenantState],
    shares: Mapping[str, fairshare.PoolShares],
    demand: Mapping[str, Mapping[int, int]],
    now: float,
    cache: passcache.PassCache,
) -> tuple[list[Admission], dict[str, str], dict[str, dict[str, frozenset[int]]], list[_Gang]]:
    """Core's admission decision, then a node-fit check: a pod is admitted only when some node
    of its pool can give it a GPU set (pods admitted earlier but not bound are placed first).

    A pod group (``GpuPod.group``) is one candidate of core admission, with all its GPUs: it is
    considered only once every member exists, only when :func:`gpufair.core.gang.fit` finds
    room for every member at once, and then every member is admitted in this pass; otherwise
    none is, and each member's hold says why. A group that does not fit never holds back the
    pods behind it (it is left out before core decides).

    Also returns the free GPUs of each pool's nodes once the admitted-but-unbound pods (earlier
    and now) are placed: what reclaim may count as free.
    """
    pods = {
        pod.uid: (tenant, pool, pod)
        for (tenant, pool), pair_counts in counts.items()
        for pod in pair_counts.active
    }
    gangs, holds = _gangs(pods)
    free_sets = {name: dict(view.free) for name, view in views.items()}
    nodes = {
        name: _PoolFree(view, free_sets[name], demand[name], cache) for name, view in views.items()
    }
    pending = [
        (pool, pod)
        for _, pool, pod in pods.values()
        if pod.state is model.PodState.PENDING and pool in views
    ]
    for pool, pod in sorted(pending, key=lambda item: item[1].created_at):
        nodes[pool].take(pod.gpus)
    # GPUs freed on a node where a termination is in progress are spoken for (a reclaim evicted
    # for a waiting pod): no pod is admitted onto them until the termination is over, else a
    # smaller pod takes the room a reclaim made for a wide one. Reclaim still sees them free.
    withheld = {
        (pool, name): nodes[pool].free[name]
        for pool, view in views.items()
        for name in sorted(view.draining)
        if nodes[pool].free.get(name)
    }
    for pool, name in withheld:
        nodes[pool].remove(name, withheld[pool, name])
    candidates: dict[str, _Gang] = {}
    for gang in gangs:
        if gang.pool not in views:
            continue
        fits = _fit_gang(views[gang.pool], nodes[gang.pool].free, gang)
        if isinstance(fits, gang_fit.GangNoFit):
            holds.update({pod.uid: f"group {gang.key.name}: {fits.reason}" for pod in gang.members})
        else:
            candidates[gang.uid] = gang
    waiting = [
        cache.waiting_pod(pod, (tenant, pool), functools.partial(_waiting, pod, tenant, pool))
        for tenant, pool, pod in pods.values()
        if pod.state is model.PodState.GATED
        and pod.group is None
        and pod.group_error is None
        and pod.uid not in holds
    ]
    cache.forget_waiting(pods)
    waiting.extend(gang.waiting() for gang in candidates.values())
    free = {name: nodes[name].total for name in views}
    decision = admission.decide(
        waiting=waiting,
        tenants=states,
        free=free,
        shares=shares,
    )
    for hold in decision.held:
        held_gang = candidates.get(hold.pod.uid)
        if held_gang is None:
            holds[hold.pod.uid] = hold.message
        else:
            holds.update(
                {pod.uid: f"{held_gang.label}: {hold.message}" for pod in held_gang.members}
            )
    admitted: list[Admission] = []
    for chosen in decision.admit:
        chosen_gang = candidates.get(chosen.uid)
        if chosen_gang is not None:
            admitted.extend(_admit_gang(views, nodes, chosen_gang, holds, now=now))
            continue
        tenant, pool, pod = pods[chosen.uid]
        if nodes[pool].take(pod.gpus):
            admitted.append(
                Admission(pod=pod, tenant=tenant, pool=pool, waited=max(0.0, now - pod.created_at))
            )
        else:
            holds[pod.uid] = (
                f"waiting for {pod.gpus} GPUs on one node of pool {pool}"
                f" (largest free set: {nodes[pool].largest_free()})"
            )
    for pool_nodes in nodes.values():
        pool_nodes.finish()
    for (pool, name), gpus in withheld.items():
        free_sets[pool][name] = gpus
    return admitted, holds, free_sets, gangs


def _fit_gang(
    view: occupancy.PoolOccupancy, free: Mapping[str, frozenset[int]], gang: _Gang
) -> gang_fit.GangPlan | gang_fit.GangNoFit:
    """Where every member of the group would run on the pool's free GPUs, or why it cannot."""
    domains = {node.name: node.labels.get(names.NVLINK_DOMAIN_LABEL) for node in view.nodes}
    rooms = [
        gang_fit.NodeRoom(
            name=name, topology=view.topologies[name], free=gpus, domain=domains.get(name)
        )
        for name, gpus in sorted(free.items())
        if gpus and name in view.topologies
    ]
    return gang_fit.fit(
        [pod.gpus for pod in gang.members],
        rooms,
        mode=view.pool.mode,
        rule=view.pool.rule,
        one_domain=view.pool.one_domain,
    )


def _admit_gang(
    views: Mapping[str, occupancy.PoolOccupancy],
    nodes: Mapping[str, _PoolFree],
    gang: _Gang,
    holds: dict[str, str],
    *,
    now: float,
) -> list[Admission]:
    """Every member of a group core chose, when they still fit after this pass's earlier
    admissions (their GPUs are taken from ``nodes``), each with its node in the plan; else
    none, each with a hold."""
    pool_nodes = nodes[gang.pool]
    plan = _fit_gang(views[gang.pool], pool_nodes.free, gang)
    if isinstance(plan, gang_fit.GangNoFit):
        holds.update({pod.uid: f"group {gang.key.name}: {plan.reason}" for pod in gang.members})
        return []
    for member in plan.placements:
        pool_nodes.remove(member.node, member.gpus)
    return [
        Admission(
            pod=pod,
            tenant=gang.tenant,
            pool=gang.pool,
            waited=max(0.0, now - pod.created_at),
            node=member.node,
        )
        for pod, member in zip(gang.members, plan.placements, strict=True)
    ]


_GroupKey = tuple[topo.NodeTopology, frozenset[int]]
"""Nodes of one topology with the same free GPUs: :func:`placement.choose` answers them alike."""

_Asked = tuple[_GroupKey, int, tuple[tuple[int, int], ...]]
"""A group, a GPU count and the waiting demand that can change the answer
(:func:`placement.relevant_demand`): what one placement answer is kept by."""


class _FreeNodes:
    """A pool's free GPUs per node, grouped by (topology, free set). Nodes alike get the same
    answer from :func:`placement.choose_keeping`, so a placement asks each group once rather
    than each node: at 5,000 nodes a pass had asked 3.7 million times (issue 16). For each size
    asked, the groups that can take it are kept in a heap by (best score, first node by name),
    so a placement costs a heap look-up rather than a walk over every group. Kept current as
    pods are placed, and writes through to the ``free`` mapping it was made from. ``demand``
    is the pool's waiting pods by size, as the extender counts them, so the pass places a pod
    where the extender will."""

    def __init__(
        self,
        view: occupancy.PoolOccupancy,
        free: dict[str, frozenset[int]],
        demand: Mapping[int, int] | None = None,
        cache: passcache.PassCache | None = None,
    ) -> None:
        self._view = view
        self._demand = dict(demand or {})
        self.free = free
        # placement.choose's answers depend on the topology, free set, size, mode and rule
        # alone: kept from pass to pass in the cache, per (mode, rule).
        # Keyed by the part of the demand that can change the answer too (relevant_demand).
        self._answers: dict[_Asked, tuple[int, tuple[int, ...]] | None] = (
            cache.placements.setdefault((view.pool.mode, view.pool.rule), {})
            if cache is not None
            else {}
        )
        self._heaps: dict[int, list[tuple[int, str, int, _GroupKey]]] = {}
        self._pushed = 0
        self._relevant: dict[tuple[topo.NodeTopology, int], tuple[tuple[int, int], ...]] = {}
        """placement.relevant_demand per (topology, size): ``demand`` is fixed for the pass."""
        known = cache.free_groups.get(view.pool.name) if cache is not None else None
        if known is not None and known[0] is view.free:
            self._groups = {key: list(names) for key, names in known[1].items()}
            return
        self._groups = {}
        for name in sorted(free):
            self._groups.setdefault(self._key(name), []).append(name)
        if cache is not None:
            cache.free_groups[view.pool.name] = (
                view.free,
                {key: list(names) for key, names in self._groups.items()},
            )

    def _key(self, name: str) -> _GroupKey:
        return self._view.topologies[name], self.free[name]

    def take(self, gpus: int) -> bool:
        """Place ``gpus`` GPUs on the best node as the extender would (the highest
        :func:`placement.choose_keeping` score, the first node by name among equals); False when no
        node fits."""
        return self.take_where(gpus) is not None

    def take_where(self, gpus: int) -> tuple[str, frozenset[int]] | None:
        """:meth:`take`, telling the node taken and its free GPUs left (``None``: no fit)."""
        best = self._best(gpus)
        if best is None:
            return None
        name, key = best
        chosen = self._answers[self._asked(key, gpus)]
        assert chosen is not None
        left = self.free[name] - frozenset(chosen[1])
        self._move(name, left)
        return name, left

    def _best(self, gpus: int) -> tuple[str, _GroupKey] | None:
        """The first node of the group with the best answer for ``gpus``.

        A heap entry is stale when its group's first node changed since it was pushed. A group
        whose first node was taken has a later first node now, so its true place is behind
        its stale entry: the entry is corrected only when it comes to the top (one push per
        size asked, not one per size on every change). A group that gained an earlier first
        node, or that is new, is pushed at once (:meth:`_move`)."""
        heap = self._heaps.get(gpus)
        if heap is None:
            heap = self._heaps[gpus] = []
            for key in self._groups:
                self._push(key, gpus)
        while heap:
            _, first, _, key = heap[0]
            members = self._groups.get(key)
            if members and members[0] == first:
                return first, key
            heapq.heappop(heap)
            if members:
                self._push(key, gpus)
        return None

    def _push(self, key: _GroupKey, gpus: int) -> None:
        if len(key[1]) < gpus:
            return
        answer = self._answer(key, gpus)
        if answer is None:
            return
        self._pushed += 1
        heapq.heappush(self._heaps[gpus], (-answer[0], self._groups[key][0], self._pushed, key))

    def largest_free(self) -> int:
        """The most free GPUs on one node of the pool."""
        return max((len(available) for _, available in self._groups), default=0)

    def _asked(self, key: _GroupKey, gpus: int) -> _Asked:
        shape = (key[0], gpus)
        relevant = self._relevant.get(shape)
        if relevant is None:
            relevant = self._relevant[shape] = placement.relevant_demand(key[0], gpus, self._demand)
        return key, gpus, relevant

    def _answer(self, key: _GroupKey, gpus: int) -> tuple[int, tuple[int, ...]] | None:
        """Score and GPUs of the best set of ``gpus`` on nodes of this group, ``None``: none."""
        asked = self._asked(key, gpus)
        if asked not in self._answers:
            choice = placement.choose_keeping(
                key[0],
                free=key[1],
                count=gpus,
                demand=self._demand,
                mode=self._view.pool.mode,
                rule=self._view.pool.rule,
            )
            self._answers[asked] = (
                (choice.score, choice.gpus) if isinstance(choice, placement.Choice) else None
            )
        return self._answers[asked]

    def remove(self, name: str, gpus: Iterable[int]) -> None:
        """Take ``gpus`` of node ``name`` (placed by someone else, as a group's plan)."""
        self._move(name, self.free[name] - frozenset(gpus))

    def move(self, name: str, free: frozenset[int]) -> None:
        """Node ``name`` has ``free`` GPUs free from now on."""
        self._move(name, free)

    def _move(self, name: str, free: frozenset[int]) -> None:
        old = self._key(name)
        members = self._groups[old]
        members.remove(name)
        if not members:
            del self._groups[old]
        # The old group's entries (if its first node went) are corrected at the top (_best).
        self.free[name] = free
        new = self._key(name)
        members = self._groups.setdefault(new, [])
        bisect.insort(members, name)
        if members[0] == name:
            self._refresh(new)

    def _refresh(self, key: _GroupKey) -> None:
        """The group is new or has an earlier first node: push its entry for every size."""
        for gpus in self._heaps:
            self._push(key, gpus)


_Op = tuple[object, ...]
"""What admission asked of a pool's free GPUs: ``("take", gpus)``, ``("remove", node, gpus)``
or ``("largest",)``."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """One question admission asked of a pool's free GPUs, and what came of it."""

    op: _Op
    answer: object
    moved: tuple[str, frozenset[int]] | None
    """The node whose free GPUs changed, and its free GPUs after."""
    taken: int
    """GPUs the pool's free total lost."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Replay:
    """A pool's admission placements of a pass: from what (``key``), the steps in order, the
    free total at the start and each node's free GPUs at the end."""

    key: tuple[object, ...]
    steps: tuple[_Step, ...]
    total: int
    final: Mapping[str, frozenset[int]]


class _PoolFree:
    """A pool's free GPUs as admission places pods on them (:class:`_FreeNodes`), answering
    from the previous pass's steps while they are the same.

    The placements depend on the pool's free GPUs per node (the very same ``view.free``
    mapping), its topologies, mode and rule, the waiting demand, and the questions asked in
    order: while all of these are those of the previous pass, each answer is the one given
    then, and nothing is computed. At the first question that differs (or when the free GPUs
    are read), the steps answered so far are applied to a :class:`_FreeNodes` and it takes
    over. In a queue that did not change since the previous pass (every pod re-admitted
    because the watch has not shown the admissions yet, or nothing fits), a pass places no
    pod anew (issue 16)."""

    def __init__(
        self,
        view: occupancy.PoolOccupancy,
        free: dict[str, frozenset[int]],
        demand: Mapping[int, int],
        cache: passcache.PassCache,
    ) -> None:
        self._view, self._free, self._demand, self._cache = view, free, demand, cache
        self._key: tuple[object, ...] = (view.free, view.topologies, view.pool, dict(demand))
        before = cache.replays.get(view.pool.name)
        self._before: _Replay | None = (
            before if isinstance(before, _Replay) and _same_key(before.key, self._key) else None
        )
        self._steps: list[_Step] = []
        self._live: _FreeNodes | None = None
        self._start = (
            self._before.total
            if self._before is not None
            else sum(len(gpus) for gpus in free.values())
        )
        self.total = self._start
        """Free GPUs of the pool now."""

    @property
    def free(self) -> dict[str, frozenset[int]]:
        """Each node's free GPUs now (the mapping given, written through)."""
        return self._nodes().free

    def take(self, gpus: int) -> bool:
        """:meth:`_FreeNodes.take`."""
        op: _Op = ("take", gpus)
        step = self._replayed(op)
        if step is None:
            moved = self._nodes().take_where(gpus)
            step = self._record(op, moved is not None, moved, gpus if moved is not None else 0)
        return bool(step.answer)

    def remove(self, name: str, gpus: Iterable[int]) -> None:
        """:meth:`_FreeNodes.remove`."""
        taken = frozenset(gpus)
        op: _Op = ("remove", name, taken)
        if self._replayed(op) is None:
            nodes = self._nodes()
            before = nodes.free[name]
            nodes.remove(name, taken)
            after = nodes.free[name]
            self._record(op, None, (name, after), len(before) - len(after))

    def largest_free(self) -> int:
        """:meth:`_FreeNodes.largest_free`."""
        op: _Op = ("largest",)
        step = self._replayed(op)
        if step is None:
            step = self._record(op, self._nodes().largest_free(), None, 0)
        answer = step.answer
        assert isinstance(answer, int)
        return answer

    def finish(self) -> None:
        """The pass is done with the pool: its free GPUs are the final ones (the mapping
        given), and the steps are kept for the next pass."""
        if (
            self._live is None
            and self._before is not None
            and len(self._steps) == len(self._before.steps)
        ):
            final = self._before.final
            self._free.clear()
            self._free.update(final)
        else:
            self._nodes()
            final = dict(self._free)
        self._cache.replays[self._view.pool.name] = _Replay(
            key=self._key, steps=tuple(self._steps), total=self._start, final=final
        )

    def _replayed(self, op: _Op) -> _Step | None:
        if self._live is not None or self._before is None:
            return None
        index = len(self._steps)
        if index >= len(self._before.steps) or self._before.steps[index].op != op:
            return None
        step = self._before.steps[index]
        self._steps.append(step)
        self.total -= step.taken
        return step

    def _record(
        self, op: _Op, answer: object, moved: tuple[str, frozenset[int]] | None, taken: int
    ) -> _Step:
        step = _Step(op=op, answer=answer, moved=moved, taken=taken)
        self._steps.append(step)
        self.total -= taken
        return step

    def _nodes(self) -> _FreeNodes:
        """The pool's :class:`_FreeNodes`, made (with the steps so far applied) when first
        needed."""
        if self._live is None:
            self._live = _FreeNodes(self._view, self._free, self._demand, self._cache)
            for step in self._steps:
                if step.moved is not None:
                    self._live.move(*step.moved)
        return self._live


def _same_key(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Whether two :class:`_PoolFree` keys match: equal free GPUs and topologies per node
    (mostly the very same objects: the occupancy memo keeps what no watch event changed), an
    equal pool and equal demand."""
    return _same_mapping(a[0], b[0]) and _same_mapping(a[1], b[1]) and a[2:] == b[2:]


def _same_mapping(a: object, b: object) -> bool:
    if a is b:
        return True
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return False
    return dict(a) == dict(b)


def _reclaim(
    view: occupancy.PoolOccupancy,
    *,
    tenants: Mapping[str, model.Tenant],
    placed: Mapping[tuple[str, str], Sequence[model.GpuPod]],
    counts: Mapping[tuple[str, str], passcache.PairCounts],
    states: Mapping[str, admission.TenantState],
    shares: fairshare.PoolShares,
    free: Mapping[str, frozenset[int]],
    holds: Mapping[str, str],
    admitted: bool,
    blocked: set[str],
    protected: frozenset[str],
    demand: Mapping[int, int],
    gangs: Sequence[_Gang],
    now: float,
    cache: passcache.PassCache,
) -> list[Eviction]:
    """Reclaim in one pool for up to :data:`RECLAIMS_PER_PASS` waiting pods or held pod groups,
    in admission order, each judged with the victims of those before it gone (all from this
    one snapshot); none while an eviction in the pool is still in flight or pods were just
    admitted into it (the freed or free GPUs are already spoken for)."""
    if view.in_flight or admitted:
        return []
    pool = view.pool.name
    members = {name: t for name, t in tenants.items() if t.entitlement(pool) is not None}
    held_groups = _held_groups(gangs, pool=pool, holds=holds, blocked=blocked)
    waiting = sorted(
        [
            *(
                cache.waiting_pod(pod, (name, pool), functools.partial(_waiting, pod, name, pool))
                for name in members
                if name not in blocked
                for pod in counts.get((name, pool), passcache.NO_PODS).active
                if pod.state is model.PodState.GATED and pod.uid in holds and pod.group is None
            ),
            *(group.waiting() for group in held_groups.values()),
        ],
        key=lambda pod: admission.order_key(pod, states),
    )
    if not waiting:
        return []
    allocated = {name: counts.get((name, pool), passcache.NO_PODS).held for name in members}
    policies = {
        name: preemption.Policy(reclaim=t.reclaim, min_runtime_seconds=t.min_runtime_seconds)
        for name, t in members.items()
    }
    running = [
        running_pod
        for name in members
        for running_pod in _running(
            view,
            (name, pool),
            placed.get((name, pool), ()),
            counts.get((name, pool), passcache.NO_PODS),
            protected=protected,
            now=now,
            cache=cache,
        )
    ]
    nodes = {
        name: preemption.NodeGPUs(
            topology=view.topologies[name], free=gpus, spare=view.spare.get(name)
        )
        for name, gpus in free.items()
    }
    members_by_name = {node.name: node for node in view.nodes}
    pods = {pod.uid: pod for name in members for pod in placed.get((name, pool), ())}
    allowed: dict[tuple[frozenset[tuple[str, str]], str, str], frozenset[str]] = {}
    preemptors: list[preemption.Preemptor] = []
    for wanted in waiting:
        group = held_groups.get(wanted.uid)
        asking = (pods[wanted.uid],) if group is None else group.members
        # Pods asking alike (a job's pods, most pods) are allowed onto the same nodes.
        first = asking[0]
        constraints = (
            frozenset(first.node_selector.items()),
            repr(first.required_terms),
            repr(first.tolerations),
        )
        if constraints not in allowed:
            allowed[constraints] = frozenset(
                name for name in nodes if _admits(first, members_by_name[name])
            )
        preemptors.append(
            preemption.Preemptor(
                pods=(wanted,)
                if group is None
                else tuple(_waiting(pod, tenant=group.tenant, pool=pool) for pod in asking),
                nodes=allowed[constraints],
                needs={
                    pod.uid: preemption.Room(
                        cpu_millis=pod.cpu_millis, memory_bytes=pod.memory_bytes
                    )
                    for pod in asking
                },
            )
        )
    served = preemption.reclaim_in_turn(
        preemptors=preemptors,
        running=running,
        nodes=nodes,
        shares=shares,
        allocated=allocated,
        policies=policies,
        now=now,
        mode=view.pool.mode,
        rule=view.pool.rule,
        demand=demand,
        limit=RECLAIMS_PER_PASS,
    )
    groups_by_member = {pod.uid: g for g in held_groups.values() for pod in g.members}
    return [
        Eviction(
            pod=pods[victim.uid],
            tenant=victim.tenant,
            pool=pool,
            preemptor=reclaim.preemptor.pods[0].tenant,
            for_pod=pods[reclaim.preemptor.pods[0].uid],
            message=_eviction_message(
                reclaim,
                victim,
                group=groups_by_member.get(reclaim.preemptor.pods[0].uid),
                pool=pool,
                held=allocated,
                shares=shares,
            ),
        )
        for reclaim in served
        for victim in reclaim.pods
    ]


RECLAIMS_PER_PASS = 16
"""Waiting pods or groups one pass may reclaim for in one pool, all chosen from the same
snapshot in admission order (:func:`gpufair.core.preemption.reclaim_in_turn`)."""


def _eviction_message(
    reclaim: preemption.Reclaim,
    victim: preemption.RunningPod,
    *,
    group: _Gang | None,
    pool: str,
    held: Mapping[str, int],
    shares: fairshare.PoolShares,
) -> str:
    """Why ``victim`` is evicted, as its event and the preemptor's say."""
    wanted = reclaim.preemptor.pods[0]
    tenant = wanted.tenant
    if group is not None:
        needs = f"{group.label} needs room for every pod at once"
    else:
        node, _ = reclaim.placements[wanted.uid]
        needs = f"{wanted.name} needs {wanted.gpus} GPUs on node {node}"
    return (
        f"preempted by gpufair: tenant {tenant} is below its fair share in pool {pool}"
        f" ({held[tenant]} of {shares.share(tenant):g} GPUs) and {needs};"
        f" tenant {victim.tenant} keeps at least {shares.protected(victim.tenant):g} GPUs"
    )


def _held_groups(
    gangs: Sequence[_Gang], *, pool: str, holds: Mapping[str, str], blocked: set[str]
) -> dict[str, _Gang]:
    """The pod groups of the pool held whole (every member created and waiting, none admitted),
    by the uid core admission knows each by: reclaim makes room for a group at once."""
    return {
        gang.uid: gang
        for gang in gangs
        if gang.pool == pool
        and gang.tenant not in blocked
        and all(pod.uid in holds for pod in gang.members)
        and gang.members[0].group is not None
        and len(gang.members) == gang.members[0].group.size
    }


def _running(
    view: occupancy.PoolOccupancy,
    pair: passcache.Pair,
    pods: Sequence[model.GpuPod],
    counts: passcache.PairCounts,
    *,
    protected: frozenset[str],
    now: float,
    cache: passcache.PassCache,
) -> list[preemption.RunningPod]:
    """The pair's bound pods as preemption sees them (kept while nothing they come from
    changed: a pod without a start time starts ``now``)."""
    pool = pair[1]

    def make() -> list[preemption.RunningPod]:
        return [
            preemption.RunningPod(
                uid=pod.uid,
                tenant=pair[0],
                pool=pool,
                node=pod.node,
                gpus=view.indices[pod.uid],
                priority=pod.priority,
                started_at=pod.started_at if pod.started_at is not None else now,
                checkpoint_at=pod.checkpoint_at,
                name=pod.key,
                cpu_millis=pod.cpu_millis,
                memory_bytes=pod.memory_bytes,
            )
            for pod in pods
            if pod.state is model.PodState.BOUND
            and pod.node is not None
            and pod.uid in view.indices
            and pod.uid not in protected
        ]

    key = (view.indices, protected, now if counts.unstarted else None)
    return cache.running(pair, tuple(pods), key, make)


def _admits(pod: model.GpuPod, node: model.Node) -> bool:
    """Whether kube-scheduler's node filters let the waiting pod onto the node."""
    return rules.node_admits(
        node_selector=pod.node_selector,
        terms=pod.required_terms,
        tolerations=pod.tolerations,
        node_name=node.name,
        labels=node.labels,
        taints=node.taints,
    )
