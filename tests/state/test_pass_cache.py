"""A pass that reuses what earlier passes computed (``PassCache``, ``PlanCache``) decides
exactly what a pass from scratch decides, whatever the watch changed in between (issue 16).

Hypothesis drives a stream of snapshots the way the operator's store produces them: a few
objects replaced per step (pods admitted, bound, terminating, finished, deleted or created,
alone or as a group; nodes relabelled, cordoned or re-sent; quotas and namespaces edited;
statuses written, so that each quota carries the usage and conditions written, or reset; time
moving on; pods reordered),
and every step is planned twice: with the cache kept since the first step, and afresh.
"""

from __future__ import annotations

import dataclasses
import random

import hypothesis
import hypothesis.strategies as st
from tests.builders import topology as topologies

from gpufair.bench import operator as bench
from gpufair.operator import plan
from gpufair.state import groups, model, passcache, scheduling

HALF_LIFE = 3600.0
SHAPES = (topologies.dgx1(), topologies.nvswitch8(), topologies.pcie8())


def start(seed: int) -> model.Snapshot:
    """The benchmark's cluster, small, plus pods asking for a zone no node is in yet."""
    snap = bench.build_snapshot(nodes=24, waiting=16, tenants=5, shapes=SHAPES, seed=seed)
    elsewhere = tuple(
        model.GpuPod(
            namespace=tenant,
            name=f"zone-9-{tenant}",
            uid=f"zone-9-{tenant}",
            gpus=1,
            state=model.PodState.GATED,
            created_at=snap.now - 5.0,
            node_selector={bench.ZONE_LABEL: "zone-9"},
        )
        for tenant in sorted(snap.tenants)
    )
    return dataclasses.replace(snap, pods=(*snap.pods, *elsewhere))


def _pods(snap: model.Snapshot, rng: random.Random, *states: model.PodState) -> list[int]:
    return [i for i, pod in enumerate(snap.pods) if not states or pod.state in states]


def _replace_pod(snap: model.Snapshot, index: int, pod: model.GpuPod | None) -> model.Snapshot:
    pods = list(snap.pods)
    if pod is None:
        del pods[index]
    else:
        pods[index] = pod
    return dataclasses.replace(snap, pods=tuple(pods))


def relabel(snap: model.Snapshot, name: str, label: str, value: str) -> model.Snapshot:
    node = snap.nodes[name]
    changed = dataclasses.replace(node, labels={**node.labels, label: value})
    return dataclasses.replace(snap, nodes={**snap.nodes, name: changed})


