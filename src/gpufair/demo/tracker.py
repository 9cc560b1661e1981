"""What happened to every demo pod, and the per-tenant figures the table and summary show.

The runner feeds it the pods it lists from the API and the bind times the scheduler driver
reports; the tracker decides which pods finished their simulated run (the runner then marks them
``Succeeded``), notices pods that vanished while running (evicted by the operator's reclaim, or
deleted by the driver's preemption: the job is resubmitted, as a Job controller would), and
computes waits, GPU-seconds and placement quality. Placement quality counts what kubelet
allocated, read from ``gpufair.dev/gpus-confirmed`` (the node agent's PodResources reconciler,
run for the demo's nodes by :mod:`gpufair.standin.gpunodes`), not what bind chose; a pod whose
confirmed GPUs differ from bind's ``gpufair.dev/gpus`` counts as corrected. Time is passed in
(monotonic seconds since the burst started); nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpufair.api import names
from gpufair.core import topology
from gpufair.demo import cluster, workload


class State(enum.StrEnum):
    WAITING = "waiting"  # created, not bound yet (gated, or admitted and being scheduled)
    RUNNING = "running"  # bound to a node
    DONE = "done"  # ran its simulated time; marked Succeeded
    PREEMPTED = "preempted"  # vanished while running: evicted or preempted
    FAILED = "failed"  # the kubelet refused it (a GPU double allocation would show here)
    GONE = "gone"  # deleted before it ran (by someone else)


@dataclasses.dataclass
class PodRecord:
    job: workload.Job
    name: str  # pod name (a resubmitted job gets a suffix)
    namespace: str
    created_at: float
    uid: str = ""
    bound_at: float | None = None
    node: str | None = None
    gpu_indices: tuple[int, ...] = ()
    """The pod's GPUs: kubelet's (confirmed) once known, bind's choice until then."""
    chosen: tuple[int, ...] = ()
    """Bind's choice (``gpufair.dev/gpus``)."""
    confirmed: tuple[int, ...] | None = None
    """What kubelet allocated (``gpufair.dev/gpus-confirmed``); None until the agent says."""
    running_since: float | None = None
    ended_at: float | None = None
    state: State = State.WAITING
    completing: bool = False  # the Succeeded status write is in flight

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def corrected(self) -> bool:
        """kubelet allocated other GPUs than bind chose (the agent corrected the books)."""
        return self.confirmed is not None and set(self.confirmed) != set(self.chosen)

    def gpu_seconds(self, now: float) -> float:
        if self.bound_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.bound_at) * self.job.gpus


@dataclasses.dataclass(frozen=True)
class TenantFigures:
    """One tenant's line in the live table and the summary."""

    tenant: str
    submitted: int
    waiting: int
    running: int
    done: int
    preempted: int
    failed: int
    running_gpus: int
    gpu_seconds: float  # measured by the demo from bind to end
    wait_p50: float | None
    wait_p95: float | None
    multi_gpu_placed: int
    """Multi-GPU pods whose allocation kubelet confirmed."""
    multi_gpu_one_island: int
    """Of those, the pods whose confirmed GPUs share one NVLink island."""
    bound: int = 0
    """Pods bound to a node (with GPUs chosen by bind)."""
    confirmed: int = 0
    """Of those, pods whose allocation the node agent confirmed from kubelet."""
    corrected: int = 0
    """Of those, pods kubelet gave other GPUs than bind chose."""

    @property
    def scheduled(self) -> int:
        return self.running + self.done + self.preempted

    @property
    def placement_quality(self) -> float | None:
        """Share of the multi-GPU pods whose confirmed GPUs share one NVLink island
        (None: no multi-GPU allocation confirmed yet)."""
        if not self.multi_gpu_placed:
            return None
        return self.multi_gpu_one_island / self.multi_gpu_placed


@dataclasses.dataclass(frozen=True)
class IslandFigure:
    """Pods of one size whose allocation kubelet confirmed, and how many got one island."""

    gpus: int
    placed: int
    one_island: int


