"""Reclaim settles: competing tenants end at their fair shares, and nobody is evicted back.

Each test runs the real planner pass after pass on a :class:`SimCluster` (admitted pods bind,
evicted pods terminate and are recreated by their job, behind the gate again), so a loop in
which A evicts B and B evicts A back would show up as evictions that never stop.
"""

from __future__ import annotations

import dataclasses

import hypothesis
import pytest
from hypothesis import strategies as st
from tests.builders import operator as b

from gpufair.operator import plan
from gpufair.state import model

TICK = 5.0


def run(cluster: b.SimCluster, *, passes: int, start: float = 0.0) -> float:
    now = start
    for _ in range(passes):
        cluster.step(now)
        now += TICK
        cluster.world(now)
    return now


def borrower_and_owner(*, weight_b: float = 1.0, guaranteed: int = 0) -> b.SimCluster:
    """Tenant a holds all 16 GPUs of two nodes (borrowing); tenant b then queues 16 pods."""
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1"), "n2": b.node("n2")},
        tenants={
            "a": b.tenant("a").pool(guaranteed=guaranteed).build(),
            "b": b.tenant("b").weight(weight_b).pool(guaranteed=guaranteed).build(),
        },
    )
    for i in range(16):
        cluster.add(b.pod(f"a/p{i}").bound(f"n{1 + i // 8}", at=0.0, indices=[i % 8]).build())
    for i in range(16):
        cluster.add(b.pod(f"b/q{i}").created(1.0).build())
    return cluster


@pytest.mark.parametrize(
    ("weight_b", "guaranteed", "share_a", "share_b"),
    [
        pytest.param(1.0, 0, 8, 8, id="equal-weights"),
        pytest.param(3.0, 0, 4, 12, id="b-weighs-three"),
        pytest.param(1.0, 8, 8, 8, id="equal-guarantees"),
    ],
)
def test_competing_tenants_settle_at_their_fair_shares(
    weight_b: float, guaranteed: int, share_a: int, share_b: int
) -> None:
    cluster = borrower_and_owner(weight_b=weight_b, guaranteed=guaranteed)
    now = run(cluster, passes=40)
    assert (cluster.held("a"), cluster.held("b")) == (share_a, share_b)
    settled = len(cluster.evictions)

    run(cluster, passes=200, start=now)

    assert len(cluster.evictions) == settled, "evictions went on after the shares were reached"
    assert (cluster.held("a"), cluster.held("b")) == (share_a, share_b)
    assert settled == 16 - share_a, "exactly the GPUs above a's share were reclaimed"
    assert {e.tenant for e in cluster.evictions} == {"a"}
    assert {e.preemptor for e in cluster.evictions} == {"b"}


def test_no_pod_is_evicted_twice_and_victims_never_drop_below_their_share() -> None:
    cluster = borrower_and_owner()
    now = 0.0
    for _ in range(60):
        decided = cluster.step(now)
        for eviction in decided.evictions:
            status = decided.tenants[eviction.tenant].pools[0]
            # after step() the victims are terminating: held() counts what the tenant keeps
            assert cluster.held(eviction.tenant) >= status.fair_share - 1e-6
        now += TICK
        cluster.world(now)
    victims = [e.pod.uid for e in cluster.evictions]
    assert len(victims) == len(set(victims))


def test_one_reclaim_at_a_time_per_pool() -> None:
    """While evicted pods are still terminating, no further eviction is issued."""
    cluster = borrower_and_owner()
    first = cluster.step(0.0)
    assert first.evictions
    for now in (1.0, 2.0, 3.0):  # the world has not moved: victims still terminating
        assert cluster.step(now).evictions == ()


