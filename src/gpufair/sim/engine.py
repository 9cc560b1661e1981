"""The discrete-event replay: submit, admit and place, run, finish, preempt.

:func:`run` is the simulator's one loop. It owns time, the cluster and every job's state, and
asks a :class:`Policy` what to do after each batch of simultaneous events; the policy answers by
calling :meth:`Simulation.start` and :meth:`Simulation.preempt` (gpufair's policy decides through
``gpufair.core``; the baselines decide themselves). The loop never scans the whole cluster or
every job per event: submissions are a sorted list, finishes a heap with lazy cancellation,
free GPUs an index (:mod:`gpufair.sim.cluster`), and fair shares are recomputed only when some
tenant's demand changes.

Work is counted in *ideal seconds*: a job needs ``duration`` of them and makes
``1 / slowdown`` of them per second on its current placement. A preempted job keeps the work
done up to its last checkpoint (every ``checkpoint_interval`` seconds of run time; 0 = never).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gpufair.core import fairshare
from gpufair.sim import cluster as cluster_model
from gpufair.sim import slowdown as slowdown_model
from gpufair.sim import trace as trace_model
from gpufair.state import rules

EPSILON = 1e-6
"""Seconds; event times closer than this are simultaneous."""

SHARES_MEMO = 4096
"""Fair shares kept for this many recent demand vectors (oldest dropped first)."""


class JobStatus(enum.StrEnum):
    FUTURE = "future"
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


@dataclasses.dataclass(frozen=True, slots=True)
class TenantSpec:
    """A tenant's entitlement in the simulated pool (see ``gpufair.core.fairshare``)."""

    name: str
    weight: float = 1.0
    guaranteed: int = 0
    limit: int | None = None


@dataclasses.dataclass(slots=True)
class Job:
    """A trace job and what happened to it (the engine's mutable record)."""

    trace: trace_model.TraceJob
    remaining: float
    status: JobStatus = JobStatus.FUTURE
    placement: cluster_model.Placement | None = None
    slowdown: float = 1.0
    started: float = 0.0
    """Start of the current run (valid while running)."""
    first_start: float | None = None
    finished: float | None = None
    version: int = 0
    preemptions: int = 0
    lost_gpu_seconds: float = 0.0
    busy_gpu_seconds: float = 0.0
    done_gpu_seconds: float = 0.0
    """Work kept (at best-placement speed): checkpointed progress, and all of it at the end."""
    within_guarantee: bool = False
    """At submission, the tenant's demand including this job was within its guarantee."""
    first_placement: cluster_model.Placement | None = None
    island_possible: bool = False
    """At its first start, some machine had this job's GPUs free inside one NVLink island."""

    @property
    def job_id(self) -> int:
        return self.trace.job_id

    @property
    def tenant(self) -> str:
        return self.trace.tenant

    @property
    def gpus(self) -> int:
        return self.trace.gpus

    @property
    def submit(self) -> float:
        return self.trace.submit


class EventKind(enum.StrEnum):
    SUBMIT = "submit"
    START = "start"
    FINISH = "finish"
    PREEMPT = "preempt"


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One entry of the optional event log (tests audit it)."""

    time: float
    kind: EventKind
    job_id: int
    parts: tuple[cluster_model.Part, ...] = ()


class Policy(Protocol):
    """A scheduling policy: keeps its own queue and starts or preempts jobs when asked."""

    @property
    def name(self) -> str: ...

    def enqueue(self, job: Job) -> None:
        """``job`` is waiting (newly submitted, or preempted and requeued)."""

    def schedule(self, sim: Simulation) -> None:
        """Start (and possibly preempt) jobs at ``sim.now``; called after every event batch."""


class Observer(Protocol):
    """Receives the piecewise-constant state of the cluster (metrics)."""

    def advance(self, sim: Simulation, until: float) -> None:
        """The state seen by ``sim`` held from the previous call until ``until``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    checkpoint_interval: float = 3600.0
    """Seconds of run time between checkpoints; a preempted job loses what it ran since."""
    record_events: bool = False


