"""gpufair's policy on the replayed clock: the operator's own scheduling pass, fed by the replay.

This module decides nothing. Per pass it shows the cluster to the pass the operator runs
(:func:`gpufair.state.scheduling.schedule`) as the operator's store would hold it
(:mod:`gpufair.state.model`: one node per machine, one GPU pod per pod of a job, one tenant per
trace tenant with a namespace of its own, one pool), and applies the pass's intents as the
cluster would:

- **admissions**: the gate comes off and the scheduler places the job at once by the
  extender's rule (:class:`~gpufair.sim.placers.TopologyAware`: ``core.placement`` on every
  machine kind, best score);
- **evictions**: the victim keeps its GPUs, and runs, for its grace period (``grace_period``,
  Kubernetes' default 30 s) as a terminating pod, so the pass starts no other reclaim in the
  pool meanwhile (as in the operator); then it stops, keeps its work up to its last checkpoint
  and is queued again at its submit time.

Cadence, as the operator's: a pass after every batch of simultaneous events (its watch-triggered
pass), ``debounce`` seconds after a pass that started jobs (the pass their bind events
trigger), at the end of every grace period, and every ``reclaim_interval`` seconds while a job
waits and others run (the operator's tick is 5 s; the replay's default, 60 s, keeps a 108-day
replay quick). A pass with nothing waiting and nothing terminating could decide nothing and is
skipped; the next pass meters the skipped time exactly (usage accrues over each pod's held
interval, whenever it is counted: pods that finished meanwhile are shown once as finished).

Jobs are pods: a job of up to one machine is one pod; a wider job is one pod per machine-full,
declared a pod group (``gpufair.dev/pod-group``), which the pass admits all or nothing. A
group's pods are protected from eviction as a PodDisruptionBudget covering the whole job would
protect them (``Snapshot.blocked``): evicting one pod of a gang stops all of its machines.

The one liberty taken: a pass is shown, of each (tenant, GPU count) queue, only the oldest
jobs it could act on (as many as fit in the free GPUs, plus as many as one pass reclaims for),
and the pods the rest wait for as ``Snapshot.unlisted_demand``, so the fair shares are those
of the whole queue. The pass admits and reclaims for a queue's jobs oldest first, never more
than fit and never for more than :data:`~gpufair.state.scheduling.RECLAIMS_PER_PASS`, so it
decides the same; a property test (``tests/sim/test_caches.py``) checks that against the whole
queue at every pass.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
from collections.abc import Mapping

from gpufair.api import names
from gpufair.core import policy as core_policy
from gpufair.core import usage
from gpufair.sim import engine, placers, queues
from gpufair.state import groups, model, passcache, scheduling

POOL = "sim"
"""The simulated cluster is one GPU pool."""

POOL_LABEL = "gpufair.dev/sim-pool"
"""The node label the simulated pool selects its machines by."""


def pod_name(job_id: int, part: int, attempt: int = 0) -> str:
    """Pod ``part`` of the job's ``attempt``-th run (an evicted pod is gone; its controller
    creates a new one). Zero-padded, so admission's name and uid tie-breaks order like submit
    order."""
    return f"job-{job_id:09d}-{attempt}-{part}"


def job_of(uid: str) -> int:
    """The job a pod of :func:`pod_name` belongs to."""
    return int(uid.split("-")[1])


@dataclasses.dataclass
class Gpufair:
    placer: placers.TopologyAware
    half_life: float = 7 * 24 * 3600.0
    """Seconds; the operator's default ``half_life_seconds``."""
    reclaim_interval: float = 60.0
    """Seconds between passes while a job waits and no event triggers one (the tick)."""
    grace_period: float = 30.0
    """Seconds an evicted pod keeps its GPUs before they free (Kubernetes' default)."""
    debounce: float = 0.5
    """Seconds from a pass that started jobs to the pass their bind events trigger (the
    operator's ``debounce_seconds``)."""
    min_runtime: float = 0.0
    """Seconds a job must have run before it may be preempted (``minRuntimeSeconds``)."""
    name: str = "gpufair"
    waiting: queues.WaitingJobs = dataclasses.field(default_factory=queues.WaitingJobs)
    passes: int = 0
    """Passes run (skipped ones not counted)."""
    _gated: dict[int, tuple[model.GpuPod, ...]] = dataclasses.field(default_factory=dict)
    """The gated pods of waiting jobs shown to a pass (built once per wait)."""
    _bound: dict[int, tuple[model.GpuPod, ...]] = dataclasses.field(default_factory=dict)
    """The bound pods of every running job (rebuilt when its checkpoint or state moves)."""
    _terminating: dict[int, float] = dataclasses.field(default_factory=dict)
    """Evicted jobs and when their grace period ends."""
    _departed: list[model.GpuPod] = dataclasses.field(default_factory=list)
    """Pods that stopped holding GPUs since the last pass (metered once, then dropped)."""
    _usages: dict[str, usage.Usage] = dataclasses.field(default_factory=dict)
    _due: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)
    """``(time, job id, job version)`` of every running job's next checkpoint (a heap)."""
    _protected: set[str] = dataclasses.field(default_factory=set)
    """The pods of running gangs (``Snapshot.blocked``)."""
    _cluster: _Objects | None = None
    _pass_cache: passcache.PassCache = dataclasses.field(default_factory=passcache.PassCache)
    """What the pass keeps between passes, as the operator's reconciler keeps it: the adapter
    hands it the same pod and node objects while they do not change."""
    _next_tick: float = -math.inf

    @property
    def mode(self) -> core_policy.PlacementMode:
        return self.placer.mode

    @property
    def rule(self) -> core_policy.TopologyRule:
        return self.placer.rule

    def enqueue(self, job: engine.Job) -> None:
        self.waiting.push(job)

    def schedule(self, sim: engine.Simulation) -> None:
        self._settle(sim)
        if not self.waiting.count and not self._terminating:
            return
        self.passes += 1
        decided = scheduling.schedule(
            self._snapshot(sim), half_life=self.half_life, cache=self._pass_cache
        )
        for (tenant, _), record in decided.usages.items():
            self._usages[tenant] = record
        self._departed.clear()
        started = self._admit(sim, decided.admissions)
        self._evict(sim, decided.evictions)
        if not self.waiting.count:
            return
        if started:
            sim.wake_at(sim.now + self.debounce)
        elif sim.running and self._next_tick <= sim.now:
            self._next_tick = sim.now + self.reclaim_interval
            sim.wake_at(self._next_tick)

    # -- the cluster as the operator's store holds it ---------------------------------------

    def _snapshot(self, sim: engine.Simulation, *, whole_queue: bool = False) -> model.Snapshot:
        """The cluster now; ``whole_queue``: every waiting job listed (the module docstring's
        liberty not taken)."""
        if self._cluster is None:
            self._cluster = _Objects.of(
                sim, mode=self.mode, rule=self.rule, min_runtime=self.min_runtime
            )
        self._checkpoint_due(sim)
        pods = [pod for bound in self._bound.values() for pod in bound]
        listed: collections.Counter[tuple[str, int]] = collections.Counter()
        free = sim.cluster.total_free
        shown = self.waiting.count if whole_queue else None
        reclaims = scheduling.RECLAIMS_PER_PASS
        for tenant, job_id in self.waiting.oldest(lambda gpus: shown or free // gpus + reclaims):
            gated = self._gated.get(job_id)
            if gated is None:
                gated = self._gated[job_id] = _gated_pods(sim, sim.jobs[job_id])
            pods.extend(gated)
            listed[tenant, sim.jobs[job_id].gpus] += 1
        pods.extend(self._departed)
        return model.Snapshot(
            now=sim.now,
            nodes=self._cluster.nodes,
            pods=tuple(pods),
            tenants=self._cluster.tenants_with(self._usages),
            pools=self._cluster.pools,
            namespaces=self._cluster.namespaces,
            blocked=frozenset(self._protected),
            synced=True,
            unlisted_demand=self._unlisted(sim, listed),
        )

    def _unlisted(
        self, sim: engine.Simulation, listed: Mapping[tuple[str, int], int]
    ) -> dict[tuple[str, str], dict[int, int]]:
        """The pods of the waiting jobs not shown to the pass, by GPU count per tenant."""
        unlisted: dict[tuple[str, str], dict[int, int]] = {}
        for tenant, gpus, jobs in self.waiting.counts():
            rest = jobs - listed[tenant, gpus]
            if rest:
                sizes = unlisted.setdefault((tenant, POOL), {})
                for size in placers.pod_sizes(gpus, sim.cluster.machine_gpus):
                    sizes[size] = sizes.get(size, 0) + rest
        return unlisted

    def _checkpoint_due(self, sim: engine.Simulation) -> None:
        """Running jobs that passed a checkpoint since the last pass: their pods say so (what
        reclaim weighs: a victim loses what it ran since its last checkpoint)."""
        while self._due and self._due[0][0] <= sim.now:
            _, job_id, version = heapq.heappop(self._due)
            job = sim.jobs[job_id]
            if job_id not in self._bound or job.version != version:
                continue
            checkpoint = _checkpoint(sim, job)
            self._bound[job_id] = tuple(
                dataclasses.replace(pod, checkpoint_at=checkpoint) for pod in self._bound[job_id]
            )
            self._schedule_checkpoint(sim, job)

    def _schedule_checkpoint(self, sim: engine.Simulation, job: engine.Job) -> None:
        interval = sim.settings.checkpoint_interval
        if interval > 0:
            due = job.started + ((sim.now - job.started) // interval + 1) * interval
            heapq.heappush(self._due, (due, job.job_id, job.version))

    def _settle(self, sim: engine.Simulation) -> None:
        """Finished jobs leave their pods to be metered once; evicted jobs whose grace period
        is over stop and free their GPUs."""
        for job_id in [job_id for job_id in self._bound if job_id not in sim.running]:
            self._depart(job_id, now=sim.now)
            self._terminating.pop(job_id, None)
        for job_id, until in list(self._terminating.items()):
            if until <= sim.now + engine.EPSILON:
                self._stop(sim, job_id)

    def _depart(self, job_id: int, *, now: float) -> None:
        pods = self._bound.pop(job_id)
        self._protected.difference_update(pod.uid for pod in pods)
        self._departed.extend(
            dataclasses.replace(pod, state=model.PodState.FINISHED, finished_at=now) for pod in pods
        )

    def _stop(self, sim: engine.Simulation, job_id: int) -> None:
        """The evicted job's grace period is over: it stops and is queued again."""
        del self._terminating[job_id]
        self._depart(job_id, now=sim.now)
        sim.preempt(sim.jobs[job_id], self)

    # -- applying the intents ---------------------------------------------------------------

    def _admit(self, sim: engine.Simulation, admissions: tuple[scheduling.Admission, ...]) -> bool:
        """Start each job whose pods were all admitted where the extender would place it;
        whether any started. (A group's pods are admitted together or not at all.)"""
        admitted: dict[int, int] = {}
        for intent in admissions:
            job_id = job_of(intent.pod.uid)
            admitted[job_id] = admitted.get(job_id, 0) + 1
        started = False
        unplaced: set[int] = set()
        for job_id, count in admitted.items():
            if count != len(self._gated[job_id]):
                raise RuntimeError(f"the pass admitted {count} pods of job {job_id}'s group")
            job = sim.jobs[job_id]
            # A job the scheduler could not place keeps the later ones of its size waiting too
            # (they would overtake it in its queue); all retry at the next pass.
            parts = None if job.gpus in unplaced else self.placer.place(sim.cluster, job.gpus)
            if parts is None:
                unplaced.add(job.gpus)
                continue
            head = self.waiting.pop(job.tenant, job.gpus)
            if head != job_id:
                raise RuntimeError(f"the pass admitted job {job_id} but job {head} heads its queue")
            del self._gated[job_id]
            sim.start(job, parts)
            pods = self._bound[job_id] = _bound_pods(sim, job)
            if len(pods) > 1:
                self._protected.update(pod.uid for pod in pods)
            self._schedule_checkpoint(sim, job)
            started = True
        return started

    def _evict(self, sim: engine.Simulation, evictions: tuple[scheduling.Eviction, ...]) -> None:
        for intent in evictions:
            job_id = job_of(intent.pod.uid)
            if job_id in self._terminating:
                continue
            until = self._terminating[job_id] = sim.now + self.grace_period
            self._bound[job_id] = tuple(
                dataclasses.replace(pod, state=model.PodState.TERMINATING, deleting_at=until)
                for pod in self._bound[job_id]
            )
            if self.grace_period > 0:
                sim.wake_at(sim.now + self.grace_period)
            else:
                self._stop(sim, job_id)


@dataclasses.dataclass(frozen=True)
class _Objects:
    """What the replay's cluster looks like to the operator's store and never changes: a node
    per machine, one pool of them all, a tenant per trace tenant owning a namespace of its own."""

    nodes: dict[str, model.Node]
    pools: dict[str, model.Pool]
    namespaces: dict[str, model.Namespace]
    tenants: dict[str, model.Tenant]

    @classmethod
    def of(
        cls,
        sim: engine.Simulation,
        *,
        mode: core_policy.PlacementMode,
        rule: core_policy.TopologyRule,
        min_runtime: float,
    ) -> _Objects:
        cluster = sim.cluster
        nodes = {
            str(node): model.Node(
                name=str(node),
                labels={POOL_LABEL: POOL},
                allocatable={names.DEFAULT_GPU_RESOURCE: cluster.types[kind].size},
                topology=cluster.types[kind].topology,
            )
            for node, kind in enumerate(cluster.layout)
        }
        selector = {"matchLabels": {POOL_LABEL: POOL}}
        return cls(
            nodes=nodes,
            pools={POOL: model.Pool(name=POOL, selector=selector, mode=mode, rule=rule)},
            namespaces={
                name: model.Namespace(name=name, labels={names.TENANT_LABEL: name})
                for name in sim.tenants
            },
            tenants={
                name: model.Tenant(
                    name=name,
                    weight=spec.weight,
                    namespaces=frozenset({name}),
                    pools=(
                        model.TenantPool(pool=POOL, guaranteed=spec.guaranteed, limit=spec.limit),
                    ),
                    min_runtime_seconds=min_runtime,
                )
                for name, spec in sim.tenants.items()
            },
        )

    def tenants_with(self, usages: dict[str, usage.Usage]) -> dict[str, model.Tenant]:
        """The tenants with their usage as the last pass metered it (their persisted status)."""
        return {
            name: dataclasses.replace(tenant, usage={POOL: usages[name]})
            if name in usages
            else tenant
            for name, tenant in self.tenants.items()
        }


def _group(job: engine.Job, pods: int) -> groups.Membership | None:
    """A job of several pods is a pod group of that many pods."""
    if pods == 1:
        return None
    key = groups.GroupKey(job.tenant, groups.Source.GPUFAIR, f"job-{job.job_id:09d}")
    return groups.Membership(key=key, size=pods)


def _gated_pods(sim: engine.Simulation, job: engine.Job) -> tuple[model.GpuPod, ...]:
    sizes = placers.pod_sizes(job.gpus, sim.cluster.machine_gpus)
    group = _group(job, len(sizes))
    return tuple(
        _pod(job, part, gpus=size, group=group, state=model.PodState.GATED)
        for part, size in enumerate(sizes)
    )


def _bound_pods(sim: engine.Simulation, job: engine.Job) -> tuple[model.GpuPod, ...]:
    assert job.placement is not None
    parts = job.placement.parts
    group = _group(job, len(parts))
    return tuple(
        _pod(
            job,
            number,
            gpus=part.mask.bit_count(),
            group=group,
            state=model.PodState.BOUND,
            node=str(part.node),
            started_at=job.started,
            checkpoint_at=_checkpoint(sim, job),
            gpu_indices=frozenset(sim.cluster.indices(part.node, part.mask)),
        )
        for number, part in enumerate(parts)
    )


def _pod(
    job: engine.Job,
    part: int,
    *,
    gpus: int,
    group: groups.Membership | None,
    state: model.PodState,
    node: str | None = None,
    started_at: float | None = None,
    checkpoint_at: float | None = None,
    gpu_indices: frozenset[int] | None = None,
) -> model.GpuPod:
    """Pod ``part`` of the job's current run, in the job's tenant's namespace."""
    name = pod_name(job.job_id, part, job.preemptions)
    return model.GpuPod(
        namespace=job.tenant,
        name=name,
        uid=name,
        gpus=gpus,
        state=state,
        created_at=job.submit,
        node=node,
        started_at=started_at,
        checkpoint_at=checkpoint_at,
        gpu_indices=gpu_indices,
        group=group,
    )


def _checkpoint(sim: engine.Simulation, job: engine.Job) -> float | None:
    """When the job last checkpointed (every ``checkpoint_interval`` of run time)."""
    interval = sim.settings.checkpoint_interval
    ran = sim.now - job.started
    if interval > 0 and ran >= interval:
        return job.started + (ran // interval) * interval
    return None
