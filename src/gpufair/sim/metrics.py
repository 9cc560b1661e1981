"""Scheduling-quality figures of one replay: fairness, waiting, utilisation, placement.

:class:`ShareRecorder` observes the engine (``advance`` is called before every state change)
and integrates, per tenant, the allocation and the entitled fair share over time, only while
the tenant has demand. :func:`summarize` turns that and the jobs' records into
:class:`PolicyFigures`. Definitions (also in ``docs/simulator.md``):

* *entitled share*: ``gpufair.core.fairshare.compute`` on the tenants' current demand
  (running + waiting GPUs), the same rule for every policy;
* *deviation*: ``|allocated - entitled| / capacity``; its time-weighted mean and its worst value
  per tenant, counted only while the tenant has demand, inside the measurement window;
* *Jain's index* over tenants of ``x = ∫allocated / ∫entitled`` (both while in demand);
* *queue wait*: first start - submit; *JCT*: finish - submit;
* *utilisation*: busy GPU-seconds / (capacity * window); *goodput* the same with each job's
  GPUs divided by its placement slowdown (work done at best-placement speed);
* *placement*: of jobs with 2..machine-size GPUs, the share whose first placement was on one
  machine and in one NVLink island (also among those for which some machine had their size free
  in one island when they first started), and the mean slowdown of their first placement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from gpufair.core import topology
from gpufair.sim import cluster as cluster_model
from gpufair.sim import engine


@dataclasses.dataclass
class _TenantTotals:
    demand_time: float = 0.0
    deviation_time: float = 0.0
    worst_deviation: float = 0.0
    allocated_time: float = 0.0
    entitled_time: float = 0.0


class ShareRecorder:
    """Integrates per-tenant allocation and entitlement over ``[window_start, window_end]``.

    It also keeps a coarse timeline (``buckets`` equal slices of the window) for plots.
    """

    def __init__(
        self,
        *,
        tenants: Sequence[str],
        window_end: float,
        window_start: float = 0.0,
        buckets: int = 400,
    ) -> None:
        """``window_end`` ``math.inf``: measure the whole run (call :meth:`close` at its end)."""
        self.tenants = tuple(tenants)
        self.window_start = window_start
        self.window_end = window_end
        self.totals = {name: _TenantTotals() for name in self.tenants}
        self.busy_time = 0.0
        self.effective_time = 0.0
        self.contended_time = 0.0
        self.last = window_start
        length = window_end - window_start
        self.bucket_width = length / buckets if 0 < length < math.inf else 3600.0
        self.allocated_series: dict[str, list[float]] = {name: [] for name in self.tenants}
        self.entitled_series: dict[str, list[float]] = {name: [] for name in self.tenants}

    def close(self, end: float) -> None:
        """End an open-ended window at ``end`` (the end of the run)."""
        if math.isinf(self.window_end):
            self.window_end = end

    def advance(self, sim: engine.Simulation, until: float) -> None:
        start, end = self.last, min(until, self.window_end)
        self.last = max(self.last, until)
        if end <= start:
            return
        origin = self.window_start
        dt = end - start
        capacity = sim.cluster.capacity
        self.busy_time += sim.busy * dt
        self.effective_time += sim.effective_gpus * dt
        if any(sim.waiting.values()):
            self.contended_time += dt
        shares = sim.shares
        width = self.bucket_width
        first, last = int((start - origin) / width), int((end - origin) / width)
        if origin + last * width >= end:
            last -= 1
        overlaps = [
            (bucket, min(end, origin + (bucket + 1) * width) - max(start, origin + bucket * width))
            for bucket in range(first, last + 1)
        ]
        allocations, waiting = sim.allocated, sim.waiting
        for name in self.tenants:
            allocated = allocations[name]
            entitled = shares.share(name)
            alloc_series = self.allocated_series[name]
            entitled_series = self.entitled_series[name]
            if len(alloc_series) <= last:
                grow = last + 1 - len(alloc_series)
                alloc_series.extend([0.0] * grow)
                entitled_series.extend([0.0] * grow)
            for bucket, overlap in overlaps:
                alloc_series[bucket] += allocated * overlap
                entitled_series[bucket] += entitled * overlap
            if allocated + waiting[name] == 0:
                continue
            totals = self.totals[name]
            deviation = abs(allocated - entitled) / capacity
            totals.demand_time += dt
            totals.deviation_time += deviation * dt
            totals.worst_deviation = max(totals.worst_deviation, deviation)
            totals.allocated_time += allocated * dt
            totals.entitled_time += entitled * dt


@dataclasses.dataclass(frozen=True)
class Quantiles:
    count: int
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Quantiles:
        if not values:
            return cls(count=0, p50=math.nan, p95=math.nan, p99=math.nan, mean=math.nan)
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            mean=sum(ordered) / len(ordered),
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (NumPy's default) of an ascending sequence."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclasses.dataclass(frozen=True)
class TenantFigures:
    jobs: int
    gpu_hours: float
    weight: float
    guaranteed: int
    demand_hours: float
    """Hours of the window during which the tenant had demand."""
    mean_deviation: float
    worst_deviation: float
    share_ratio: float
    """∫allocated / ∫entitled while in demand (1 = got exactly its entitlement)."""
    wait_s: Quantiles


@dataclasses.dataclass(frozen=True)
class PolicyFigures:
    policy: str
    jobs: int
    finished: int
    mean_deviation: float
    """Mean over tenants of their time-weighted mean deviation."""
    worst_deviation: float
    jain: float
    wait_s: Quantiles
    wait_within_guarantee_s: Quantiles
    wait_by_size_s: Mapping[str, Quantiles]
    """Queue wait per job width: ``1``, ``2-4``, ``5-<machine>``, ``><machine>`` GPUs."""
    jct_s: Quantiles
    utilisation: float
    goodput: float
    """Busy GPU-time discounted by each job's placement slowdown, over capacity * window."""
    contended: float
    """Share of the window during which some job was waiting."""
    multi_gpu_jobs: int
    one_machine: float
    one_island: float
    island_possible_jobs: int
    """Multi-GPU jobs (2-8) for which some machine had a free NVLink island of their size when
    they first started."""
    one_island_when_possible: float
    """Of those, the share that got one island."""
    mean_slowdown: float
    wide_jobs: int
    wide_fewest_machines: float
    """Jobs wider than a machine: share placed on the fewest machines possible."""
    preemptions: int
    """Preemptions inside the window (of any job, warm-up jobs included)."""
    lost_gpu_hours: float
    gpu_hours_submitted: float
    gpu_hours_busy: float
    tenants: Mapping[str, TenantFigures]
    timeline: Mapping[str, Mapping[str, list[float]]]
    """Per tenant: ``allocated`` and ``entitled`` share of capacity per timeline bucket."""
    timeline_hours: list[float]
    events: int
    wall_seconds: float


