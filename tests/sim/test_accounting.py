"""The engine's books balance under every policy: work in = work out, no GPU is used twice,
and every submitted job is waiting, running or done at every instant."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import sim as b

from gpufair.sim import engine, runner, slowdown

POLICIES = list(runner.PolicyName)

CONTENDED = b.trace(
    *[b.job("a", at=0, gpus=1, runs=500) for _ in range(8)],
    b.job("b", at=10, gpus=2, runs=300),
    b.job("b", at=20, gpus=4, runs=200),
    b.job("c", at=30, gpus=8, runs=100),
    b.job("a", at=40, gpus=3, runs=50),
    b.job("c", at=45, gpus=12, runs=80),
)
TENANTS = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=6), b.tenant("c", guaranteed=6)]


class StatusAudit:
    """Observer: at every state change, waiting + running + done = submitted."""

    def __init__(self) -> None:
        self.checks = 0

    def advance(self, sim: engine.Simulation, until: float) -> None:
        counts = sim.counts()
        submitted = sum(1 for job in sim.jobs if job.submit < until)
        assert counts[engine.JobStatus.FUTURE] == len(sim.jobs) - sim.submitted
        assert (
            counts[engine.JobStatus.WAITING]
            + counts[engine.JobStatus.RUNNING]
            + counts[engine.JobStatus.DONE]
            == sim.submitted
            == submitted
        )
        assert len(sim.running) == counts[engine.JobStatus.RUNNING]
        self.checks += 1


def replay(scenario: runner.Scenario, name: runner.PolicyName) -> engine.Simulation:
    sim = engine.Simulation(
        trace=scenario.trace,
        cluster=scenario.build_cluster(),
        tenants=scenario.tenants,
        slowdowns=scenario.slowdowns,
        settings=scenario.settings,
    )
    audit = StatusAudit()
    sim.run(scenario.build_policy(name), observers=[audit])
    assert audit.checks > 0
    return sim


def assert_no_gpu_used_twice(sim: engine.Simulation) -> None:
    """Rebuild every GPU's holders from the event log; their run intervals never overlap."""
    holder: dict[tuple[int, int], int] = {}
    for event in sim.log:
        for part in event.parts:
            for bit in range(sim.cluster.machine_gpus):
                if not part.mask >> bit & 1:
                    continue
                gpu = (part.node, bit)
                if event.kind is engine.EventKind.START:
                    assert gpu not in holder, (
                        f"job {event.job_id} started at {event.time} on GPU {gpu}"
                        f" held by job {holder.get(gpu)}"
                    )
                    holder[gpu] = event.job_id
                else:
                    assert holder.pop(gpu) == event.job_id
    assert not holder


def assert_work_balances(sim: engine.Simulation) -> None:
    submitted = sum(job.gpus * job.trace.duration for job in sim.jobs)
    done = sum(job.done_gpu_seconds for job in sim.jobs)
    assert done == pytest.approx(submitted)
    assert all(job.status is engine.JobStatus.DONE for job in sim.jobs)
    assert sim.cluster.total_free == sim.cluster.capacity


@pytest.mark.parametrize("name", POLICIES, ids=str)
def test_contended_trace_balances(name: runner.PolicyName) -> None:
    sim = replay(b.scenario(CONTENDED, nodes=2, tenants=TENANTS), name)
    assert_work_balances(sim)
    assert_no_gpu_used_twice(sim)


@pytest.mark.parametrize("name", POLICIES, ids=str)
def test_busy_gpu_time_equals_work_without_slowdown_or_preemption(
    name: runner.PolicyName,
) -> None:
    """With slowdowns off, busy GPU-seconds (integrated by the cluster-level recorder) are the
    submitted GPU-seconds plus what preemption threw away, and nothing else."""
    result = runner.run_policy(b.scenario(CONTENDED, nodes=2, tenants=TENANTS), name)
    sim, figures = result.simulation, result.figures
    submitted = sum(job.gpus * job.trace.duration for job in sim.jobs) / 3600
    assert figures.gpu_hours_busy == pytest.approx(submitted + figures.lost_gpu_hours)
    recorded_busy = figures.utilisation * sim.cluster.capacity * sim.now / 3600
    assert recorded_busy == pytest.approx(figures.gpu_hours_busy)


@pytest.mark.parametrize("name", POLICIES, ids=str)
def test_slowdown_stretches_busy_time_not_work(name: runner.PolicyName) -> None:
    spread = b.trace(b.job("a", at=0, gpus=16, runs=100), b.job("a", at=1, gpus=4, runs=100))
    scenario = b.scenario(spread, nodes=3, tenants=[b.tenant("a")], slowdowns=slowdown.uniform(2))
    sim = replay(scenario, name)
    assert_work_balances(sim)
    busy = sum(job.busy_gpu_seconds for job in sim.jobs)
    expected = sum(job.gpus * job.trace.duration * job.slowdown for job in sim.jobs)
    assert busy == pytest.approx(expected)


rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=500),
        st.integers(min_value=1, max_value=400),
        st.sampled_from([1, 1, 2, 3, 4, 8, 12, 16]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, name=st.sampled_from(POLICIES), checkpoint=st.sampled_from([0.0, 60.0]))
def test_any_trace_balances(
    rows: list[tuple[str, int, int, int]], name: runner.PolicyName, checkpoint: float
) -> None:
    jobs = b.trace(*[b.job(t, at=at, gpus=g, runs=d) for t, at, d, g in rows])
    scenario = b.scenario(
        jobs,
        nodes=2,
        types=[b.dgx1(), b.pcie8()],
        tenants=TENANTS,
        checkpoint_interval=checkpoint,
        slowdowns=slowdown.uniform(1.5),
    )
    sim = replay(scenario, name)
    assert_work_balances(sim)
    assert_no_gpu_used_twice(sim)
    for job in sim.jobs:
        assert job.first_start is not None
        assert job.first_start >= job.submit
        assert job.finished is not None
        assert not math.isnan(job.finished)
