"""gpufair's policy on the replayed clock: the operator's admission and reclaim, the extender's
placement, all decided by ``gpufair.core`` exactly as the running components decide them.

Per scheduling pass (after every batch of simultaneous events), as the operator's reconcile
pass does (``gpufair.state.scheduling``):

1. meter: accrue each tenant's GPUs held since the last pass into its ``core.usage.Usage``;
2. admit: ``core.admission.decide`` on the oldest waiting job of every (tenant, size) that some
   machine could hold, with the tenants' decayed usage, limits and the entitled
   ``core.fairshare`` shares; each admitted job is placed at once by the extender's rule
   (``core.placement.choose`` on every machine kind, best score), or stays waiting when no
   machine can give it a GPU set (the operator's node-fit check);
3. reclaim: for a tenant below ``min(fair share, demand)`` whose oldest fitting job cannot be
   placed, ``core.preemption`` chooses victims among tenants above their share; the engine
   evicts them and the job starts on the GPUs they freed.

Jobs are the pods: a job of up to one machine is one pod; a wider job is one pod per
machine-full, admitted and placed together (gang).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gpufair.core import admission, preemption, usage
from gpufair.core import policy as core_policy
from gpufair.sim import cluster as cluster_model
from gpufair.sim import engine, placers, queues

POOL = "sim"
"""The simulated cluster is one GPU pool."""

MAX_PER_GROUP = 64
"""Waiting jobs per (tenant, size) shown to one admission call; more rounds follow if needed."""


MAX_RECLAIMS_PER_PASS = 16
"""Reclaims per pass; the rest wait for the next attempt (``reclaim_interval`` later)."""


def _uid(job_id: int) -> str:
    """Zero-padded, so admission's uid tie-break orders like submit order."""
    return f"job-{job_id:09d}"


