"""The two baseline policies gpufair is measured against.

* :class:`Default` is stock kube-scheduler: first come first served over all tenants, no
  quotas, no preemption across tenants; a job that does not fit is skipped (it sits in the
  unschedulable queue) and later ones may start; placement is topology-blind.
* :class:`Quota` is Kueue with one ClusterQueue per tenant in one cohort: nominal quota =
  the tenant's guarantee, unlimited borrowing of idle quota, ``reclaimWithinCohort: Any``
  (a tenant under its nominal quota evicts the most recently admitted workloads of borrowing
  tenants until its workload fits) and ``BestEffortFIFO`` queues; workloads that fit in their
  nominal quota are admitted before borrowing ones. Placement is the same topology-blind
  kube-scheduler.

* :class:`Quota` with the :class:`~gpufair.sim.placers.BinPack` placer is Kueue with
  topology-aware scheduling (``kueue-tas``): the same quotas, and a job's pods packed onto one
  machine (or the fewest) at node level.
* :class:`GangBinPack` is a gang scheduler in the style of Volcano (``proportion``, ``gang``,
  ``binpack``, ``reclaim``) and KAI: one queue per tenant whose *deserved* share is the
  weighted max-min share of the capacity over the queues' requests (the same rule as the
  entitlement measured for every policy); the queue furthest below its deserved share goes
  first, FIFO inside a queue; a queue at or above its deserved share admits nothing more; a
  whole job starts or none of it; placement is :class:`~gpufair.sim.placers.BinPack`; a queue
  below its deserved share reclaims from queues above theirs, most recently started jobs first.

These are not gpufair's policy and do not call its admission or preemption decisions; they
only share the engine, the placers and the entitlement used for measuring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from gpufair.sim import cluster as cluster_model
from gpufair.sim import engine, placers, queues

MAX_RECLAIMS_PER_PASS = 16
"""Reclaims per pass; the rest wait for the next attempt (``reclaim_interval`` later)."""


@dataclasses.dataclass
class Default:
    """FCFS over all tenants, skip what does not fit, topology-blind placement."""

    placer: placers.Placer
    name: str = "default"
    waiting: queues.WaitingJobs = dataclasses.field(default_factory=queues.WaitingJobs)

    def enqueue(self, job: engine.Job) -> None:
        self.waiting.push(job)

    def schedule(self, sim: engine.Simulation) -> None:
        _start_best(sim, self.waiting, self.placer, rank=lambda *_: 0.0)


@dataclasses.dataclass
class _Reclaiming:
    """What the quota and gang baselines share: admit by rank, then up to
    :data:`MAX_RECLAIMS_PER_PASS` reclaims every ``reclaim_interval`` while jobs wait."""

    placer: placers.Placer
    reclaim_interval: float = 60.0
    """Seconds between reclaim attempts while some job waits (Kueue retries a pending workload
    on a backoff; this keeps failed attempts from running every event)."""
    name: str = ""
    waiting: queues.WaitingJobs = dataclasses.field(default_factory=queues.WaitingJobs)
    _next_reclaim: float = 0.0

    def enqueue(self, job: engine.Job) -> None:
        self.waiting.push(job)

    def schedule(self, sim: engine.Simulation) -> None:
        self._admit(sim)
        if self.waiting.count and sim.now >= self._next_reclaim:
            for _ in range(MAX_RECLAIMS_PER_PASS):
                if not self._reclaim(sim):
                    break
                self._admit(sim)

    def _admit(self, sim: engine.Simulation) -> None:
        _start_best(
            sim, self.waiting, self.placer, rank=lambda tenant, gpus: self._rank(sim, tenant, gpus)
        )

    def _rank(self, sim: engine.Simulation, tenant: str, gpus: int) -> float | None:
        """Admission rank of a tenant's waiting job (lower first), ``None``: not now."""
        raise NotImplementedError

    def _reclaim(self, sim: engine.Simulation) -> bool:
        raise NotImplementedError

    def _evict_for_first(
        self,
        sim: engine.Simulation,
        heads: Iterable[tuple[int, str, int]],
        victims_for: Callable[[str, int], list[engine.Job] | None],
    ) -> bool:
        """Evict the victims of the first of ``heads`` (job id, tenant, GPUs) that has some, and
        start that job; False when none has. Schedules the next attempt."""
        if self._next_reclaim <= sim.now:
            self._next_reclaim = sim.now + self.reclaim_interval
            sim.wake_at(self._next_reclaim)
        for job_id, tenant, gpus in heads:
            victims = victims_for(tenant, gpus)
            if victims is None:
                continue
            for victim in victims:
                sim.preempt(victim, self)
            parts = self.placer.place(sim.cluster, gpus)
            if parts is None:  # pragma: no cover - the victims were checked to make room
                raise RuntimeError("reclaim made room that placement did not find")
            popped = self.waiting.pop(tenant, gpus)
            assert popped == job_id
            sim.start(sim.jobs[job_id], parts)
            return True
        return False


