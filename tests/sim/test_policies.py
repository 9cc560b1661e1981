"""What each policy does on small traces: FCFS for default, reclaim for quota and gpufair,
topology-aware versus topology-blind placement."""

from __future__ import annotations

import pytest
from tests.builders import sim as b

from gpufair.sim import engine, runner


def replay(scenario: runner.Scenario, name: runner.PolicyName) -> engine.Simulation:
    return runner.run_policy(scenario, name).simulation


def start_order(sim: engine.Simulation) -> list[int]:
    return [
        job.job_id
        for job in sorted(
            sim.jobs,
            key=lambda job: (job.first_start if job.first_start is not None else 1e18, job.job_id),
        )
    ]


def test_default_starts_jobs_in_submit_order_across_tenants() -> None:
    jobs = b.trace(
        b.job("a", at=0, gpus=8, runs=100),
        b.job("b", at=1, gpus=4, runs=100),
        b.job("a", at=2, gpus=4, runs=100),
        b.job("c", at=3, gpus=4, runs=100),
        b.job("b", at=4, gpus=2, runs=100),
    )
    sim = replay(b.scenario(jobs, nodes=1), runner.PolicyName.DEFAULT)
    assert start_order(sim) == [0, 1, 2, 3, 4]
    starts = [job.first_start for job in sim.jobs]
    assert starts == [0, 100, 100, 200, 200]


def test_default_lets_a_small_job_pass_one_that_does_not_fit() -> None:
    """kube-scheduler skips an unschedulable pod; it does not block the queue."""
    jobs = b.trace(
        b.job("a", at=0, gpus=6, runs=100),
        b.job("b", at=1, gpus=4, runs=100),
        b.job("c", at=2, gpus=2, runs=100),
    )
    sim = replay(b.scenario(jobs, nodes=1), runner.PolicyName.DEFAULT)
    assert [job.first_start for job in sim.jobs] == [0, 100, 2]


def test_default_never_preempts() -> None:
    jobs = b.trace(
        *[b.job("a", at=0, runs=1000) for _ in range(8)],
        b.job("b", at=10, gpus=2, runs=100),
    )
    tenants = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=4)]
    sim = replay(b.scenario(jobs, nodes=1, tenants=tenants), runner.PolicyName.DEFAULT)
    assert sim.preemptions == 0
    assert sim.jobs[8].first_start == 1000


BORROWED = b.trace(
    *[b.job("a", at=0, runs=1000) for _ in range(8)],
    b.job("b", at=10, gpus=1, runs=100),
    b.job("b", at=10, gpus=1, runs=100),
)


RECLAIMING = [
    runner.PolicyName.QUOTA,
    runner.PolicyName.KUEUE_TAS,
    runner.PolicyName.GANG_BINPACK,
    runner.PolicyName.GPUFAIR,
]


@pytest.mark.parametrize("name", RECLAIMING[:-1], ids=str)
def test_owner_reclaims_its_guarantee_from_a_borrower(name: runner.PolicyName) -> None:
    tenants = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=4)]
    sim = replay(b.scenario(BORROWED, nodes=1, tenants=tenants), name)
    assert sim.preemptions == 2
    assert [job.first_start for job in sim.jobs[8:]] == [10, 10]
    victims = [job for job in sim.jobs[:8] if job.preemptions]
    assert len(victims) == 2
    assert all(job.tenant == "a" for job in victims)
    # Without checkpoints the victims lost their 10 s of work; they restart when b's jobs
    # finish at 110 and run in full again.
    assert all(job.lost_gpu_seconds == 10 for job in victims)
    assert all(job.finished == pytest.approx(110 + 1000) for job in victims)


def test_gpufair_reclaims_as_the_operator_one_eviction_at_a_time_with_a_grace_period() -> None:
    """The operator's pass: one reclaim per pool and pass, none while the victim terminates
    (30 s grace); the freed GPUs go to b at the pass their release triggers, and the bind
    triggers the next pass (0.5 s later), which reclaims for b's second job."""
    tenants = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=4)]
    sim = replay(b.scenario(BORROWED, nodes=1, tenants=tenants), runner.PolicyName.GPUFAIR)
    assert sim.preemptions == 2
    assert [job.first_start for job in sim.jobs[8:]] == [40, 70.5]
    victims = [job for job in sim.jobs[:8] if job.preemptions]
    assert all(job.tenant == "a" for job in victims)
    # Without checkpoints a victim loses all it ran, its grace period included; it restarts
    # when one of b's jobs finishes (at 140 and 170.5) and runs in full again.
    assert sorted(job.lost_gpu_seconds for job in victims) == [40, 70.5]
    assert sorted(job.finished or 0 for job in victims) == [1140, 1170.5]