@dataclasses.dataclass
class Gpufair:
    placer: placers.TopologyAware
    half_life: float = 7 * 24 * 3600.0
    """Seconds; the operator's default ``half_life_seconds``."""
    reclaim_interval: float = 60.0
    """Seconds between reclaim attempts while a tenant below its share waits."""
    min_runtime: float = 0.0
    """Seconds a job must have run before it may be preempted (``minRuntimeSeconds``)."""
    name: str = "gpufair"
    waiting: queues.WaitingJobs = dataclasses.field(default_factory=queues.WaitingJobs)
    usages: dict[str, usage.Usage] = dataclasses.field(default_factory=dict)
    _held: dict[str, int] = dataclasses.field(default_factory=dict)
    _next_reclaim: float = 0.0
    _waiting_pods: dict[int, admission.WaitingPod] = dataclasses.field(default_factory=dict)
    """The admission view of every waiting job, built once at enqueue."""
    _running_pods_cache: dict[int, tuple[int, float | None, preemption.RunningPod]] = (
        dataclasses.field(default_factory=dict)
    )
    """Preemption's view of a running job by id, with the job version and checkpoint it
    describes: rebuilt only when the job restarts or passes a checkpoint."""
    _node_states: dict[tuple[int, int], preemption.NodeGPUs] = dataclasses.field(
        default_factory=dict
    )
    """Preemption's view of a machine by (machine type, free mask): a few hundred at most."""
    _states: dict[str, admission.TenantState] = dataclasses.field(default_factory=dict)
    """Admission's view of each tenant, rebuilt when its usage or allocation moves."""
    _decayed: tuple[float, dict[str, float]] | None = None
    """Decayed usage per tenant at one instant, until the next metering."""

    @property
    def mode(self) -> core_policy.PlacementMode:
        return self.placer.mode

    @property
    def rule(self) -> core_policy.TopologyRule:
        return self.placer.rule

    def enqueue(self, job: engine.Job) -> None:
        self.waiting.push(job)
        self._waiting_pods[job.job_id] = admission.WaitingPod(
            uid=_uid(job.job_id), tenant=job.tenant, pool=POOL, gpus=job.gpus, created_at=job.submit
        )

    def schedule(self, sim: engine.Simulation) -> None:
        self._meter(sim)
        self._admit(sim)
        if self.waiting.count and sim.now >= self._next_reclaim:
            for _ in range(MAX_RECLAIMS_PER_PASS):
                if not self._reclaim(sim):
                    break
                self._admit(sim)
        self._held = dict(sim.allocated)

    # -- 1. meter ---------------------------------------------------------------------------

    def _meter(self, sim: engine.Simulation) -> None:
        self._decayed = None
        for name in sim.tenants:
            record = self.usages.get(name) or usage.Usage(as_of=sim.now)
            self.usages[name] = usage.accrue(
                record, gpus=self._held.get(name, 0), now=sim.now, half_life=self.half_life
            )

    def _tenant_states(self, sim: engine.Simulation) -> dict[str, admission.TenantState]:
        decayed = self._decayed_usage(sim.now)
        cache = self._states
        states = {}
        for name, spec in sim.tenants.items():
            allocated = sim.allocated[name]
            state = cache.get(name)
            if (
                state is None
                or state.decayed_usage != decayed[name]
                or state.allocated[POOL] != allocated
            ):
                state = cache[name] = admission.TenantState(
                    tenant=name,
                    weight=spec.weight,
                    decayed_usage=decayed[name],
                    allocated={POOL: allocated},
                    limits={POOL: spec.limit},
                )
            states[name] = state
        return states

    def _decayed_usage(self, now: float) -> dict[str, float]:
        """``usage.decayed_at`` of every tenant at ``now``, once per pass (metering, which
        changes usage, happens at the start of a pass)."""
        if self._decayed is not None and self._decayed[0] == now:
            return self._decayed[1]
        decayed = {
            name: usage.decayed_at(record, now=now, half_life=self.half_life)
            for name, record in self.usages.items()
        }
        self._decayed = (now, decayed)
        return decayed

    # -- 2. admit ---------------------------------------------------------------------------

    def _admit(self, sim: engine.Simulation) -> None:
        """Admit and place until a round starts nothing."""
        cluster = sim.cluster
        pods = self._waiting_pods
        while True:
            free = cluster.total_free
            fits = _fit_test(self.placer, cluster, free)
            candidates = [
                pods[job_id]
                for job_id in self.waiting.first_ids(min(MAX_PER_GROUP, max(1, free)), fits)
            ]
            if not candidates:
                return
            decision = admission.decide(
                waiting=candidates,
                tenants=self._tenant_states(sim),
                free={POOL: free},
                shares={POOL: sim.shares},
            )
            started = False
            blocked: set[int] = set()
            for pod in decision.admit:
                if pod.gpus in blocked:
                    continue
                parts = self.placer.place(cluster, pod.gpus)
                if parts is None:
                    blocked.add(pod.gpus)
                    continue
                job_id = self._pop(pod)
                if _uid(job_id) != pod.uid:
                    raise RuntimeError(f"admitted {pod.uid} but job {job_id} heads its group")
                sim.start(sim.jobs[job_id], parts)
                started = True
            if not started:
                return

    # -- 3. reclaim -------------------------------------------------------------------------

    def _reclaim(self, sim: engine.Simulation) -> bool:
        """Preempt for the first starved job core allows (``core.preemption``); True if it ran.

        Only jobs of up to one machine reclaim, and only single-machine jobs are victims: core
        chooses victims pod by pod on one node, and evicting one pod of a gang would stop all
        of its machines.
        """
        shares = sim.shares
        starved = {
            name
            for name in sim.tenants
            if sim.waiting[name] and shares.deficit(name, sim.allocated[name]) > 0
        }
        if not starved:
            return False
        if self._next_reclaim <= sim.now:
            self._next_reclaim = sim.now + self.reclaim_interval
            sim.wake_at(self._next_reclaim)
        states = self._tenant_states(sim)
        machine = sim.cluster.machine_gpus
        preemptors = sorted(
            (
                self._waiting_pods[job_id]
                for tenant, gpus, _, job_id in self.waiting.heads()
                if tenant in starved and gpus <= machine
            ),
            key=lambda pod: admission.order_key(pod, states),
        )
        if not preemptors:
            return False
        running = self._running_pods(sim)
        nodes = self._nodes(sim)
        policies = {
            name: preemption.Policy(min_runtime_seconds=self.min_runtime) for name in sim.tenants
        }
        for pod in preemptors:
            victims = preemption.choose_victims(
                preemptor=pod,
                running=running,
                nodes=nodes,
                shares=shares,
                allocated=dict(sim.allocated),
                policies=policies,
                now=sim.now,
                mode=self.mode,
                rule=self.rule,
            )
            if victims is None:
                continue
            for victim in victims.pods:
                sim.preempt(sim.jobs[_job_id(victim.uid)], self)
            node = int(victims.node)
            job_id = self._pop(pod)
            if _uid(job_id) != pod.uid:
                raise RuntimeError(f"reclaimed for {pod.uid} but job {job_id} heads its group")
            mask = sim.cluster.mask_of(node, victims.choice.gpus)
            sim.start(sim.jobs[job_id], [cluster_model.Part(node=node, mask=mask)])
            return True
        return False

    def _pop(self, pod: admission.WaitingPod) -> int:
        """Take the head of the pod's (tenant, size) group out of the queue."""
        job_id = self.waiting.pop(pod.tenant, pod.gpus)
        del self._waiting_pods[job_id]
        return job_id

    def _running_pods(self, sim: engine.Simulation) -> list[preemption.RunningPod]:
        interval = sim.settings.checkpoint_interval
        now = sim.now
        cache = self._running_pods_cache
        kept: dict[int, tuple[int, float | None, preemption.RunningPod]] = {}
        pods = []
        for job_id, job in sim.running.items():
            placement = job.placement
            if placement is None or len(placement.parts) != 1:
                continue
            started = job.started
            ran = now - started
            checkpoint = (
                started + (ran // interval) * interval if interval > 0 and ran >= interval else None
            )
            cached = cache.get(job_id)
            if cached is not None and cached[0] == job.version and cached[1] == checkpoint:
                kept[job_id] = cached
                pods.append(cached[2])
                continue
            part = placement.parts[0]
            pod = preemption.RunningPod(
                uid=_uid(job_id),
                tenant=job.tenant,
                pool=POOL,
                node=str(part.node),
                gpus=sim.cluster.indices(part.node, part.mask),
                started_at=started,
                checkpoint_at=checkpoint,
            )
            kept[job_id] = (job.version, checkpoint, pod)
            pods.append(pod)
        self._running_pods_cache = kept
        return pods

    def _nodes(self, sim: engine.Simulation) -> dict[str, preemption.NodeGPUs]:
        cluster = sim.cluster
        states = self._node_states
        nodes: dict[str, preemption.NodeGPUs] = {}
        for key, members in cluster.by_key.items():
            state = states.get(key)
            if state is None:
                kind, mask = key
                node_type = cluster.types[kind].topology
                state = states[key] = preemption.NodeGPUs(
                    topology=node_type,
                    free=frozenset(node_type.gpus[bit].index for bit in cluster_model.bits(mask)),
                )
            for node in members:
                nodes[str(node)] = state
        return nodes


def _fit_test(
    placer: placers.TopologyAware, cluster: cluster_model.Cluster, free: int
) -> Callable[[int], bool]:
    """Whether a job of a given size could start now (``free`` GPUs), each size tested once."""
    fits: dict[int, bool] = {}

    def fit(gpus: int) -> bool:
        known = fits.get(gpus)
        if known is None:
            known = fits[gpus] = gpus <= free and placer.could_fit(cluster, gpus)
        return known

    return fit


def _job_id(uid: str) -> int:
    return int(uid.removeprefix("job-"))