@dataclasses.dataclass
class Quota(_Reclaiming):
    """Kueue-style guaranteed quotas with borrowing and reclaim; topology-blind placement."""

    name: str = "quota"

    def _within_quota(self, sim: engine.Simulation, tenant: str, gpus: int) -> bool:
        return sim.allocated[tenant] + gpus <= sim.tenants[tenant].guaranteed

    def _rank(self, sim: engine.Simulation, tenant: str, gpus: int) -> float | None:
        if not _within_limit(sim, tenant, gpus):
            return None
        return float(not self._within_quota(sim, tenant, gpus))

    def _reclaim(self, sim: engine.Simulation) -> bool:
        """Evict borrowers for the oldest waiting job that fits its tenant's nominal quota."""
        borrowing = {t for t in sim.tenants if sim.allocated[t] > sim.tenants[t].guaranteed}
        if not borrowing:
            return False
        heads = sorted(
            (submit, job_id, tenant, gpus)
            for tenant, gpus, submit, job_id in self.waiting.heads()
            if self._within_quota(sim, tenant, gpus)
        )
        if not heads:
            return False
        # Kueue's candidate order: most recently admitted first.
        candidates = sorted(
            (job for job in sim.running.values() if job.tenant in borrowing),
            key=lambda job: (-job.started, -job.job_id),
        )
        over = {t: float(sim.allocated[t] - sim.tenants[t].guaranteed) for t in sim.tenants}
        return self._evict_for_first(
            sim,
            ((job_id, tenant, gpus) for _, job_id, tenant, gpus in heads),
            lambda tenant, gpus: _victims_above(
                sim, candidates, over, self.placer, tenant=tenant, gpus=gpus, keep_floor=False
            ),
        )


@dataclasses.dataclass
class GangBinPack(_Reclaiming):
    """Volcano/KAI style: deserved shares per queue, gang admission, bin-pack, reclaim."""

    name: str = "gang-binpack"

    def _rank(self, sim: engine.Simulation, tenant: str, gpus: int) -> float | None:
        deserved = sim.shares.share(tenant)
        if sim.allocated[tenant] >= deserved:  # Volcano's "overused" queue
            return None
        if not _within_limit(sim, tenant, gpus):
            return None
        return sim.allocated[tenant] / deserved

    def _reclaim(self, sim: engine.Simulation) -> bool:
        """Evict from queues above their deserved share for the starved queue's oldest job."""
        shares = sim.shares
        over = {t: sim.allocated[t] - shares.share(t) for t in sim.tenants}
        if not any(value > 0 for value in over.values()):
            return False
        heads = sorted(
            (sim.allocated[tenant] / shares.share(tenant), submit, job_id, tenant, gpus)
            for tenant, gpus, submit, job_id in self.waiting.heads()
            if sim.allocated[tenant] + gpus <= shares.share(tenant)
        )
        if not heads:
            return False
        candidates = sorted(
            (job for job in sim.running.values() if over[job.tenant] > 0),
            key=lambda job: (-job.started, -job.job_id),
        )
        return self._evict_for_first(
            sim,
            ((job_id, tenant, gpus) for *_, job_id, tenant, gpus in heads),
            lambda tenant, gpus: _victims_above(
                sim, candidates, over, self.placer, tenant=tenant, gpus=gpus, keep_floor=True
            ),
        )


def _within_limit(sim: engine.Simulation, tenant: str, gpus: int) -> bool:
    limit = sim.tenants[tenant].limit
    return limit is None or sim.allocated[tenant] + gpus <= limit


def _start_best(
    sim: engine.Simulation,
    waiting: queues.WaitingJobs,
    placer: placers.Placer,
    *,
    rank: Callable[[str, int], float | None],
) -> None:
    """Start waiting jobs, lowest ``rank`` first, then the oldest, until none fits: a size the
    placer cannot place now is skipped for the rest of the pass; ``rank`` ``None`` skips."""
    cluster = sim.cluster
    blocked: set[int] = set()
    while True:
        best: tuple[float, float, int, str, int] | None = None
        for tenant, gpus, submit, job_id in waiting.heads():
            if gpus in blocked or not placer.could_fit(cluster, gpus):
                continue
            order = rank(tenant, gpus)
            if order is None:
                continue
            key = (order, submit, job_id, tenant, gpus)
            if best is None or key < best:
                best = key
        if best is None:
            return
        *_, tenant, gpus = best
        parts = placer.place(cluster, gpus)
        if parts is None:
            blocked.add(gpus)
            continue
        sim.start(sim.jobs[waiting.pop(tenant, gpus)], parts)


def _victims_above(
    sim: engine.Simulation,
    candidates: list[engine.Job],
    over: dict[str, float],
    placer: placers.Placer,
    *,
    tenant: str,
    gpus: int,
    keep_floor: bool,
) -> list[engine.Job] | None:
    """Jobs of other tenants, in ``candidates`` order, while their tenant is ``over`` its floor
    (guarantee or deserved share), until ``gpus`` fit; ``None`` if they never do. With
    ``keep_floor`` no victim takes its tenant below the floor (Volcano's reclaimable check);
    without, the last victim may (Kueue evicts any workload of a borrowing queue)."""
    over = dict(over)
    chosen: list[engine.Job] = []
    freed = 0
    cluster = sim.cluster
    for job in candidates:
        if job.tenant == tenant or over[job.tenant] < (job.gpus if keep_floor else 1):
            continue
        chosen.append(job)
        over[job.tenant] -= job.gpus
        freed += job.gpus
        if cluster.total_free + freed < gpus:
            continue
        if _fits_after_release(cluster, chosen, placer, gpus):
            return chosen
    return None


def _fits_after_release(
    cluster: cluster_model.Cluster,
    victims: list[engine.Job],
    placer: placers.Placer,
    gpus: int,
) -> bool:
    """Would ``gpus`` fit if ``victims`` released their GPUs? (What-if, undone before return.)"""
    released = [part for job in victims if job.placement for part in job.placement.parts]
    cluster.give_back(released)
    try:
        return placer.place(cluster, gpus) is not None
    finally:
        cluster.take(released)
