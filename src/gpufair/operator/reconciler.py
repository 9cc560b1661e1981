"""One reconcile pass, applied: snapshot the store, plan, then write what the plan says.

Called by the leader's reconcile loop in :mod:`.handlers`, on every change and at least every
``tick_seconds``. The order of writes matters for correctness across restarts:

1. statuses first (they persist usage up to ``now``; only after they are written are departed
   pods forgotten, so their last seconds cannot be lost by a failed write);
2. gate removals (each stamps ``gpufair.dev/admitted-at``), admissions and releases of pods
   whose namespace belongs to no tenant;
3. evictions, each victim set all or nothing after a dry run of every eviction in it (a 429
   from a disruption budget parks the victim for ``eviction_retry_seconds``);
4. updates of unschedulable pods whose tenant has room again (:mod:`.retries`);
5. events and metrics (those of admissions and evictions right after each act succeeded,
   once per pod however often a pass repeats the act).

Failures of single writes are logged and counted, never raised: the next pass recomputes from
the cluster and tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gpufair.api import names
from gpufair.k8s import writes
from gpufair.operator import (
    intents,
    metrics,
    objects,
    plan,
    retries,
    settings,
    statuses,
    store,
    webhook,
)
from gpufair.state import groups, model, occupancy, scheduling

logger = logging.getLogger(__name__)

EventSink = Callable[[intents.Event], None]


class Writer(Protocol):
    """The API writes a pass needs (:class:`gpufair.k8s.writes.ClusterWriter`, or a fake)."""

    async def patch_status(self, *, plural: str, name: str, status: Any) -> None: ...

    async def admit(
        self,
        *,
        namespace: str,
        name: str,
        admitted_at: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool: ...

    async def evict(
        self, *, namespace: str, name: str, uid: str, dry_run: bool = False
    ) -> writes.EvictionOutcome: ...

    async def label_namespace(self, *, namespace: str, tenant: str | None) -> None: ...

    async def nudge(self, *, namespace: str, name: str, at: str) -> None: ...


class Reconciler:
    """Plans and applies passes for one operator process (the leader)."""

    def __init__(
        self,
        *,
        cluster: store.ClusterStore,
        writer: Writer,
        events: EventSink,
        config: settings.OperatorSettings,
    ) -> None:
        self.cluster = cluster
        self.writer = writer
        self.events = events
        self.config = config
        self.last: plan.Plan | None = None
        self.published: tuple[plan.Plan, webhook.PassFacts] | None = None
        """The last pass and what the webhook needs of it, replaced in one assignment (the
        webhook reads both from its own threads)."""
        self._lock = asyncio.Lock()
        self._generations: dict[str, int] = {}
        """The spec generation each quota's status was last written for."""
        self._cache = plan.PlanCache()
        """What passes reuse from the previous one (objects the watch did not replace)."""
        self._written: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        """Each status last written (usage left out) and when."""
        self._contents: dict[tuple[str, str], object] = {}
        """What each quota status last written showed apart from usage (:func:`_content`)."""
        self._told: dict[str, str] = {}
        """The hold message last posted on each waiting pod (one event per change of reason)."""
        self._rooms: dict[tuple[str, str], retries.Room] = {}
        """Each (tenant, pool)'s room after the last pass (:mod:`.retries`)."""
        self._reported: set[tuple[str, str]] = set()
        """(act, pod uid) of admissions and evictions already reported: a pass repeating an
        act the watch has not shown yet (after an outage) reports it no second time."""

    async def run_once(self, *, now: float) -> plan.Plan:
        """One pass; passes never overlap (a second caller waits for the first)."""
        async with self._lock:
            return await self._run(now=now)

    async def _run(self, *, now: float) -> plan.Plan:
        with metrics.RECONCILE_DURATION.time():
            snap = self.cluster.take_snapshot(now=now)
            decided = plan.plan(snap, half_life=self.config.half_life_seconds, cache=self._cache)
            written = await self._write_statuses(decided)
            if written:
                self.cluster.metered(up_to=decided.now)
            await self._admit(decided)
            await self._release(decided)
            await self._evict(decided)
            await self._retry_unschedulable(decided)
            for event in decided.events:
                self.events(event)
            self._tell_why_pods_wait(decided)
            record_metrics(decided, previous=self.last)
            await self._label_namespaces(decided)  # last: nothing else in the pass waits on it
        self.last = decided
        self.published = publication(snap, decided, memo=self._cache.scheduling.occupancy)
        return decided

    async def _write_statuses(self, decided: plan.Plan) -> bool:
        """Write each status that changed, or whose usage is older than the status interval.

        Skipping a write loses nothing: the next pass meters again from the persisted
        ``asOf``. Only departed pods must be covered by a write before they are forgotten, so
        while there are any, every quota is written. Returns whether all quota writes worked.
        """
        force = bool(self.cluster.departed)
        ok = True
        # Quotas whose spec changed since their status was last written go first: a quota
        # edit shows in its status without waiting for a thousand others to be compared.
        edited = sorted(
            decided.tenants.values(),
            key=lambda t: self._generations.get(t.name) == t.observed_generation,
        )
        for tenant in edited:
            key = (names.TENANT_QUOTA_PLURAL, tenant.name)
            content = _content(tenant)
            if not force and self._unchanged(key, content, now=decided.now):
                continue  # not serialized: with a thousand quotas that was most of the writing
            status = objects.tenant_status(tenant)
            if not force and not self._due(key, status, now=decided.now):
                continue
            try:
                await self.writer.patch_status(
                    plural=names.TENANT_QUOTA_PLURAL, name=tenant.name, status=status
                )
            except Exception:
                ok = False
                metrics.RECONCILE_ERRORS.labels(stage="tenant-status").inc()
                logger.exception("writing the status of TenantQuota %s failed", tenant.name)
            else:
                self._written[key] = (_without_usage(status), decided.now)
                self._contents[key] = content
                self._generations[tenant.name] = tenant.observed_generation
                self.cluster.record_tenant(tenant)
        for pool in decided.pools.values():
            status = objects.pool_status(pool)
            key = (names.GPU_POOL_PLURAL, pool.name)
            if not self._due(key, status, now=decided.now):
                continue
            try:
                await self.writer.patch_status(
                    plural=names.GPU_POOL_PLURAL, name=pool.name, status=status
                )
            except Exception:
                metrics.RECONCILE_ERRORS.labels(stage="pool-status").inc()
                logger.exception("writing the status of GPUPool %s failed", pool.name)
            else:
                self._written[key] = (_without_usage(status), decided.now)
                self.cluster.record_pool(pool)
        return ok

    def _unchanged(self, key: tuple[str, str], content: object, *, now: float) -> bool:
        """Whether the quota's status, usage aside, is the one last written (:func:`_content`)
        and not yet due again: the write is skipped without serializing it."""
        last = self._written.get(key)
        return (
            last is not None
            and self._contents.get(key) == content
            and now - last[1] < self.config.status_interval_seconds
        )

    def _due(self, key: tuple[str, str], status: Mapping[str, Any], *, now: float) -> bool:
        last = self._written.get(key)
        return (
            last is None
            or last[0] != _without_usage(status)
            or now - last[1] >= self.config.status_interval_seconds
        )

    async def _admit(self, decided: plan.Plan) -> None:
        """Remove the gates; each admission is reported (event, metrics, log) once, after the
        write succeeded."""
        stamp = objects.format_time(decided.now)
        for admitted in decided.admissions:
            pod = admitted.pod
            notes = groups.plan_annotations(admitted.node) if admitted.node is not None else {}
            try:
                done = await self.writer.admit(
                    namespace=pod.namespace, name=pod.name, admitted_at=stamp, annotations=notes
                )
            except Exception:
                metrics.RECONCILE_ERRORS.labels(stage="admit").inc()
                logger.exception("removing the admission gate of %s failed", pod.key)
                continue
            if not done or not self._first_report("admit", pod.uid):
                continue
            metrics.ADMISSIONS.labels(admitted.tenant, admitted.pool).inc()
            metrics.QUEUE_WAIT.labels(admitted.tenant, admitted.pool).observe(admitted.waited)
            for event in statuses.admission_events([admitted]):
                self.events(event)
            logger.info(
                "admitted %s (%d GPUs) to pool %s for tenant %s after %.0fs",
                pod.key,
                pod.gpus,
                admitted.pool,
                admitted.tenant,
                admitted.waited,
            )

    async def _retry_unschedulable(self, decided: plan.Plan) -> None:
        """Update the unschedulable pods whose tenant's room in their pool grew (a limit
        raised, a budget reopened, GPUs freed): kube-scheduler tries them again now instead of
        at its periodic flush."""
        rooms = retries.rooms(decided)
        chosen = retries.to_retry(
            self.cluster.pods.values(),
            pod_pools=decided.pod_pools,
            before=self._rooms,
            now=rooms,
        )
        self._rooms = rooms
        stamp = objects.format_time(decided.now)
        for pod in chosen:
            try:
                await self.writer.nudge(namespace=pod.namespace, name=pod.name, at=stamp)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(stage="retry").inc()
                logger.exception("asking kube-scheduler to retry %s failed", pod.key)
                continue
            logger.info("asked kube-scheduler to retry %s: its tenant has room again", pod.key)

    def _first_report(self, act: str, uid: str) -> bool:
        """Whether ``act`` on the pod is reported now (not before); forgets departed pods."""
        key = (act, uid)
        if key in self._reported:
            return False
        self._reported.add(key)
        if len(self._reported) > 2 * len(self.cluster.pods) + 1024:
            self._reported = {k for k in self._reported if k[1] in self.cluster.pods}
        return True

    async def _release(self, decided: plan.Plan) -> None:
        """Remove the gate from pods of namespaces without a tenant (no admission metrics)."""
        stamp = objects.format_time(decided.now)
        for released in decided.releases:
            pod = released.pod
            try:
                await self.writer.admit(namespace=pod.namespace, name=pod.name, admitted_at=stamp)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(stage="release").inc()
                logger.exception("removing the admission gate of %s failed", pod.key)
                continue
            if not self._first_report("release", pod.uid):
                continue
            for event in statuses.release_events([released]):
                self.events(event)
            logger.info("released %s: %s", pod.key, released.message)

    async def _label_namespaces(self, decided: plan.Plan) -> None:
        """Keep ``gpufair.dev/tenant`` on each namespace equal to its owner."""
        for change in decided.relabels:
            try:
                await self.writer.label_namespace(namespace=change.namespace, tenant=change.tenant)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(stage="tenant-label").inc()
                logger.exception("labelling namespace %s failed", change.namespace)
                continue
            logger.info("namespace %s: %s=%s", change.namespace, names.TENANT_LABEL, change.tenant)

    async def _evict(self, decided: plan.Plan) -> None:
        """Evict each victim set all or nothing: every eviction of the set is tried as a dry
        run first (``dryRun: [All]``, budgets included), and only if all would go through are
        they made. A refusal parks the refused victim for ``eviction_retry_seconds`` and evicts
        nobody (the waiting pod would not fit anyway); a victim already gone means the pass
        decided on old facts, and the next one decides again. ``Preempted`` events and metrics
        follow each eviction that happened, once."""
        for victims in _victim_sets(decided.evictions):
            if await self._all_would_go(victims, now=decided.now):
                for eviction in victims:
                    if not await self._evict_one(eviction, now=decided.now, dry_run=False):
                        break

    async def _all_would_go(self, victims: Sequence[scheduling.Eviction], *, now: float) -> bool:
        for eviction in victims:
            if not await self._evict_one(eviction, now=now, dry_run=True):
                return False
        return True

    async def _evict_one(self, eviction: scheduling.Eviction, *, now: float, dry_run: bool) -> bool:
        """One eviction (or its dry run); True when it went (or would go) through."""
        pod = eviction.pod
        outcome = await self.writer.evict(
            namespace=pod.namespace, name=pod.name, uid=pod.uid, dry_run=dry_run
        )
        if outcome is writes.EvictionOutcome.EVICTED:
            if not dry_run and self._first_report("evict", pod.uid):
                metrics.PREEMPTIONS.labels(eviction.tenant, eviction.pool, "Reclaim").inc()
                for event in statuses.eviction_events([eviction]):
                    self.events(event)
                logger.info("evicted %s: %s", pod.key, eviction.message)
            return True
        if outcome is writes.EvictionOutcome.GONE:
            return False
        metrics.EVICTIONS_REFUSED.labels(eviction.tenant, eviction.pool, outcome).inc()
        self.cluster.block(pod.uid, until=now + self.config.eviction_retry_seconds)
        self.events(
            intents.Event(
                target=intents.ObjectRef.pod(pod),
                type=intents.EventType.WARNING,
                reason=intents.Reason.EVICTION_REFUSED,
                message=f"eviction for tenant {eviction.preemptor} refused ({outcome});"
                f" {'no pod of the set is evicted; ' if dry_run else ''}"
                f"retrying in {self.config.eviction_retry_seconds:.0f}s",
            )
        )
        return False

    def _tell_why_pods_wait(self, decided: plan.Plan) -> None:
        """A ``Waiting`` event on a gated pod whenever the reason it waits changes, so that
        ``kubectl describe pod`` says why it is still gated."""
        pods = {pod.uid: pod for pod in self.cluster.pods.values()}
        for uid, message in decided.holds.items():
            pod = pods.get(uid)
            if pod is None or self._told.get(uid) == message:
                continue
            self._told[uid] = message
            self.events(
                intents.Event(
                    target=intents.ObjectRef.pod(pod),
                    type=intents.EventType.NORMAL,
                    reason=intents.Reason.WAITING,
                    message=message,
                )
            )
        for uid in [uid for uid in self._told if uid not in decided.holds]:
            del self._told[uid]


