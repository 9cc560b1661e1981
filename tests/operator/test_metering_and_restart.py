"""Usage is metered exactly, survives a restart, is never counted twice; no eviction repeats.

"Restart" here means what it means for the real process: a new planner whose only memory is
the TenantQuota statuses as Kubernetes JSON (``SimCluster`` writes each planned status and reads
it back with the operator's own parser) plus the pods the API server still has.
"""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import operator as b

from gpufair.core import policy
from gpufair.operator import conditions, intents
from gpufair.state import model


def one_tenant(*pods: model.GpuPod, **tenant_changes: object) -> b.SimCluster:
    builder = b.tenant("a")
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1")},
        tenants={"a": dataclasses.replace(builder.build(), **tenant_changes)},
    )
    cluster.add(*pods)
    return cluster


def test_gpu_seconds_are_charged_for_exactly_the_time_pods_held_gpus() -> None:
    cluster = one_tenant(
        b.pod("a/early").gpus(2).bound("n1", at=0.0, indices=[0, 1]).build(),
        b.pod("a/late").gpus(2).bound("n1", at=10.0, indices=[2, 3]).build(),
    )
    for now in range(0, 101, 7):
        cluster.step(float(now))
    cluster.step(100.0)

    assert cluster.usage_of("a").gpu_seconds == pytest.approx(2 * 100 + 2 * 90, abs=1e-3)


def test_a_pod_that_ends_between_passes_is_charged_up_to_its_end() -> None:
    running = b.pod("a/p").gpus(4).bound("n1", at=0.0, indices=[0, 1, 2, 3]).build()
    cluster = one_tenant(running)
    cluster.step(0.0)
    cluster.step(10.0)
    del cluster.pods[running.uid]
    cluster.departed.append(
        dataclasses.replace(running, state=model.PodState.FINISHED, finished_at=12.5)
    )
    cluster.step(20.0)
    cluster.step(30.0)

    assert cluster.usage_of("a").gpu_seconds == pytest.approx(4 * 12.5, abs=1e-3)


def test_a_restart_loses_no_usage() -> None:
    """Persisted at t=50, down until t=120: the new planner charges the gap from the status,
    and keeps the seconds of a pod that was gone before the restart."""
    long = b.pod("a/long").gpus(3).bound("n1", at=0.0, indices=[0, 1, 2]).build()
    short = b.pod("a/short").gpus(1).bound("n1", at=0.0, indices=[7]).build()
    ended = dataclasses.replace(short, state=model.PodState.FINISHED, finished_at=30.0)

    before = one_tenant(long, short)
    before.step(0.0)
    del before.pods[short.uid]
    before.departed.append(ended)
    before.step(40.0)
    before.step(50.0)
    restarted = b.SimCluster(nodes=dict(before.nodes), tenants=dict(before.tenants))
    restarted.add(long)
    restarted.step(120.0)

    assert restarted.usage_of("a").gpu_seconds == pytest.approx(3 * 120 + 1 * 30, abs=1e-3)


@pytest.mark.parametrize("repeats", [pytest.param(2, id="twice"), pytest.param(5, id="five")])
def test_replaying_a_pass_never_counts_twice(repeats: int) -> None:
    """A status write retried, or a second replica replaying the same instant, adds nothing."""
    cluster = one_tenant(b.pod("a/p").gpus(2).bound("n1", at=0.0, indices=[0, 1]).build())
    cluster.step(0.0)
    for _ in range(repeats):
        cluster.step(60.0)
    cluster.step(30.0)  # a clock that went backwards is ignored as well

    assert cluster.usage_of("a").gpu_seconds == pytest.approx(2 * 60, abs=1e-3)