class Tracker:
    def __init__(
        self, *, tenants: Sequence[cluster.Tenant], topologies: Mapping[str, topology.NodeTopology]
    ) -> None:
        self.tenants = list(tenants)
        self.namespace_of = {tenant.name: tenant.namespace for tenant in tenants}
        self.topologies = dict(topologies)
        self.records: dict[str, PodRecord] = {}
        self._resubmits: dict[str, int] = {}

    # ------------------------------------------------------------------ inputs

    def submitted(self, job: workload.Job, *, name: str, uid: str, now: float) -> PodRecord:
        record = PodRecord(
            job=job, name=name, namespace=self.namespace_of[job.tenant], created_at=now, uid=uid
        )
        self.records[record.key] = record
        return record

    def resubmit_name(self, job: workload.Job) -> str:
        """The pod name for the next run of a preempted job (``research-03-4g-r1``, …)."""
        count = self._resubmits.get(job.name, 0) + 1
        self._resubmits[job.name] = count
        return f"{job.name}-r{count}"

    def bound(self, key: str, *, node: str, now: float) -> None:
        """The scheduler driver bound the pod (its bind time; the pod list confirms later)."""
        record = self.records.get(key)
        if record is not None and record.bound_at is None:
            record.bound_at = now
            record.node = node
            record.state = State.RUNNING

    def observe(self, pods: Iterable[Mapping[str, Any]], *, now: float) -> list[PodRecord]:
        """Update from a list of the demo's pods; returns the records that vanished while
        running (the runner resubmits their jobs)."""
        seen: dict[str, Mapping[str, Any]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            seen[f"{meta.get('namespace')}/{meta.get('name')}"] = pod
        vanished = []
        for key, record in self.records.items():
            if record.state in (State.DONE, State.PREEMPTED, State.FAILED, State.GONE):
                continue
            found = seen.get(key)
            if found is None or (record.uid and found["metadata"].get("uid") != record.uid):
                record.ended_at = now
                if record.bound_at is not None:
                    record.state = State.PREEMPTED
                    vanished.append(record)
                else:
                    record.state = State.GONE
                continue
            self._update(record, found, now=now)
        return vanished

    def _update(self, record: PodRecord, pod: Mapping[str, Any], *, now: float) -> None:
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName")
        if node and record.bound_at is None:
            record.bound_at = now
            record.state = State.RUNNING
        if node:
            record.node = node
        notes = (pod.get("metadata") or {}).get("annotations") or {}
        chosen = notes.get(names.GPUS_ANNOTATION)
        confirmed = notes.get(names.GPUS_CONFIRMED_ANNOTATION)
        if chosen:
            record.chosen = _indices(chosen)
        if confirmed:
            record.confirmed = _indices(confirmed)
        if record.confirmed is not None:  # kubelet's GPUs win over bind's
            record.gpu_indices = record.confirmed
        elif record.chosen:
            record.gpu_indices = record.chosen
        phase = status.get("phase")
        if phase == "Running" and record.running_since is None:
            record.running_since = now
        elif phase == "Failed":
            record.state = State.FAILED
            record.ended_at = now
        elif phase == "Succeeded":
            record.state = State.DONE
            record.ended_at = record.ended_at if record.ended_at is not None else now

    def due(self, *, now: float) -> list[PodRecord]:
        """Running pods whose simulated run time is over (the runner marks them Succeeded)."""
        return [
            record
            for record in self.records.values()
            if record.state is State.RUNNING
            and not record.completing
            and record.running_since is not None
            and now - record.running_since >= record.job.run_seconds
        ]

    def completed(self, record: PodRecord, *, now: float) -> None:
        record.state = State.DONE
        record.ended_at = now
        record.completing = False

    # ------------------------------------------------------------------ figures

    def figures(self, *, now: float) -> list[TenantFigures]:
        return [self._tenant_figures(tenant.name, now=now) for tenant in self.tenants]

    def _tenant_figures(self, tenant: str, *, now: float) -> TenantFigures:
        mine = [record for record in self.records.values() if record.job.tenant == tenant]
        count = {state: sum(1 for r in mine if r.state is state) for state in State}
        waits = sorted(r.bound_at - r.created_at for r in mine if r.bound_at is not None)
        bound = [r for r in mine if r.node and r.chosen]
        confirmed = [r for r in bound if r.confirmed is not None]
        placed = [r for r in confirmed if r.job.gpus > 1]
        one_island = sum(1 for r in placed if self._on_one_island(r))
        return TenantFigures(
            tenant=tenant,
            submitted=len(mine),
            waiting=count[State.WAITING],
            running=count[State.RUNNING],
            done=count[State.DONE],
            preempted=count[State.PREEMPTED],
            failed=count[State.FAILED],
            running_gpus=sum(r.job.gpus for r in mine if r.state is State.RUNNING),
            gpu_seconds=sum(r.gpu_seconds(now) for r in mine),
            wait_p50=percentile(waits, 0.50),
            wait_p95=percentile(waits, 0.95),
            multi_gpu_placed=len(placed),
            multi_gpu_one_island=one_island,
            bound=len(bound),
            confirmed=len(confirmed),
            corrected=sum(1 for r in confirmed if r.corrected),
        )

    def one_island(self, *, gpus: int) -> IslandFigure:
        """Of every pod of ``gpus`` GPUs whose allocation kubelet confirmed (any tenant, any run
        of a job, finished or preempted included), how many got one NVLink island."""
        placed = [
            r
            for r in self.records.values()
            if r.job.gpus == gpus and r.node and r.chosen and r.confirmed is not None
        ]
        return IslandFigure(
            gpus=gpus,
            placed=len(placed),
            one_island=sum(1 for r in placed if self._on_one_island(r)),
        )

    def _on_one_island(self, record: PodRecord) -> bool:
        """The pod's confirmed GPUs share one NVLink island of its node."""
        return (
            record.node in self.topologies
            and record.confirmed is not None
            and cluster.on_one_island(self.topologies[record.node], record.confirmed)
        )

    def node_usage(self) -> dict[str, list[str | None]]:
        """Per node, per GPU index, the tenant of the running pod holding it (None: free)."""
        usage: dict[str, list[str | None]] = {
            node: [None] * len(topo.gpus) for node, topo in self.topologies.items()
        }
        for record in self.records.values():
            if record.state is not State.RUNNING or record.node not in usage:
                continue
            slots = usage[record.node]
            for index in record.gpu_indices:
                if 0 <= index < len(slots):
                    slots[index] = record.job.tenant
        return usage

    def double_allocations(self) -> list[str]:
        """GPUs two running pods hold at once (must stay empty; shown in the summary)."""
        holders: dict[tuple[str, int], str] = {}
        clashes = []
        for record in self.records.values():
            if record.state is not State.RUNNING or record.node is None:
                continue
            for index in record.gpu_indices:
                other = holders.setdefault((record.node, index), record.key)
                if other != record.key:
                    clashes.append(f"{record.node} GPU {index}: {other} and {record.key}")
        return clashes


def _indices(text: str) -> tuple[int, ...]:
    return tuple(sorted(int(part) for part in str(text).split(",") if part.strip()))


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]