def publication(
    snap: model.Snapshot, decided: plan.Plan, *, memo: occupancy.Memo | None = None
) -> tuple[plan.Plan, webhook.PassFacts]:
    """A pass as the webhook reads it (:attr:`Reconciler.published`); ``memo``: the pass's
    pool-of-node answers (:func:`gpufair.state.occupancy.pools_of_nodes`)."""
    return decided, webhook.pass_facts(
        snap.pods,
        pod_pools=decided.pod_pools,
        nodes=snap.nodes,
        node_pool=occupancy.pools_of_nodes(snap.pools, snap.nodes, memo),
    )


def _victim_sets(evictions: Sequence[scheduling.Eviction]) -> list[list[scheduling.Eviction]]:
    """The plan's evictions grouped by the pod they make room for, in the plan's order."""
    sets: dict[tuple[str, str], list[scheduling.Eviction]] = {}
    for eviction in evictions:
        sets.setdefault((eviction.pool, eviction.for_pod.uid), []).append(eviction)
    return list(sets.values())


def _content(status: intents.TenantStatus) -> object:
    """The parts of a quota's status intent that its written status shows apart from the
    usage figures (:func:`_without_usage`; ``objects.tenant_status`` writes nothing else but
    sums of these): equal contents write equal statuses, usage aside."""
    return (
        status.observed_generation,
        status.conditions,
        tuple(
            (
                p.pool,
                p.allocated,
                p.guaranteed,
                p.fair_share,
                p.borrowed,
                p.waiting,
                p.waiting_gpus,
                p.pending,
                p.pending_gpus,
                p.demand,
            )
            for p in status.pools
        ),
    )