def test_decayed_usage_survives_the_status_round_trip() -> None:
    cluster = one_tenant(b.pod("a/p").gpus(8).bound("n1", at=0.0).build())
    cluster.step(0.0)
    cluster.step(3600.0)
    in_memory = cluster.last
    assert in_memory is not None
    record = cluster.usage_of("a")
    assert record == in_memory.tenants["a"].pools[0].usage
    assert 0 < record.decayed_gpu_seconds < record.gpu_seconds


def test_a_restart_mid_reclaim_repeats_no_eviction() -> None:
    from tests.operator.test_reclaim_settles import borrower_and_owner, run

    uninterrupted = borrower_and_owner()
    run(uninterrupted, passes=60)

    cluster = borrower_and_owner()
    first = cluster.step(0.0)
    assert first.evictions, "the reclaim started"
    # The operator dies now; a new one starts from the persisted statuses and the pods the
    # API server has (the victims are terminating).
    restarted = b.SimCluster(nodes=dict(cluster.nodes), tenants=dict(cluster.tenants))
    restarted.add(*cluster.pods.values())
    assert restarted.step(1.0).evictions == ()
    restarted.evictions[:0] = list(first.evictions)
    restarted.world(5.0)
    run(restarted, passes=59, start=5.0)

    evicted = [e.pod.uid for e in restarted.evictions]
    assert len(evicted) == len(set(evicted))
    assert len(evicted) == len(uninterrupted.evictions)
    assert (restarted.held("a"), restarted.held("b")) == (
        uninterrupted.held("a"),
        uninterrupted.held("b"),
    )


def test_a_restart_repeats_no_condition_event() -> None:
    cluster = one_tenant()
    first = cluster.step(0.0)
    assert any(e.target.name == "a" for e in first.events)
    restarted = b.SimCluster(nodes=dict(cluster.nodes), tenants=dict(cluster.tenants))
    assert [e for e in restarted.step(10.0).events if e.target.kind == "TenantQuota"] == []


def test_hard_budget_stops_admission_and_says_why() -> None:
    cluster = one_tenant(
        b.pod("a/running").gpus(4).bound("n1", at=0.0, indices=[0, 1, 2, 3]).build(),
        b.pod("a/waiting").gpus(1).build(),
        budget=model.Budget(
            gpu_hours=1.0, period_seconds=720 * b.HOUR, enforcement=policy.BudgetEnforcement.HARD
        ),
    )
    cluster.step(0.0)
    decided = cluster.step(1800.0)  # 4 GPUs x 30 min = 2 GPU-hours > 1

    assert decided.admissions == ()
    status = decided.tenants["a"]
    assert status.budget_exhausted
    budget = next(c for c in status.conditions if c.type == conditions.Type.BUDGET_EXHAUSTED)
    assert budget.status == "True"
    assert "new pods wait" in budget.message
    assert any(
        e.reason == "BudgetExhaustedTrue" and e.type == intents.EventType.WARNING
        for e in decided.events
    )


def test_a_spec_that_turns_invalid_keeps_the_metered_usage() -> None:
    running = b.pod("a/p").gpus(2).bound("n1", at=0.0, indices=[0, 1]).build()
    short = b.pod("a/short").gpus(1).bound("n1", at=0.0, indices=[7]).build()
    cluster = one_tenant(running, short)
    cluster.step(0.0)
    del cluster.pods[short.uid]
    cluster.departed.append(
        dataclasses.replace(short, state=model.PodState.FINISHED, finished_at=50.0)
    )
    cluster.step(100.0)
    valid = cluster.tenants["a"]
    cluster.tenants["a"] = dataclasses.replace(valid, invalid="spec.weight: must be > 0")
    cluster.step(150.0)
    assert cluster.usage_of("a").gpu_seconds == pytest.approx(2 * 100 + 50, abs=1e-3)

    cluster.tenants["a"] = dataclasses.replace(cluster.tenants["a"], invalid=None)
    cluster.step(200.0)
    assert cluster.usage_of("a").gpu_seconds == pytest.approx(2 * 200 + 50, abs=1e-3)