class Simulation:
    """State of one replay; policies act on it through :meth:`start` and :meth:`preempt`."""

    def __init__(
        self,
        *,
        trace: trace_model.Trace,
        cluster: cluster_model.Cluster,
        tenants: Sequence[TenantSpec],
        slowdowns: slowdown_model.SlowdownModel,
        settings: Settings = Settings(),
    ) -> None:
        self.trace = trace
        self.cluster = cluster
        self.slowdowns = slowdowns
        self.settings = settings
        names = {spec.name for spec in tenants}
        extra = [TenantSpec(name=name) for name in trace.tenants if name not in names]
        self.tenants: dict[str, TenantSpec] = {spec.name: spec for spec in (*tenants, *extra)}
        self.jobs = [Job(trace=job, remaining=job.duration) for job in trace.jobs]
        self.now = 0.0
        self.allocated: dict[str, int] = dict.fromkeys(self.tenants, 0)
        self.waiting: dict[str, int] = dict.fromkeys(self.tenants, 0)
        self.running: dict[int, Job] = {}
        self.effective_gpus = 0.0
        """Sum over running jobs of GPUs / slowdown: busy GPUs discounted for poor placement."""
        self.submitted = 0
        self.done = 0
        self.preemptions = 0
        self.preemption_log: list[tuple[float, float]] = []
        """``(time, GPU-seconds of work lost)`` per preemption."""
        self.events_processed = 0
        self.log: list[Event] = []
        self._finishes: list[tuple[float, int, int]] = []
        self._wakeups: list[float] = []
        self._demand_key: tuple[int, ...] | None = None
        self._shares: fairshare.PoolShares | None = None
        self._shares_memo: dict[tuple[int, ...], fairshare.PoolShares] = {}

    # -- what policies and observers read ---------------------------------------------------

    def demand(self, tenant: str) -> int:
        return self.allocated[tenant] + self.waiting[tenant]

    @property
    def shares(self) -> fairshare.PoolShares:
        """Entitled fair shares for the current demand (``gpufair.core.fairshare``), cached.

        A claim's demand is what the tenant holds plus what it waits for, so starts and
        preemptions leave the shares as they were; the shares of the last
        :data:`SHARES_MEMO` demand vectors are kept (demand often returns to where it was).
        """
        allocated, waiting = self.allocated, self.waiting
        key = tuple([allocated[name] + waiting[name] for name in self.tenants])
        if key == self._demand_key and self._shares is not None:
            return self._shares
        shares = self._shares_memo.get(key)
        if shares is None:
            shares = fairshare.compute(
                self.cluster.capacity,
                [
                    rules.tenant_claim(
                        tenant=spec.name,
                        weight=spec.weight,
                        guaranteed=spec.guaranteed,
                        limit=spec.limit,
                        lendable=None,
                        held=allocated[spec.name],
                        waiting=waiting[spec.name],
                    )
                    for spec in self.tenants.values()
                ],
            )
            if len(self._shares_memo) >= SHARES_MEMO:
                del self._shares_memo[next(iter(self._shares_memo))]
            self._shares_memo[key] = shares
        self._demand_key, self._shares = key, shares
        return shares

    @property
    def busy(self) -> int:
        return self.cluster.capacity - self.cluster.total_free

    # -- what policies do -------------------------------------------------------------------

    def start(self, job: Job, parts: Sequence[cluster_model.Part]) -> None:
        """Run a waiting job on ``parts`` (the policy has taken it out of its queue)."""
        if job.status is not JobStatus.WAITING:
            raise RuntimeError(f"job {job.job_id} is {job.status}, not waiting")
        placement = self.cluster.placement(parts)
        if placement.gpus != job.gpus:
            raise RuntimeError(
                f"job {job.job_id} needs {job.gpus} GPUs, placement has {placement.gpus}"
            )
        if job.first_start is None and 2 <= job.gpus <= self.cluster.machine_gpus:
            job.island_possible = self.cluster.island_free(job.gpus)
        self.cluster.take(placement.parts)
        job.status = JobStatus.RUNNING
        job.placement = placement
        job.slowdown = self.slowdowns.factor(
            job_id=job.job_id, gpus=job.gpus, machines=placement.machines, level=placement.level
        )
        job.started = self.now
        if job.first_start is None:
            job.first_start = self.now
            job.first_placement = placement
        job.version += 1
        self.running[job.job_id] = job
        self.effective_gpus += job.gpus / job.slowdown
        self.waiting[job.tenant] -= job.gpus
        self.allocated[job.tenant] += job.gpus
        heapq.heappush(
            self._finishes, (self.now + job.remaining * job.slowdown, job.job_id, job.version)
        )
        self._record(EventKind.START, job, placement.parts)

    def preempt(self, job: Job, policy: Policy) -> None:
        """Stop a running job, keep its work up to the last checkpoint, and requeue it."""
        if job.status is not JobStatus.RUNNING or job.placement is None:
            raise RuntimeError(f"job {job.job_id} is {job.status}, not running")
        ran = self.now - job.started
        interval = self.settings.checkpoint_interval
        kept = math.floor(ran / interval) * interval if interval > 0 else 0.0
        progress = min(job.remaining, kept / job.slowdown)
        job.remaining -= progress
        job.done_gpu_seconds += progress * job.gpus
        job.lost_gpu_seconds += (ran - kept) * job.gpus
        self.preemption_log.append((self.now, (ran - kept) * job.gpus))
        job.busy_gpu_seconds += ran * job.gpus
        job.preemptions += 1
        self.preemptions += 1
        self._release(job)
        job.status = JobStatus.WAITING
        self.waiting[job.tenant] += job.gpus
        self._record(EventKind.PREEMPT, job, job.placement.parts)
        job.placement = None
        policy.enqueue(job)

    def wake_at(self, time: float) -> None:
        """Ask for a scheduling pass at ``time`` even if no job event happens then."""
        heapq.heappush(self._wakeups, time)

    # -- the loop ---------------------------------------------------------------------------

    def _release(self, job: Job) -> None:
        assert job.placement is not None
        self.cluster.give_back(job.placement.parts)
        del self.running[job.job_id]
        self.effective_gpus -= job.gpus / job.slowdown
        if not self.running:
            self.effective_gpus = 0.0  # no drift from float sums
        self.allocated[job.tenant] -= job.gpus
        job.version += 1

    def _finish(self, job: Job) -> None:
        assert job.placement is not None
        job.busy_gpu_seconds += (self.now - job.started) * job.gpus
        job.done_gpu_seconds += job.remaining * job.gpus
        job.remaining = 0.0
        self._release(job)
        job.status = JobStatus.DONE
        job.finished = self.now
        self.done += 1
        self._record(EventKind.FINISH, job, job.placement.parts)

    def _submit(self, job: Job, policy: Policy) -> None:
        spec = self.tenants[job.tenant]
        job.within_guarantee = self.demand(job.tenant) + job.gpus <= spec.guaranteed
        job.status = JobStatus.WAITING
        self.waiting[job.tenant] += job.gpus
        self.submitted += 1
        self._record(EventKind.SUBMIT, job, ())
        policy.enqueue(job)

    def _record(self, kind: EventKind, job: Job, parts: tuple[cluster_model.Part, ...]) -> None:
        if self.settings.record_events:
            self.log.append(Event(time=self.now, kind=kind, job_id=job.job_id, parts=parts))

    def _next_time(self, next_submit: int) -> float:
        candidates = []
        if next_submit < len(self.jobs):
            candidates.append(self.jobs[next_submit].submit)
        while self._finishes:
            when, job_id, version = self._finishes[0]
            if self.jobs[job_id].version == version:
                candidates.append(when)
                break
            heapq.heappop(self._finishes)
        if self._wakeups:
            candidates.append(self._wakeups[0])
        return min(candidates) if candidates else math.inf

    def run(
        self,
        policy: Policy,
        *,
        observers: Sequence[Observer] = (),
        progress: Callable[[int], None] | None = None,
        until: float = math.inf,
    ) -> None:
        """Replay every job to completion (or stop at ``until``)."""
        next_submit = 0
        reported = 0
        while True:
            now = self._next_time(next_submit)
            if now == math.inf or now > until:
                break
            for observer in observers:
                observer.advance(self, now)
            self.now = now
            horizon = now + EPSILON
            while self._finishes and self._finishes[0][0] <= horizon:
                _, job_id, version = heapq.heappop(self._finishes)
                job = self.jobs[job_id]
                if job.version == version:
                    self._finish(job)
                    self.events_processed += 1
            while next_submit < len(self.jobs) and self.jobs[next_submit].submit <= horizon:
                self._submit(self.jobs[next_submit], policy)
                next_submit += 1
                self.events_processed += 1
            while self._wakeups and self._wakeups[0] <= horizon:
                heapq.heappop(self._wakeups)
            policy.schedule(self)
            if progress is not None and self.done - reported >= 500:
                progress(self.done)
                reported = self.done
        if progress is not None:
            progress(self.done)

    # -- accounting (tests and reports) -----------------------------------------------------

    def counts(self) -> Mapping[JobStatus, int]:
        tally = dict.fromkeys(JobStatus, 0)
        for job in self.jobs:
            tally[job.status] += 1
        return tally