def size_classes(machine_gpus: int) -> list[tuple[str, int, int]]:
    """Job widths reported apart: one GPU, a few, up to a machine, several machines."""
    return [
        ("1", 1, 1),
        ("2-4", 2, 4),
        (f"5-{machine_gpus}", 5, machine_gpus),
        (f">{machine_gpus}", machine_gpus + 1, 1 << 30),
    ]


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: (Σx)² / (n Σx²); 1 when all equal."""
    if not values:
        return math.nan
    square_sum = sum(value * value for value in values)
    return sum(values) ** 2 / (len(values) * square_sum) if square_sum else math.nan


def summarize(
    sim: engine.Simulation,
    recorder: ShareRecorder,
    *,
    policy: str,
    wall_seconds: float,
) -> PolicyFigures:
    jobs = [job for job in sim.jobs if job.submit >= recorder.window_start]
    capacity = sim.cluster.capacity
    window = recorder.window_end - recorder.window_start
    machine_gpus = sim.cluster.machine_gpus
    waits = [job.first_start - job.submit for job in jobs if job.first_start is not None]
    guaranteed_waits = [
        job.first_start - job.submit
        for job in jobs
        if job.first_start is not None and job.within_guarantee
    ]
    jcts = [job.finished - job.submit for job in jobs if job.finished is not None]
    multi = [
        job for job in jobs if 2 <= job.gpus <= machine_gpus and job.first_placement is not None
    ]
    wide = [job for job in jobs if job.gpus > machine_gpus and job.first_placement is not None]
    possible = [job for job in multi if job.island_possible]
    in_window = [
        (when, lost)
        for when, lost in sim.preemption_log
        if recorder.window_start <= when <= recorder.window_end
    ]
    tenants: dict[str, TenantFigures] = {}
    ratios: list[float] = []
    for name in recorder.tenants:
        totals = recorder.totals[name]
        mine = [job for job in jobs if job.tenant == name]
        spec = sim.tenants[name]
        ratio = (
            totals.allocated_time / totals.entitled_time if totals.entitled_time > 0 else math.nan
        )
        if totals.entitled_time > 0:
            ratios.append(ratio)
        tenants[name] = TenantFigures(
            jobs=len(mine),
            gpu_hours=sum(job.gpus * job.trace.duration for job in mine) / 3600,
            weight=spec.weight,
            guaranteed=spec.guaranteed,
            demand_hours=totals.demand_time / 3600,
            mean_deviation=(
                totals.deviation_time / totals.demand_time if totals.demand_time else 0.0
            ),
            worst_deviation=totals.worst_deviation,
            share_ratio=ratio,
            wait_s=Quantiles.of(
                [job.first_start - job.submit for job in mine if job.first_start is not None]
            ),
        )
    active = [figures for figures in tenants.values() if figures.demand_hours > 0]
    width = recorder.bucket_width
    buckets = max((len(series) for series in recorder.allocated_series.values()), default=0)
    timeline = {
        name: {
            "allocated": _padded(recorder.allocated_series[name], buckets, width * capacity),
            "entitled": _padded(recorder.entitled_series[name], buckets, width * capacity),
        }
        for name in recorder.tenants
    }
    return PolicyFigures(
        policy=policy,
        jobs=len(jobs),
        finished=sum(1 for job in jobs if job.finished is not None),
        mean_deviation=(sum(f.mean_deviation for f in active) / len(active) if active else 0.0),
        worst_deviation=max((f.worst_deviation for f in active), default=0.0),
        jain=jain(ratios),
        wait_s=Quantiles.of(waits),
        wait_within_guarantee_s=Quantiles.of(guaranteed_waits),
        wait_by_size_s={
            label: Quantiles.of(
                [
                    job.first_start - job.submit
                    for job in jobs
                    if job.first_start is not None and low <= job.gpus <= high
                ]
            )
            for label, low, high in size_classes(machine_gpus)
        },
        jct_s=Quantiles.of(jcts),
        utilisation=recorder.busy_time / (capacity * window) if window > 0 else math.nan,
        goodput=recorder.effective_time / (capacity * window) if window > 0 else math.nan,
        contended=recorder.contended_time / window if window > 0 else math.nan,
        multi_gpu_jobs=len(multi),
        one_machine=_share(multi, lambda job: _placement(job).machines == 1),
        one_island=_share(multi, _in_one_island),
        island_possible_jobs=len(possible),
        one_island_when_possible=_share(possible, _in_one_island),
        mean_slowdown=(
            sum(_first_slowdown(sim, job) for job in multi) / len(multi) if multi else math.nan
        ),
        wide_jobs=len(wide),
        wide_fewest_machines=_share(
            wide, lambda job: _placement(job).machines == math.ceil(job.gpus / machine_gpus)
        ),
        preemptions=sum(1 for when, _ in in_window),
        lost_gpu_hours=sum(lost for _, lost in in_window) / 3600,
        gpu_hours_submitted=sum(job.gpus * job.trace.duration for job in jobs) / 3600,
        gpu_hours_busy=sum(job.busy_gpu_seconds for job in jobs) / 3600,
        tenants=tenants,
        timeline=timeline,
        timeline_hours=[(i + 0.5) * width / 3600 for i in range(buckets)],
        events=sim.events_processed,
        wall_seconds=wall_seconds,
    )


def _placement(job: engine.Job) -> cluster_model.Placement:
    assert job.first_placement is not None
    return job.first_placement


def _in_one_island(job: engine.Job) -> bool:
    placement = _placement(job)
    return placement.machines == 1 and placement.level <= topology.LinkLevel.NVLINK


def _first_slowdown(sim: engine.Simulation, job: engine.Job) -> float:
    placement = _placement(job)
    return sim.slowdowns.factor(
        job_id=job.job_id, gpus=job.gpus, machines=placement.machines, level=placement.level
    )


def _share(jobs: Sequence[engine.Job], test: object) -> float:
    if not jobs:
        return math.nan
    assert callable(test)
    return sum(1 for job in jobs if test(job)) / len(jobs)


def _padded(series: list[float], length: int, scale: float) -> list[float]:
    return [value / scale for value in series] + [0.0] * (length - len(series))
