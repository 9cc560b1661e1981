"""The simulator's caches answer what a fresh computation would: the engine's fair shares, and
the gpufair policy's views of waiting jobs, running pods and tenants (kept between passes so a
replay of the whole Philly trace stays within a minute, docs/benchmarks.md "Speed")."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.builders import sim as b

from gpufair.core import fairshare
from gpufair.sim import engine, gpufair_policy, queues, runner
from gpufair.state import model, rules, scheduling

TENANTS = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=6), b.tenant("c", guaranteed=6)]

rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=600),
        st.integers(min_value=1, max_value=400),
        st.sampled_from([1, 1, 1, 2, 3, 4, 8, 12]),
    ),
    min_size=1,
    max_size=30,
)


def fresh_shares(sim: engine.Simulation) -> fairshare.PoolShares:
    return fairshare.compute(
        sim.cluster.capacity,
        [
            rules.tenant_claim(
                tenant=spec.name,
                weight=spec.weight,
                guaranteed=spec.guaranteed,
                limit=spec.limit,
                lendable=None,
                held=sim.allocated[spec.name],
                waiting=sim.waiting[spec.name],
            )
            for spec in sim.tenants.values()
        ],
    )


def fresh_bound_pods(sim: engine.Simulation, job: engine.Job) -> list[tuple[str, float | None]]:
    """A running job's pods as (uid, last checkpoint), from the job's record."""
    interval = sim.settings.checkpoint_interval
    ran = sim.now - job.started
    checkpoint = (
        job.started + (ran // interval) * interval if interval > 0 and ran >= interval else None
    )
    assert job.placement is not None
    return [
        (gpufair_policy.pod_name(job.job_id, part, job.preemptions), checkpoint)
        for part in range(job.placement.machines)
    ]


def decided(decisions: scheduling.Decisions) -> tuple[list[str], list[str], dict[str, float]]:
    """What a pass changes: admitted and evicted pods (uids), and the fair shares."""
    shares = decisions.shares[gpufair_policy.POOL]
    return (
        [a.pod.uid for a in decisions.admissions],
        [e.pod.uid for e in decisions.evictions],
        {name: shares.share(name) for name in decisions.tenants},
    )


class AuditedGpufair(gpufair_policy.Gpufair):
    """gpufair's policy that checks, at every pass, that the pass shown only the heads of the
    queues decides what it decides shown every waiting job, and that its cached pods are those
    of the jobs' records."""

    audited = 0

    def _snapshot(self, sim: engine.Simulation, *, whole_queue: bool = False) -> model.Snapshot:
        shown = super()._snapshot(sim)
        whole = super()._snapshot(sim, whole_queue=True)
        assert decided(scheduling.schedule(shown, half_life=self.half_life)) == decided(
            scheduling.schedule(whole, half_life=self.half_life)
        )
        bound = {pod.uid: pod for pod in shown.pods if pod.state is not model.PodState.GATED}
        for job in sim.running.values():
            assert [
                (uid, bound[uid].checkpoint_at) for uid, _ in fresh_bound_pods(sim, job)
            ] == fresh_bound_pods(sim, job)
        waiting = {job.job_id for job in sim.jobs if job.status is engine.JobStatus.WAITING}
        assert {gpufair_policy.job_of(pod.uid) for pod in whole.pods if pod.waiting} == waiting
        self.audited += 1
        return shown


class SharesAudit:
    """Observer: the engine's cached shares are those of the current demand."""

    def __init__(self) -> None:
        self.checks = 0

    def advance(self, sim: engine.Simulation, until: float) -> None:
        assert sim.shares == fresh_shares(sim)
        self.checks += 1


BORROWED_THEN_RECLAIMED = [("a", 0, 1000, 1)] * 16 + [("b", 10, 100, 1)] * 3
"""a borrows the whole cluster; three of b's jobs then reclaim in one pass (one queue)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, checkpoint=st.sampled_from([0.0, 60.0]))
@example(rows=BORROWED_THEN_RECLAIMED, checkpoint=0.0)
def test_cached_views_match_fresh_ones(
    rows: list[tuple[str, int, int, int]], checkpoint: float
) -> None:
    jobs = b.trace(*[b.job(t, at=at, gpus=g, runs=d) for t, at, d, g in rows])
    scenario = b.scenario(
        jobs, nodes=2, types=[b.dgx1(), b.pcie8()], tenants=TENANTS, checkpoint_interval=checkpoint
    )
    sim = engine.Simulation(
        trace=scenario.trace,
        cluster=scenario.build_cluster(),
        tenants=scenario.tenants,
        slowdowns=scenario.slowdowns,
        settings=scenario.settings,
    )
    built = scenario.build_policy(runner.PolicyName.GPUFAIR)
    assert isinstance(built, gpufair_policy.Gpufair)
    policy = AuditedGpufair(
        **{field.name: getattr(built, field.name) for field in dataclasses.fields(built)}
    )
    audit = SharesAudit()
    sim.run(policy, observers=[audit])
    assert sim.done == len(sim.jobs)
    assert policy.audited > 0
    assert audit.checks > 0


def test_oldest_are_the_first_of_each_queue_as_many_as_asked_for_its_size() -> None:
    waiting = queues.WaitingJobs()
    jobs = b.trace(
        b.job("a", at=0, gpus=1),
        b.job("a", at=1, gpus=4),
        b.job("b", at=2, gpus=1),
        b.job("a", at=3, gpus=1),
        b.job("b", at=4, gpus=8),
        b.job("a", at=5, gpus=1),
    )
    for record in jobs.jobs:
        waiting.push(engine.Job(trace=record, remaining=record.duration))
    asked: list[int] = []

    def two_small_none_wide(gpus: int) -> int:
        asked.append(gpus)
        return 2 if gpus < 8 else 0

    assert sorted(waiting.oldest(two_small_none_wide)) == [("a", 0), ("a", 1), ("a", 3), ("b", 2)]
    assert sorted(asked) == [1, 1, 4, 8]