@pytest.mark.parametrize("name", RECLAIMING, ids=str)
def test_no_reclaim_beyond_what_the_owner_is_due(name: runner.PolicyName) -> None:
    """b's request fits neither its guarantee (quota) nor its fair share (gpufair): no eviction."""
    jobs = b.trace(
        *[b.job("a", at=0, runs=1000) for _ in range(8)],
        b.job("b", at=10, gpus=8, runs=100),
    )
    tenants = [b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=4)]
    sim = replay(b.scenario(jobs, nodes=1, tenants=tenants), name)
    assert sim.preemptions == 0
    assert sim.jobs[8].first_start == 1000


def test_gpufair_keeps_a_4_gpu_job_in_one_nvlink_island() -> None:
    jobs = b.trace(b.job("a", at=0, gpus=1), b.job("a", at=1, gpus=4))
    sim = replay(b.scenario(jobs, nodes=2), runner.PolicyName.GPUFAIR)
    placement = sim.jobs[1].first_placement
    assert placement is not None
    assert placement.machines == 1
    assert placement.level == placement.level.NVLINK


def test_default_spreads_one_gpu_pods_over_the_emptiest_machines() -> None:
    jobs = b.trace(b.job("a", at=0, gpus=4))
    sim = replay(b.scenario(jobs, nodes=4), runner.PolicyName.DEFAULT)
    placement = sim.jobs[0].first_placement
    assert placement is not None
    assert placement.machines == 4


def test_default_with_job_pods_keeps_a_job_on_one_machine_but_ignores_links() -> None:
    jobs = b.trace(b.job("a", at=0, gpus=1, runs=50), b.job("a", at=1, gpus=4))
    sim = replay(
        b.scenario(jobs, nodes=1, baseline_pods=runner.BaselinePods.JOB),
        runner.PolicyName.DEFAULT,
    )
    placement = sim.jobs[1].first_placement
    assert placement is not None
    assert placement.machines == 1
    # GPU 0 is taken, so the lowest free indices 1-4 straddle both DGX-1 islands.
    assert placement.level > placement.level.NVLINK


def test_kueue_tas_packs_a_job_onto_the_fullest_machine_but_ignores_links() -> None:
    jobs = b.trace(b.job("a", at=0, gpus=1, runs=50), b.job("a", at=1, gpus=4))
    sim = replay(b.scenario(jobs, nodes=3), runner.PolicyName.KUEUE_TAS)
    placement = sim.jobs[1].first_placement
    assert placement is not None
    assert [part.node for part in placement.parts] == [0]
    # Node 0's GPU 0 is taken: the lowest free indices 1-4 straddle both DGX-1 islands.
    assert placement.level > placement.level.NVLINK


@pytest.mark.parametrize(
    ("name", "b_before_a"),
    [(runner.PolicyName.GANG_BINPACK, True), (runner.PolicyName.QUOTA, False)],
    ids=str,
)
def test_gang_binpack_serves_the_queue_below_its_deserved_share(
    name: runner.PolicyName, b_before_a: bool
) -> None:
    """a holds both machines; b's job waits behind a's second under FIFO quotas, while the
    Volcano-style scheduler reclaims one of a's jobs for b (a is above its deserved half)."""
    jobs = b.trace(
        b.job("a", at=0, gpus=8, runs=1000),
        b.job("a", at=0, gpus=8, runs=100),
        b.job("a", at=1, gpus=8, runs=100),
        b.job("b", at=2, gpus=8, runs=100),
    )
    sim = replay(b.scenario(jobs, nodes=2), name)
    a_second, b_job = sim.jobs[2].first_start, sim.jobs[3].first_start
    assert a_second is not None
    assert b_job is not None
    assert (b_job < a_second) is b_before_a
    assert sim.preemptions == (1 if b_before_a else 0)