def step(snap: model.Snapshot, op: int, rng: random.Random) -> model.Snapshot:
    """One watch event (or the clock) applied to the snapshot, as the store would."""
    now = snap.now
    nodes = sorted(snap.nodes)
    if op == 0:
        return dataclasses.replace(snap, now=now + rng.uniform(0.5, 600.0))
    if op == 1:  # a gated pod admitted (its gate came off)
        choices = _pods(snap, rng, model.PodState.GATED)
        if choices:
            i = rng.choice(choices)
            pod = dataclasses.replace(snap.pods[i], state=model.PodState.PENDING, admitted_at=now)
            return _replace_pod(snap, i, pod)
    if op == 2:  # a waiting pod bound to a node
        choices = _pods(snap, rng, model.PodState.GATED, model.PodState.PENDING)
        if choices:
            i = rng.choice(choices)
            pod = dataclasses.replace(
                snap.pods[i], state=model.PodState.BOUND, node=rng.choice(nodes), started_at=now
            )
            return _replace_pod(snap, i, pod)
    if op == 3:  # a bound pod evicted or deleted
        choices = _pods(snap, rng, model.PodState.BOUND)
        if choices:
            i = rng.choice(choices)
            pod = dataclasses.replace(
                snap.pods[i], state=model.PodState.TERMINATING, deleting_at=now + 30.0
            )
            return _replace_pod(snap, i, pod)
    if op == 4 and snap.pods:  # a pod gone
        return _replace_pod(snap, rng.randrange(len(snap.pods)), None)
    if op == 5:  # a new gated pod
        tenant = rng.choice(sorted(snap.tenants))
        selector = rng.choice(
            [{}, {bench.ZONE_LABEL: "zone-9"}, {bench.POOL_LABEL: bench._pool_name(1)}]
        )
        pod = model.GpuPod(
            namespace=tenant,
            name=f"new-{rng.randrange(10**9)}",
            uid=f"new-{rng.randrange(10**9)}",
            gpus=rng.choice((1, 2, 4, 8)),
            state=model.PodState.GATED,
            created_at=now - rng.uniform(0.0, 100.0),
            node_selector=selector,
        )
        return dataclasses.replace(snap, pods=(*snap.pods, pod))
    if op == 6:  # a node relabelled into another pool or zone
        if rng.random() < 0.3:
            return relabel(snap, rng.choice(nodes), bench.POOL_LABEL, f"pool-{rng.randrange(4)}")
        return relabel(snap, rng.choice(nodes), bench.ZONE_LABEL, "zone-9")
    if op == 7:  # a node cordoned, or sent again unchanged
        name = rng.choice(nodes)
        node = snap.nodes[name]
        changed = dataclasses.replace(node, schedulable=rng.random() < 0.5)
        return dataclasses.replace(snap, nodes={**snap.nodes, name: changed})
    if op == 8:  # a quota edited
        name = rng.choice(sorted(snap.tenants))
        quota = snap.tenants[name]
        pools = tuple(
            dataclasses.replace(p, guaranteed=rng.randrange(0, 40), limit=rng.choice((None, 64)))
            for p in quota.pools
        )
        edited = dataclasses.replace(quota, pools=pools, generation=quota.generation + 1)
        return dataclasses.replace(snap, tenants={**snap.tenants, name: edited})
    if op == 9 and snap.pods:  # a pod sent again unchanged
        i = rng.randrange(len(snap.pods))
        return _replace_pod(snap, i, dataclasses.replace(snap.pods[i]))
    if op == 10 and snap.pods:  # pods in another order
        pods = list(snap.pods)
        pods.append(pods.pop(rng.randrange(len(pods))))
        return dataclasses.replace(snap, pods=tuple(pods))
    if op == 11:  # a namespace labelled, or a pod's eviction refused
        name = rng.choice(sorted(snap.namespaces))
        namespace = model.Namespace(name=name, labels={"team": str(rng.randrange(3))})
        return dataclasses.replace(snap, namespaces={**snap.namespaces, name: namespace})
    if op == 12 and snap.pods:
        return dataclasses.replace(snap, blocked=frozenset({rng.choice(snap.pods).uid}))
    if op == 13:  # CPU requested by pods without GPUs
        return dataclasses.replace(
            snap, other_requests={rng.choice(nodes): (rng.randrange(1000), 0)}
        )
    if op == 14:  # the statuses written: each quota shows the usage and conditions written
        return bench.written(snap, plan.plan(snap, half_life=HALF_LIFE))
    if op == 15:  # a bound pod finished (now, or at a time the clock has not reached)
        choices = _pods(snap, rng, model.PodState.BOUND)
        if choices:
            i = rng.choice(choices)
            pod = dataclasses.replace(
                snap.pods[i],
                state=model.PodState.TERMINATING,
                finished_at=now + rng.choice((0.0, 0.0, 5.0)),
            )
            return _replace_pod(snap, i, pod)
    if op == 17:  # a pod group of two gated pods
        tenant = rng.choice(sorted(snap.tenants))
        name = f"group-{rng.randrange(10**9)}"
        key = groups.GroupKey(namespace=tenant, source=groups.Source.GPUFAIR, name=name)
        gpus = rng.choice((1, 4, 8))
        members = tuple(
            model.GpuPod(
                namespace=tenant,
                name=f"{name}-{index}",
                uid=f"{name}-{index}",
                gpus=gpus,
                state=model.PodState.GATED,
                created_at=now - rng.uniform(0.0, 100.0),
                group=groups.Membership(key=key, size=2),
            )
            for index in range(2)
        )
        return dataclasses.replace(snap, pods=(*snap.pods, *members))
    if op == 16:  # a quota's status conditions reset (written by someone else, or cleared)
        name = rng.choice(sorted(snap.tenants))
        reset = dataclasses.replace(snap.tenants[name], conditions=())
        return dataclasses.replace(snap, tenants={**snap.tenants, name: reset})
    return snap


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 50),
    ops=st.lists(st.tuples(st.integers(0, 17), st.integers(0, 2**16)), min_size=1, max_size=12),
)
def test_a_kept_cache_decides_what_a_fresh_pass_decides(
    seed: int, ops: list[tuple[int, int]]
) -> None:
    snap = start(seed)
    plans = plan.PlanCache()
    schedules = passcache.PassCache()
    for op, salt in [(0, 0), *ops]:
        snap = step(snap, op, random.Random(salt))
        kept = plan.plan(snap, half_life=HALF_LIFE, cache=plans)
        fresh = plan.plan(snap, half_life=HALF_LIFE)
        # The plan's lookup tables may list their keys in another order: compared by value.
        assert kept == fresh, f"after op {op}"
        decided = scheduling.schedule(snap, half_life=HALF_LIFE, cache=schedules)
        assert repr(decided) == repr(scheduling.schedule(snap, half_life=HALF_LIFE))


def test_a_waiting_pod_moves_to_the_pool_where_a_node_took_its_zone() -> None:
    snap = start(1)
    tenant = snap.tenants["tenant-00"]
    second = tenant.pools[1].pool
    cache = plan.PlanCache()
    assert plan.plan(snap, half_life=HALF_LIFE, cache=cache).pod_pools["zone-9-tenant-00"] == (
        "tenant-00",
        tenant.pools[0].pool,
    )
    node = next(
        n for n, node in sorted(snap.nodes.items()) if node.labels[bench.POOL_LABEL] == second
    )
    moved = relabel(snap, node, bench.ZONE_LABEL, "zone-9")
    assert plan.plan(moved, half_life=HALF_LIFE, cache=cache).pod_pools["zone-9-tenant-00"] == (
        "tenant-00",
        second,
    )


def test_the_same_snapshot_planned_again_gives_the_same_plan() -> None:
    snap = start(3)
    cache = plan.PlanCache()
    first = plan.plan(snap, half_life=HALF_LIFE, cache=cache)
    again = plan.plan(snap, half_life=HALF_LIFE, cache=cache)
    assert repr(first) == repr(again) == repr(plan.plan(snap, half_life=HALF_LIFE))


def test_conditions_reset_after_a_written_status_transition_again() -> None:
    """Conditions kept from pass to pass stand only while the persisted ones do: a status
    reset after the quota's status was written brings the transitions (and events) back."""
    snap = start(2)
    cache = plan.PlanCache()
    snap = bench.written(snap, plan.plan(snap, half_life=HALF_LIFE, cache=cache))
    plan.plan(snap, half_life=HALF_LIFE, cache=cache)
    name = sorted(snap.tenants)[0]
    reset = dataclasses.replace(snap.tenants[name], conditions=())
    snap = dataclasses.replace(snap, now=snap.now + 1.0, tenants={**snap.tenants, name: reset})
    kept = plan.plan(snap, half_life=HALF_LIFE, cache=cache)
    assert kept == plan.plan(snap, half_life=HALF_LIFE)
    assert any(event.target.name == name for event in kept.events)
