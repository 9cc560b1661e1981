"""The report's figures, computed by hand for a two-job trace.

One DGX-1 (8 GPUs, islands 0-3 and 4-7), tenants a and b of equal weight, no guarantees:
a submits 4 GPUs x 100 s at t=0; b submits 8 GPUs x 100 s at t=50. Every policy runs a's job
on 0-3 from 0 to 100 and b's (which fits nowhere else and may not reclaim: its fair share is
4) from 100 to 200. Over the run [0, 200]:

- entitled: a 4 on [0, 100); b 4 on [50, 100) and 8 on [100, 200);
- deviation |alloc - entitled| / 8: a always 0; b 0.5 for 50 s of its 150 s of demand;
- Jain over x_a = 400/400 = 1 and x_b = 800/1000 = 0.8: 1.8² / (2 · 1.64);
- waits 0 and 50 s; JCT 100 and 150 s; busy 4·100 + 8·100 = 1200 of 8·200 GPU-seconds;
- both jobs on one machine, only a's in one NVLink island.
"""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import sim as b

from gpufair.sim import metrics, runner

TWO_JOBS = b.trace(b.job("a", at=0, gpus=4, runs=100), b.job("b", at=50, gpus=8, runs=100))


@pytest.fixture(params=list(runner.PolicyName), ids=str)
def figures(request: pytest.FixtureRequest) -> metrics.PolicyFigures:
    scenario = b.scenario(TWO_JOBS, nodes=1, tenants=[b.tenant("a"), b.tenant("b")])
    return runner.run_policy(scenario, request.param).figures


def test_deviation_from_entitled_share(figures: metrics.PolicyFigures) -> None:
    a, b_ = figures.tenants["a"], figures.tenants["b"]
    assert a.mean_deviation == 0
    assert a.worst_deviation == 0
    assert b_.mean_deviation == pytest.approx(0.5 * 50 / 150)
    assert b_.worst_deviation == pytest.approx(0.5)
    assert figures.mean_deviation == pytest.approx((0 + 0.5 * 50 / 150) / 2)
    assert figures.worst_deviation == pytest.approx(0.5)
    assert a.demand_hours == pytest.approx(100 / 3600)
    assert b_.demand_hours == pytest.approx(150 / 3600)


def test_jain_index(figures: metrics.PolicyFigures) -> None:
    assert figures.tenants["a"].share_ratio == pytest.approx(1.0)
    assert figures.tenants["b"].share_ratio == pytest.approx(0.8)
    assert figures.jain == pytest.approx(1.8**2 / (2 * (1 + 0.64)))


def test_waits_and_completion_times(figures: metrics.PolicyFigures) -> None:
    assert figures.wait_s.p50 == pytest.approx(25)
    assert figures.wait_s.p95 == pytest.approx(47.5)
    assert figures.wait_s.p99 == pytest.approx(49.5)
    assert figures.wait_by_size_s["2-4"].p99 == 0
    assert figures.wait_by_size_s["5-8"].p50 == pytest.approx(50)
    assert figures.wait_by_size_s["1"].count == figures.wait_by_size_s[">8"].count == 0
    assert figures.jct_s.mean == pytest.approx(125)
    assert figures.jct_s.p95 == pytest.approx(100 + 0.95 * 50)


def test_utilisation_placement_and_preemption(figures: metrics.PolicyFigures) -> None:
    assert figures.utilisation == pytest.approx(1200 / 1600)
    assert figures.goodput == pytest.approx(1200 / 1600)
    assert figures.multi_gpu_jobs == 2
    assert figures.one_machine == 1.0
    assert figures.one_island == 0.5
    assert figures.preemptions == 0
    assert figures.lost_gpu_hours == 0


def test_jobs_within_guarantee_are_counted_apart() -> None:
    scenario = b.scenario(
        TWO_JOBS, nodes=1, tenants=[b.tenant("a", guaranteed=4), b.tenant("b", guaranteed=4)]
    )
    figures = runner.run_policy(scenario, runner.PolicyName.QUOTA).figures
    assert figures.wait_within_guarantee_s.count == 1
    assert figures.wait_within_guarantee_s.p99 == 0


def test_jain_of_equal_ratios_is_one() -> None:
    assert metrics.jain([0.5, 0.5, 0.5]) == pytest.approx(1.0)
    assert metrics.jain([1.0, 0.0]) == pytest.approx(0.5)


def test_warm_up_jobs_load_the_cluster_but_are_not_counted() -> None:
    """A warm-up job holds the machine until 150; the measured window starts at 100."""
    jobs = dataclasses.replace(
        b.trace(b.job("w", at=0, gpus=8, runs=150), b.job("a", at=100, gpus=8, runs=100)),
        measure_from=100.0,
    )
    scenario = b.scenario(jobs, nodes=1, tenants=[b.tenant("w"), b.tenant("a")])
    figures = runner.run_policy(scenario, runner.PolicyName.DEFAULT).figures
    assert figures.jobs == 1
    assert figures.wait_s.p50 == pytest.approx(50)
    # Window [100, 250]: busy 8 GPUs throughout.
    assert figures.utilisation == pytest.approx(1.0)
    assert figures.contended == pytest.approx(50 / 150)
