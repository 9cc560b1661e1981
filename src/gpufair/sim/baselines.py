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

These are not gpufair's policy and do not call its admission or preemption decisions; they
only share the engine, the placers and the entitlement used for measuring.
"""

from __future__ import annotations

import dataclasses

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
        cluster = sim.cluster
        blocked: set[int] = set()
        while True:
            best: tuple[float, int, str, int] | None = None
            for tenant, gpus, submit, job_id in self.waiting.heads():
                if gpus in blocked or not self.placer.could_fit(cluster, gpus):
                    continue
                if best is None or (submit, job_id) < best[:2]:
                    best = (submit, job_id, tenant, gpus)
            if best is None:
                return
            _, _, tenant, gpus = best
            parts = self.placer.place(cluster, gpus)
            if parts is None:
                blocked.add(gpus)
                continue
            sim.start(sim.jobs[self.waiting.pop(tenant, gpus)], parts)


@dataclasses.dataclass
class Quota:
    """Kueue-style guaranteed quotas with borrowing and reclaim; topology-blind placement."""

    placer: placers.Placer
    reclaim_interval: float = 60.0
    """Seconds between reclaim attempts while some guaranteed job waits (Kueue retries a
    pending workload on a backoff; this keeps failed attempts from running every event)."""
    name: str = "quota"
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

    def _within_quota(self, sim: engine.Simulation, tenant: str, gpus: int) -> bool:
        return sim.allocated[tenant] + gpus <= sim.tenants[tenant].guaranteed

    def _admit(self, sim: engine.Simulation) -> None:
        cluster = sim.cluster
        blocked: set[int] = set()
        while True:
            best: tuple[bool, float, int, str, int] | None = None
            for tenant, gpus, submit, job_id in self.waiting.heads():
                if gpus in blocked or not self.placer.could_fit(cluster, gpus):
                    continue
                limit = sim.tenants[tenant].limit
                if limit is not None and sim.allocated[tenant] + gpus > limit:
                    continue
                key = (not self._within_quota(sim, tenant, gpus), submit, job_id, tenant, gpus)
                if best is None or key < best:
                    best = key
            if best is None:
                return
            *_, tenant, gpus = best
            parts = self.placer.place(cluster, gpus)
            if parts is None:
                blocked.add(gpus)
                continue
            sim.start(sim.jobs[self.waiting.pop(tenant, gpus)], parts)

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
        if self._next_reclaim <= sim.now:
            self._next_reclaim = sim.now + self.reclaim_interval
            sim.wake_at(self._next_reclaim)
        # Kueue's candidate order: most recently admitted first.
        candidates = sorted(
            (job for job in sim.running.values() if job.tenant in borrowing),
            key=lambda job: (-job.started, -job.job_id),
        )
        for _, job_id, tenant, gpus in heads:
            victims = self._victims(sim, candidates, tenant=tenant, gpus=gpus)
            if victims is None:
                continue
            for victim in victims:
                sim.preempt(victim, self)
            parts = self.placer.place(sim.cluster, gpus)
            if parts is None:  # pragma: no cover - _victims checked the placement
                raise RuntimeError("reclaim made room that placement did not find")
            popped = self.waiting.pop(tenant, gpus)
            assert popped == job_id
            sim.start(sim.jobs[job_id], parts)
            return True
        return False

    def _victims(
        self,
        sim: engine.Simulation,
        candidates: list[engine.Job],
        *,
        tenant: str,
        gpus: int,
    ) -> list[engine.Job] | None:
        """Borrowers' jobs to evict (while their tenant still borrows) until ``gpus`` fit."""
        over = {t: sim.allocated[t] - sim.tenants[t].guaranteed for t in sim.tenants}
        chosen: list[engine.Job] = []
        freed = 0
        cluster = sim.cluster
        for job in candidates:
            if job.tenant == tenant or over[job.tenant] <= 0:
                continue
            chosen.append(job)
            over[job.tenant] -= job.gpus
            freed += job.gpus
            if cluster.total_free + freed < gpus:
                continue
            if _fits_after_release(cluster, chosen, self.placer, gpus):
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