def _without_usage(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status minus the figures that move every second (usage and budget use)."""
    result = {key: value for key, value in status.items() if key not in ("usage", "budget")}
    if "pools" in result:
        result["pools"] = [
            {key: value for key, value in entry.items() if key != "usage"}
            for entry in result["pools"]
        ]
    return result


def record_metrics(decided: plan.Plan, *, previous: plan.Plan | None) -> None:
    """Rewrite the gauges from the plan; count the GPU-seconds charged since the last pass."""
    for gauge in (*metrics.PER_TENANT_POOL_GAUGES, *metrics.PER_POOL_GAUGES):
        gauge.clear()
    metrics.TENANT_BUDGET_USED.clear()
    metrics.TENANT_BUDGET.clear()
    for tenant in decided.tenants.values():
        if tenant.budget_gpu_hours is not None:
            metrics.TENANT_BUDGET.labels(tenant.name).set(tenant.budget_gpu_hours)
            metrics.TENANT_BUDGET_USED.labels(tenant.name).set(tenant.budget_used_gpu_hours)
        for entry in tenant.pools:
            labels = (tenant.name, entry.pool)
            metrics.TENANT_ALLOCATED.labels(*labels).set(entry.allocated)
            metrics.TENANT_GUARANTEED.labels(*labels).set(entry.guaranteed)
            capacity = decided.pools[entry.pool].capacity if entry.pool in decided.pools else 0
            metrics.TENANT_LIMIT.labels(*labels).set(
                entry.limit if entry.limit is not None else capacity
            )
            metrics.TENANT_FAIR_SHARE.labels(*labels).set(entry.fair_share)
            metrics.TENANT_BORROWED.labels(*labels).set(entry.borrowed)
            metrics.TENANT_WAITING.labels(*labels).set(entry.waiting + entry.pending)
            metrics.TENANT_DECAYED_USAGE.labels(*labels).set(entry.decayed_now)
            before = _previous_usage(previous, tenant.name, entry.pool)
            if before is not None:
                added = entry.usage.gpu_seconds - before
                if added > 0:
                    metrics.GPU_SECONDS.labels(*labels).inc(added)
    for pool in decided.pools.values():
        metrics.POOL_CAPACITY.labels(pool.name).set(pool.capacity)
        metrics.POOL_FREE.labels(pool.name).set(pool.free)
        metrics.POOL_LARGEST_FREE_ISLAND.labels(pool.name).set(pool.largest_free_island)
        metrics.POOL_FRAGMENTATION.labels(pool.name).set(pool.fragmentation)
        metrics.POOL_NODES.labels(pool.name, "true").set(pool.schedulable_nodes)
        metrics.POOL_NODES.labels(pool.name, "false").set(pool.nodes - pool.schedulable_nodes)


def _previous_usage(previous: plan.Plan | None, tenant: str, pool: str) -> float | None:
    if previous is None or tenant not in previous.tenants:
        return None
    for entry in previous.tenants[tenant].pools:
        if entry.pool == pool:
            return entry.usage.gpu_seconds
    return None
