"""``gpufair bench operator``: the cost of one planning pass
(:func:`gpufair.operator.plan.plan`) on a large synthetic cluster.

Called by :mod:`gpufair.cli.bench`. Builds a :class:`~gpufair.state.model.Snapshot` of
8-GPU nodes whose topologies are the real 8-GPU machines in ``../shared/data/topology/`` (parsed
with the node agent's parser and published as its labels), spread over several pools; tenants
with quotas in two pools each; the cluster filled to about 70 % with bound pods of 1, 2, 4 and 8
GPUs on buddy-aligned GPU sets; and a queue of gated pods (no node, no pool annotation, so the
planner has to find each one's pool from its ``nodeSelector``). Then it times ``plan.plan`` over
repeated passes of the same snapshot, its quotas showing the statuses of a warm-up pass as
written (:func:`written`), as the operator's store does after its first pass. Recorded figures
are in ``docs/operator.md``.

The captures are read by :mod:`gpufair.captures`, as for the extender's benchmark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gpufair import captures
from gpufair.api import names
from gpufair.core import labels, topology
from gpufair.k8s import writes
from gpufair.operator import heap, plan, reconciler, settings, store
from gpufair.state import model

GPUS_PER_NODE = 8
OCCUPANCY = 0.70
"""Share of GPUs allocated (busy production clusters run at 60-80%)."""
POOLS = 4
POOL_LABEL = "gpufair.bench/pool"
ZONE_LABEL = "topology.kubernetes.io/zone"
ZONES = 4
RESOURCE = "nvidia.com/gpu"
NOW = 1_000_000.0
HALF_LIFE = 7 * 24 * 3600.0
SIZES = (1, 1, 1, 1, 1, 2, 2, 4, 4, 8)
"""Pod sizes drawn uniformly: half single-GPU, a tenth whole-node (as the extender benchmark)."""


def _pool_name(index: int) -> str:
    return f"pool-{index}"


def build_snapshot(
    *,
    nodes: int,
    waiting: int,
    tenants: int,
    shapes: Sequence[topology.NodeTopology],
    seed: int = 1,
) -> model.Snapshot:
    """The synthetic cluster described in the module docstring."""
    rng = random.Random(seed)
    pool_count = min(POOLS, nodes)
    pools = {
        _pool_name(p): model.Pool(
            name=_pool_name(p), selector={"matchLabels": {POOL_LABEL: _pool_name(p)}}
        )
        for p in range(pool_count)
    }
    shape_labels = [labels.to_labels(shape) for shape in shapes]
    node_map: dict[str, model.Node] = {}
    for n in range(nodes):
        name = f"node-{n:05d}"
        node_map[name] = model.Node(
            name=name,
            labels={
                POOL_LABEL: _pool_name(n % pool_count),
                ZONE_LABEL: f"zone-{(n // pool_count) % ZONES}",
                **shape_labels[n % len(shapes)],
            },
            allocatable={RESOURCE: GPUS_PER_NODE, "cpu": 128},
            topology=shapes[n % len(shapes)],
        )
    pool_nodes = {_pool_name(p): list(node_map)[p::pool_count] for p in range(pool_count)}
    capacity = {name: len(members) * GPUS_PER_NODE for name, members in pool_nodes.items()}

    tenant_pools = {
        f"tenant-{t:02d}": (_pool_name(t % pool_count), _pool_name((t + 1) % pool_count))
        for t in range(tenants)
    }
    members: dict[str, list[str]] = {name: [] for name in pools}
    for name, (first, second) in tenant_pools.items():
        members[first].append(name)
        if second != first:
            members[second].append(name)
    tenant_map = {
        name: model.Tenant(
            name=name,
            namespaces=frozenset({name}),
            weight=float(1 + index % 3),
            pools=tuple(
                model.TenantPool(
                    pool=pool, guaranteed=capacity[pool] // (2 * max(1, len(members[pool])))
                )
                for pool in dict.fromkeys(own)
            ),
        )
        for index, (name, own) in enumerate(tenant_pools.items())
    }

    pods: list[model.GpuPod] = []
    number = 0
    target = int(nodes * GPUS_PER_NODE * OCCUPANCY)
    used = 0
    free: dict[str, list[int]] = {name: list(range(GPUS_PER_NODE)) for name in node_map}
    names = list(node_map)
    attempts = 0
    while used < target and attempts < 20 * nodes:
        attempts += 1
        gpus = rng.choice(SIZES)
        node_name = rng.choice(names)
        block = _aligned_block(free[node_name], gpus)
        if block is None:
            continue
        free[node_name] = [i for i in free[node_name] if i not in block]
        pool = node_map[node_name].labels[POOL_LABEL]
        tenant = rng.choice(members[pool]) if members[pool] else None
        if tenant is None:
            continue
        number += 1
        started = NOW - rng.uniform(60.0, 86_400.0)
        pods.append(
            model.GpuPod(
                namespace=tenant,
                name=f"run-{number}",
                uid=f"uid-{number}",
                gpus=gpus,
                state=model.PodState.BOUND,
                created_at=started - 30.0,
                node=node_name,
                pool_hint=pool,
                started_at=started,
                admitted_at=started - 10.0,
                gpu_indices=frozenset(block),
            )
        )
        used += gpus

    tenant_names = list(tenant_map)
    for w in range(waiting):
        number += 1
        tenant = tenant_names[w % len(tenant_names)]
        first, second = tenant_pools[tenant]
        selector: Mapping[str, str]
        kind = w % 4
        if kind == 0:
            selector = {}
        elif kind == 1:
            selector = {ZONE_LABEL: f"zone-{w % ZONES}"}
        else:  # the GPU model a job asks for: here, its tenant's second pool
            selector = {POOL_LABEL: second}
        pods.append(
            model.GpuPod(
                namespace=tenant,
                name=f"queued-{number}",
                uid=f"uid-{number}",
                gpus=rng.choice(SIZES),
                state=model.PodState.GATED,
                created_at=NOW - rng.uniform(1.0, 3600.0),
                node_selector=selector,
            )
        )

    return model.Snapshot(
        now=NOW,
        nodes=node_map,
        pods=tuple(pods),
        tenants=tenant_map,
        pools=pools,
        namespaces={name: model.Namespace(name=name) for name in tenant_map},
        synced=True,
    )


def _aligned_block(free: Sequence[int], gpus: int) -> tuple[int, ...] | None:
    """The first free ``gpus``-aligned block of ``gpus`` GPU indices, if any."""
    available = set(free)
    for start in range(0, GPUS_PER_NODE, gpus):
        block = tuple(range(start, start + gpus))
        if available.issuperset(block):
            return block
    return None


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(
    node_counts: Sequence[int],
    *,
    waiting: int,
    tenants: int,
    passes: int,
    events: int = 20,
    quota_changes: int = 5,
    topology_dir: pathlib.Path | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Per node count: one cold pass (nothing kept), then ``passes`` passes as the operator
    runs them (its :class:`~gpufair.operator.plan.PlanCache` kept, ``events`` watch events
    and one second between passes), and ``quota_changes`` TenantQuota edits timed from the
    event to the status patch of a whole reconciler pass; a JSON-able report."""
    shapes_by_name = captures.load_dir(topology_dir or captures.default_dir())
    shapes = list(shapes_by_name.values())
    runs: list[dict[str, Any]] = []
    for nodes in node_counts:
        snap = build_snapshot(
            nodes=nodes, waiting=waiting, tenants=tenants, shapes=shapes, seed=seed
        )
        started = time.perf_counter()
        result = plan.plan(snap, half_life=HALF_LIFE)
        cold = time.perf_counter() - started
        cache = plan.PlanCache()
        # Warm-up: the cache is filled, and the statuses of that pass are written, as the
        # reconciler's first pass does: the store then shows each quota with the usage and
        # conditions written (they change again when a status is next written, every 30 s).
        snap = written(snap, plan.plan(snap, half_life=HALF_LIFE, cache=cache))
        plan.plan(snap, half_life=HALF_LIFE, cache=cache)
        collector = heap.Heap()  # as the operator's loop does after each pass
        collector.after_pass()
        rng = random.Random(seed)
        times: list[float] = []
        cpu: list[float] = []
        for number in range(passes):
            snap = watch_events(snap, rng, events=events, now=NOW + number + 1)
            started, started_cpu = time.perf_counter(), time.process_time()
            plan.plan(snap, half_life=HALF_LIFE, cache=cache)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            collector.after_pass()
        to_status, reconcile = asyncio.run(
            _quota_to_status(snap, random.Random(seed), changes=quota_changes)
        )
        allocated = sum(pod.gpus for pod in snap.pods if pod.holds_gpus)
        gated = sum(1 for pod in snap.pods if pod.waiting)
        p50, p99 = statistics.median(times), _percentile(times, 0.99)
        runs.append(
            {
                "nodes": nodes,
                "pools": len(snap.pools),
                "tenants": len(snap.tenants),
                "bound_pods": sum(1 for pod in snap.pods if pod.holds_gpus),
                "waiting_pods": gated,
                "occupancy": allocated / (nodes * GPUS_PER_NODE),
                "admitted_per_pass": len(result.admissions),
                "evictions_per_pass": len(result.evictions),
                "events_per_pass": events,
                "cold_pass_ms": cold * 1e3,
                "pass": {"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3},
                "pass_cpu": {"p50_ms": statistics.median(cpu) * 1e3},
                "per_waiting_pod": {
                    "p50_ms": p50 * 1e3 / max(1, gated),
                    "p99_ms": p99 * 1e3 / max(1, gated),
                },
                "quota_to_status": {
                    "p50_ms": statistics.median(to_status) * 1e3,
                    "max_ms": max(to_status) * 1e3,
                    "debounce_ms": settings.OperatorSettings().debounce_seconds * 1e3,
                    "reconcile_pass_p50_ms": statistics.median(reconcile) * 1e3,
                },
            }
        )
    return {
        "passes": passes,
        "seed": seed,
        "topologies": sorted(shapes_by_name),
        "runs": runs,
    }


def written(snap: model.Snapshot, planned: plan.Plan) -> model.Snapshot:
    """The snapshot as the operator's store shows it once the plan's TenantQuota statuses
    are written: each quota with the usage and conditions of its status
    (:meth:`gpufair.operator.store.ClusterStore.record_tenant`)."""
    tenants = {
        name: dataclasses.replace(
            tenant,
            usage={**tenant.usage, **{p.pool: p.usage for p in planned.tenants[name].pools}},
            conditions=planned.tenants[name].conditions,
        )
        if name in planned.tenants
        else tenant
        for name, tenant in snap.tenants.items()
    }
    return dataclasses.replace(snap, tenants=tenants)


def watch_events(
    snap: model.Snapshot, rng: random.Random, *, events: int, now: float
) -> model.Snapshot:
    """The next snapshot as the operator's store gives it: ``events`` pods and a fifth as many
    nodes sent again by the watch (new objects, as every watch event makes; the content stays
    the same so the scenario does not drift), at ``now``."""
    pods = list(snap.pods)
    for index in rng.sample(range(len(pods)), min(events, len(pods))):
        pods[index] = dataclasses.replace(pods[index])
    nodes = dict(snap.nodes)
    for name in rng.sample(sorted(nodes), min(events // 5, len(nodes))):
        nodes[name] = dataclasses.replace(nodes[name])
    return dataclasses.replace(snap, now=now, pods=tuple(pods), nodes=nodes)


class _Writer:
    """The reconciler's API writes, answered at once; when each status patch was made."""

    def __init__(self) -> None:
        self.patched: dict[tuple[str, str], tuple[float, Any]] = {}

    async def patch_status(self, *, plural: str, name: str, status: Any) -> None:
        self.patched[(plural, name)] = (time.perf_counter(), status)

    async def admit(self, **_: Any) -> bool:
        return True

    async def evict(self, **_: Any) -> writes.EvictionOutcome:
        return writes.EvictionOutcome.EVICTED

    async def label_namespace(self, **_: Any) -> None:
        return None

    async def nudge(self, **_: Any) -> None:
        return None


def _ignore(_: object) -> None:
    """The reconciler's event sink: events are not posted in the benchmark."""


async def _quota_to_status(
    snap: model.Snapshot, rng: random.Random, *, changes: int
) -> tuple[list[float], list[float]]:
    """Seconds from a TenantQuota change reaching the store (as its watch handler puts it
    there) to the reconciler's patch of that quota's status showing it, over ``changes``
    edits of a random tenant's guarantee; and the duration of each such reconciler pass
    (snapshot, plan, every write). The operator's loop adds its debounce before the pass."""
    cluster = store.ClusterStore()
    cluster.nodes.update(snap.nodes)
    cluster.pods.update({pod.uid: pod for pod in snap.pods})
    cluster.tenants.update(snap.tenants)
    cluster.pools.update(snap.pools)
    cluster.namespaces.update(snap.namespaces)
    cluster.mark_synced()
    writer = _Writer()
    driver = reconciler.Reconciler(
        cluster=cluster,
        writer=writer,
        events=_ignore,
        config=settings.OperatorSettings(half_life_seconds=HALF_LIFE),
    )
    collector = heap.Heap()
    await driver.run_once(now=snap.now)
    await driver.run_once(now=snap.now + 1.0)
    collector.after_pass()
    to_status: list[float] = []
    passes: list[float] = []
    logging.disable(logging.INFO)
    try:
        for number in range(changes):
            name = rng.choice(sorted(cluster.tenants))
            tenant = cluster.tenants[name]
            first = tenant.pools[0]
            wanted = first.guaranteed + 1
            edited = dataclasses.replace(
                tenant,
                pools=(dataclasses.replace(first, guaranteed=wanted), *tenant.pools[1:]),
                generation=tenant.generation + 1,
            )
            changed = time.perf_counter()
            cluster.tenants[name] = edited
            await driver.run_once(now=snap.now + 2.0 + number)
            passes.append(time.perf_counter() - changed)
            collector.after_pass()
            patched = writer.patched.get((names.TENANT_QUOTA_PLURAL, name))
            if patched is None or patched[0] < changed:
                raise RuntimeError(f"the status of TenantQuota {name} was not written")
            shown = patched[1]["pools"][0]
            if shown["name"] != first.pool or shown["guaranteed"] != wanted:
                raise RuntimeError(f"the status of TenantQuota {name} does not show the change")
            to_status.append(patched[0] - changed)
    finally:
        logging.disable(logging.NOTSET)
    return to_status, passes


def render(report: Mapping[str, Any]) -> str:
    """The report as an aligned table."""
    lines = [
        f"gpufair operator benchmark: {report['passes']} passes per run (after a cold pass and"
        f" a warm-up), topologies: {', '.join(report['topologies'])}",
        "wall-clock p50/p99 of plan.plan per pass with the operator's cache, watch events"
        " between passes (and the p50 of the process's CPU time: less swayed by other load);"
        " the cold pass keeps nothing",
        "",
        f"{'nodes':>6} {'pools':>5} {'tenants':>7} {'bound':>6} {'waiting':>7} {'occupancy':>9} "
        f"{'admitted':>8} {'events':>6} {'cold ms':>8} {'pass ms':>15} {'cpu ms':>7} "
        f"{'per waiting pod ms':>19}",
    ]
    for run_ in report["runs"]:
        per_pass = f"{run_['pass']['p50_ms']:.1f}/{run_['pass']['p99_ms']:.1f}"
        per_pod = f"{run_['per_waiting_pod']['p50_ms']:.3f}/{run_['per_waiting_pod']['p99_ms']:.3f}"
        lines.append(
            f"{run_['nodes']:>6} {run_['pools']:>5} {run_['tenants']:>7} {run_['bound_pods']:>6} "
            f"{run_['waiting_pods']:>7} {run_['occupancy']:>9.0%} {run_['admitted_per_pass']:>8} "
            f"{run_['events_per_pass']:>6} {run_['cold_pass_ms']:>8.1f} {per_pass:>15} "
            f"{run_['pass_cpu']['p50_ms']:>7.1f} {per_pod:>19}"
        )
    lines += [
        "",
        "quota change -> status: from the TenantQuota event in the store to the patch of its"
        " status (one reconciler pass: snapshot, plan, writes)",
        f"{'nodes':>6} {'p50 ms':>8} {'max ms':>8} {'+ debounce ms':>14} {'pass p50 ms':>12}",
    ]
    for run_ in report["runs"]:
        quota = run_["quota_to_status"]
        lines.append(
            f"{run_['nodes']:>6} {quota['p50_ms']:>8.1f} {quota['max_ms']:>8.1f} "
            f"{quota['debounce_ms']:>14.0f} {quota['reconcile_pass_p50_ms']:>12.1f}"
        )
    return "\n".join(lines)
