"""The report's goals (issue 17) judged at their bars: each case moves one figure of a real
run to just inside or just outside its goal and checks the verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from tests.builders import sim as b

from gpufair.sim import goals, metrics, runner

Figures = dict[str, metrics.PolicyFigures]
TRACE = b.trace(b.job("a", at=0, gpus=4, runs=100), b.job("b", at=50, gpus=8, runs=100))
POLICIES = (runner.PolicyName.GPUFAIR, runner.PolicyName.DEFAULT, runner.PolicyName.QUOTA)


@pytest.fixture(scope="module")
def run() -> Figures:
    scenario = b.scenario(TRACE, nodes=1, tenants=[b.tenant("a"), b.tenant("b")])
    return {name.value: runner.run_policy(scenario, name).figures for name in POLICIES}


def tenant(figures: metrics.PolicyFigures, name: str, **changes: float) -> metrics.PolicyFigures:
    """``figures`` with tenant ``name``'s figures changed."""
    tenants = dict(figures.tenants)
    tenants[name] = dataclasses.replace(tenants[name], **changes)
    return dataclasses.replace(figures, tenants=tenants)


def waits(quantiles: metrics.Quantiles, **changes: float) -> metrics.Quantiles:
    return dataclasses.replace(quantiles, **changes)


Change = Callable[[Figures], Figures]


def gpufair(**changes: object) -> Change:
    return lambda run: {**run, "gpufair": dataclasses.replace(run["gpufair"], **changes)}


def both_tenants(policy: str, **changes: float) -> Change:
    return lambda run: {
        **run,
        policy: tenant(tenant(run[policy], "a", **changes), "b", **changes),
    }


def then(*steps: Change) -> Change:
    def apply(run: Figures) -> Figures:
        for step in steps:
            run = step(run)
        return run

    return apply


def jct(policy: str, mean: float) -> Change:
    return lambda run: {
        **run,
        policy: dataclasses.replace(run[policy], jct_s=waits(run[policy].jct_s, mean=mean)),
    }


CASES = [
    ("Jain's index (share / entitlement)", gpufair(jain=0.98), True),
    ("Jain's index (share / entitlement)", gpufair(jain=0.979), False),
    ("every tenant's share of its entitlement", both_tenants("gpufair", share_ratio=0.9), True),
    ("every tenant's share of its entitlement", both_tenants("gpufair", share_ratio=0.89), False),
    (
        "worst tenant's time-weighted deviation from its entitled share",
        both_tenants("gpufair", mean_deviation=0.05),
        True,
    ),
    (
        "worst tenant's time-weighted deviation from its entitled share",
        both_tenants("gpufair", mean_deviation=0.051),
        False,
    ),
    (
        "... against the best baseline's",
        then(
            both_tenants("gpufair", mean_deviation=0.02),
            both_tenants("default", mean_deviation=0.3),
            both_tenants("quota", mean_deviation=0.09),
        ),
        True,
    ),
    (
        "... against the best baseline's",
        then(
            both_tenants("gpufair", mean_deviation=0.04),
            both_tenants("default", mean_deviation=0.3),
            both_tenants("quota", mean_deviation=0.09),
        ),
        False,
    ),
    (
        "queue wait p99 of jobs within their guarantee",
        lambda run: gpufair(wait_within_guarantee_s=waits(run["gpufair"].wait_s, p99=120.0))(run),
        True,
    ),
    (
        "queue wait p99 of jobs within their guarantee",
        lambda run: gpufair(wait_within_guarantee_s=waits(run["gpufair"].wait_s, p99=121.0))(run),
        False,
    ),
    ("GPU-hours lost to preemption", gpufair(lost_gpu_hours=1.0, gpu_hours_submitted=100.0), True),
    ("GPU-hours lost to preemption", gpufair(lost_gpu_hours=1.1, gpu_hours_submitted=100.0), False),
    (
        "multi-GPU jobs in one NVLink island when one was free",
        gpufair(one_island_when_possible=0.95),
        True,
    ),
    (
        "multi-GPU jobs in one NVLink island when one was free",
        gpufair(one_island_when_possible=0.94),
        False,
    ),
    (
        "GPU utilisation (busy)",
        lambda run: {
            **gpufair(utilisation=0.85)(run),
            "quota": dataclasses.replace(run["quota"], utilisation=0.9),
            "default": dataclasses.replace(run["default"], utilisation=0.5),
        },
        True,
    ),
    (
        "GPU utilisation (busy)",
        lambda run: {
            **gpufair(utilisation=0.84)(run),
            "quota": dataclasses.replace(run["quota"], utilisation=0.9),
            "default": dataclasses.replace(run["default"], utilisation=0.5),
        },
        False,
    ),
    ("mean JCT against stock kube-scheduler", then(jct("gpufair", 100), jct("default", 130)), True),
    (
        "mean JCT against stock kube-scheduler",
        then(jct("gpufair", 100), jct("default", 129)),
        False,
    ),
]


@pytest.mark.parametrize(("goal", "change", "met"), CASES)
def test_a_goal_holds_up_to_its_bar(run: Figures, goal: str, change: Change, met: bool) -> None:
    verdicts = {g.goal: g.met for g in goals.check(list(change(run).values()))}
    assert verdicts[goal] is met


def test_wide_jobs_wait_less_than_under_stock_kube_scheduler(run: Figures) -> None:
    """The two-job trace has no job wider than a machine: a wider-than-8 class is judged
    only when the run has one, against the default policy's p95."""
    for ours, theirs, met in [(10.0, 20.0, True), (20.0, 20.0, False)]:
        wide = {">8": metrics.Quantiles(count=1, p50=ours, p95=ours, p99=ours, mean=ours)}
        moved = {
            **run,
            "gpufair": dataclasses.replace(run["gpufair"], wait_by_size_s=wide),
            "default": dataclasses.replace(
                run["default"],
                wait_by_size_s={
                    ">8": metrics.Quantiles(count=1, p50=theirs, p95=theirs, p99=theirs, mean=1)
                },
            ),
        }
        verdicts = {g.goal: g.met for g in goals.check(list(moved.values()))}
        assert verdicts["queue wait p95 of >8-GPU jobs"] is met


def test_goals_against_a_missing_baseline_are_not_judged(run: Figures) -> None:
    alone = {g.goal: g.met for g in goals.check([run["gpufair"]])}
    assert alone["mean JCT against stock kube-scheduler"] is None
    assert alone["... against the best baseline's"] is None
    assert alone["Jain's index (share / entitlement)"] is not None


def test_a_run_without_gpufair_has_no_goals(run: Figures) -> None:
    assert goals.check([run["default"], run["quota"]]) == []
    assert goals.to_markdown([]) == []


def test_the_markdown_counts_the_goals_met(run: Figures) -> None:
    checked = goals.check(list(run.values()))
    lines = goals.to_markdown(checked)
    met = sum(1 for g in checked if g.met)
    judged = sum(1 for g in checked if g.met is not None)
    assert f"gpufair meets {met} of the {judged} goals judged on this run." in lines
    assert len([line for line in lines if line.startswith("| ") and "verdict" not in line]) == len(
        checked
    )