def test_a_tenant_at_its_share_does_not_reclaim_from_a_borrower_below_it() -> None:
    """b got its 8; a's recreated pods wait, but a is at its share too: nothing happens."""
    cluster = borrower_and_owner()
    now = run(cluster, passes=40)
    waiting_a = [
        p for p in cluster.pods.values() if p.namespace == "a" and p.state is model.PodState.GATED
    ]
    assert waiting_a, "a's evicted pods came back and wait"
    assert cluster.step(now).evictions == ()


def test_idle_guarantee_is_lent_and_reclaimed_when_its_owner_returns() -> None:
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1")},
        tenants={
            "owner": b.tenant("owner").pool(guaranteed=6).build(),
            "borrower": b.tenant("borrower").build(),
        },
    )
    for i in range(8):
        cluster.add(b.pod(f"borrower/p{i}").build())
    now = run(cluster, passes=5)
    assert cluster.held("borrower") == 8, "idle guarantee is lent (work conserving)"

    for i in range(6):
        cluster.add(b.pod(f"owner/o{i}").created(now).build())
    now = run(cluster, passes=30, start=now)

    assert cluster.held("owner") == 6
    assert cluster.held("borrower") == 2
    assert len(cluster.evictions) == 6
    run(cluster, passes=100, start=now)
    assert len(cluster.evictions) == 6


def test_pods_whose_eviction_was_refused_are_not_chosen_again() -> None:
    """A disruption budget refused the first victims (HTTP 429): others are chosen meanwhile."""
    cluster = borrower_and_owner()
    first = plan.plan(cluster.snapshot(0.0), half_life=cluster.half_life)
    refused = frozenset(e.pod.uid for e in first.evictions)
    assert refused

    retry = plan.plan(
        dataclasses.replace(cluster.snapshot(1.0), blocked=refused), half_life=cluster.half_life
    )

    assert retry.evictions
    assert not {e.pod.uid for e in retry.evictions} & refused


def test_gpus_promised_to_admitted_pods_are_not_counted_free_for_reclaim() -> None:
    """o0 was admitted into the one free GPU but is not bound yet; o1 still needs a reclaim."""
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1")},
        tenants={"a": b.tenant("a").build(), "b": b.tenant("b").pool(guaranteed=4).build()},
    )
    cluster.add(*(b.pod(f"a/p{i}").bound("n1", indices=[i]).build() for i in range(7)))
    cluster.add(b.pod("b/o0").pending().build(), b.pod("b/o1").created(1.0).build())

    decided = cluster.step(10.0)

    assert [e.for_pod.key for e in decided.evictions] == ["b/o1"]


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    weights=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=2, max_size=3),
    guarantees=st.lists(st.integers(min_value=0, max_value=4), min_size=3, max_size=3),
    sizes=st.lists(st.sampled_from([1, 2]), min_size=3, max_size=3),
)
def test_any_contention_settles_and_no_tenant_is_both_victim_and_preemptor(
    weights: list[float], guarantees: list[int], sizes: list[int]
) -> None:
    """Two or three tenants, all wanting the whole pool; the first one holds it at the start."""
    names = ["t0", "t1", "t2"][: len(weights)]
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1"), "n2": b.node("n2")},
        tenants={
            name: b.tenant(name).weight(weight).pool(guaranteed=guarantee).build()
            for name, weight, guarantee in zip(names, weights, guarantees, strict=False)
        },
    )
    for i in range(16):
        cluster.add(b.pod(f"t0/p{i}").bound(f"n{1 + i // 8}", indices=[i % 8]).build())
    for index, name in enumerate(names[1:], start=1):
        size = sizes[index]
        cluster.add(
            *(b.pod(f"{name}/q{i}").gpus(size).created(1.0).build() for i in range(16 // size))
        )

    now = run(cluster, passes=80)
    settled = len(cluster.evictions)
    run(cluster, passes=80, start=now)

    assert len(cluster.evictions) == settled
    victims = [e.pod.uid for e in cluster.evictions]
    assert len(victims) == len(set(victims))
    assert not {e.tenant for e in cluster.evictions} & {e.preemptor for e in cluster.evictions}
