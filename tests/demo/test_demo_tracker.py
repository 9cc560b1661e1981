"""The demo's embedded cluster, its job plan and its account of what happened to each pod."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from gpufair import captures
from gpufair.api import names, pool, quota
from gpufair.core import labels
from gpufair.demo import cluster, tracker, workload

TOPOLOGY = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "topology"


def topologies() -> dict[str, Any]:
    return {
        spec.name: captures.load(cluster.capture_path(TOPOLOGY, spec)) for spec in cluster.NODES
    }


def pod(
    key: str,
    *,
    uid: str = "u",
    node: str | None = None,
    gpus: str | None = None,
    confirmed: str | None = None,
    phase: str = "Pending",
) -> dict[str, Any]:
    namespace, name = key.split("/")
    annotations = {names.GPUS_ANNOTATION: gpus} if gpus else {}
    if confirmed:
        annotations[names.GPUS_CONFIRMED_ANNOTATION] = confirmed
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": uid, "annotations": annotations},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


def new_tracker() -> tracker.Tracker:
    return tracker.Tracker(tenants=cluster.tenants(), topologies=topologies())


def job(tenant: str = "research", gpus: int = 4, run: float = 10.0) -> workload.Job:
    return workload.Job(name=f"{tenant}-x", tenant=tenant, gpus=gpus, submit_at=0, run_seconds=run)


def test_the_embedded_manifest_is_valid_for_the_crds() -> None:
    docs = cluster.objects()
    pools = [pool.GPUPool.model_validate(d) for d in docs if d["kind"] == names.GPU_POOL_KIND]
    quotas = [
        quota.TenantQuota.model_validate(d) for d in docs if d["kind"] == names.TENANT_QUOTA_KIND
    ]
    assert [p.metadata.name for p in pools] == [cluster.POOL]
    assert len(quotas) == 3
    assert len({q.spec.weight for q in quotas}) == 3, "three different weights"
    assert all(q.spec.pool(cluster.POOL) is not None for q in quotas)


def test_every_demo_node_is_in_the_pool_with_its_capture_topology() -> None:
    for spec in cluster.NODES:
        topo = captures.load(cluster.capture_path(TOPOLOGY, spec))
        node = cluster.node_object(spec, topo)
        assert node["metadata"]["labels"][cluster.POOL_LABEL] == cluster.POOL
        assert labels.from_labels(node["metadata"]["labels"]) == topo
        assert node["status"]["allocatable"][names.DEFAULT_GPU_RESOURCE] == str(len(topo.gpus))
    shapes = {cluster.describe_islands(t) for t in topologies().values()}
    assert len(shapes) >= 3, f"the fleet mixes NVLink shapes: {shapes}"


def test_the_plan_has_every_tenant_and_size_and_scales_with_the_duration() -> None:
    short, long = workload.plan(20), workload.plan(80)
    assert {j.tenant for j in short} == {t.name for t in cluster.tenants()}
    assert {j.gpus for j in short} == {1, 2, 4, 8}
    assert len({j.name for j in short}) == len(short), "pod names are unique"
    longer = {j.name: j for j in long}
    assert sorted(longer) == sorted(j.name for j in short)
    for a in short:
        assert longer[a.name].run_seconds == pytest.approx(4 * a.run_seconds)
        assert 0 <= a.submit_at < 20
    assert workload.plan(20, seed=1) != workload.plan(20, seed=2)
    assert workload.plan(20, seed=1) == workload.plan(20, seed=1)


def test_a_pod_runs_its_time_then_is_due() -> None:
    t = new_tracker()
    record = t.submitted(job(run=5.0), name="research-x", uid="u", now=0.0)
    t.observe([pod(record.key)], now=1.0)
    assert record.state is tracker.State.WAITING
    t.bound(record.key, node="dgx-a100", now=2.0)
    t.observe([pod(record.key, node="dgx-a100", gpus="0,1,2,3", phase="Running")], now=2.5)
    assert record.state is tracker.State.RUNNING
    assert record.gpu_indices == (0, 1, 2, 3)
    assert t.due(now=7.0) == []
    assert t.due(now=7.5) == [record]
    t.completed(record, now=7.5)
    figures = {f.tenant: f for f in t.figures(now=8.0)}["research"]
    assert (figures.done, figures.running, figures.scheduled) == (1, 0, 1)
    assert figures.wait_p50 == pytest.approx(2.0)
    assert figures.gpu_seconds == pytest.approx(4 * 5.5)


@pytest.mark.parametrize(
    ("listed", "bound", "state", "returned"),
    [
        pytest.param([], True, tracker.State.PREEMPTED, True, id="running-pod-vanished"),
        pytest.param([], False, tracker.State.GONE, False, id="unbound-pod-deleted"),
        pytest.param(
            [pod("research/research-x", uid="other")],
            True,
            tracker.State.PREEMPTED,
            True,
            id="same-name-new-uid",
        ),
        pytest.param(
            [pod("research/research-x", node="pcie-4090", phase="Failed")],
            True,
            tracker.State.FAILED,
            False,
            id="kubelet-refused",
        ),
    ],
)
def test_what_happened_to_a_pod_that_is_no_longer_running(
    listed: list[dict[str, Any]], bound: bool, state: tracker.State, returned: bool
) -> None:
    t = new_tracker()
    record = t.submitted(job(), name="research-x", uid="u", now=0.0)
    if bound:
        t.bound(record.key, node="pcie-4090", now=1.0)
    vanished = t.observe(listed, now=2.0)
    assert record.state is state
    assert (vanished == [record]) is returned


@pytest.mark.parametrize(
    ("node", "gpus", "one_island"),
    [
        pytest.param("dgx1-v100", "0,1,2,3", True, id="dgx1-one-cube-half"),
        pytest.param("dgx1-v100", "2,3,4,5", False, id="dgx1-across-halves"),
        pytest.param("dgx-a100", "0,1,2,3,4,5,6,7", True, id="nvswitch-whole-node"),
        pytest.param("pcie-4090", "0,1", False, id="pcie-has-no-island"),
    ],
)
def test_placement_quality_counts_multi_gpu_pods_on_one_island(
    node: str, gpus: str, one_island: bool
) -> None:
    t = new_tracker()
    count = len(gpus.split(","))
    multi = t.submitted(job(gpus=count), name="research-x", uid="u", now=0.0)
    single = t.submitted(job(gpus=1), name="research-y", uid="v", now=0.0)
    t.observe(
        [
            pod(multi.key, uid="u", node=node, gpus=gpus, confirmed=gpus, phase="Running"),
            pod(single.key, uid="v", node="pcie-4090", gpus="7", confirmed="7", phase="Running"),
        ],
        now=1.0,
    )
    figures = {f.tenant: f for f in t.figures(now=1.0)}["research"]
    assert figures.multi_gpu_placed == 1, "single-GPU pods do not count"
    assert figures.placement_quality == (1.0 if one_island else 0.0)


def test_a_gpu_held_by_two_running_pods_is_reported() -> None:
    t = new_tracker()
    a = t.submitted(job(gpus=2), name="research-a", uid="a", now=0.0)
    b = t.submitted(job("vision", gpus=2), name="vision-b", uid="b", now=0.0)
    t.observe(
        [
            pod(a.key, uid="a", node="dgx-a100", gpus="0,1", phase="Running"),
            pod(b.key, uid="b", node="dgx-a100", gpus="1,2", phase="Running"),
        ],
        now=1.0,
    )
    assert t.double_allocations() == ["dgx-a100 GPU 1: research/research-a and vision/vision-b"]
    usage = t.node_usage()["dgx-a100"]
    assert usage[0] == "research"
    assert usage[2] == "vision"
    assert usage[3] is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([], 0.5, None, id="empty"),
        pytest.param([3.0], 0.95, 3.0, id="one"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 0.5, 2.0, id="median-nearest-rank"),
        pytest.param([float(i) for i in range(1, 21)], 0.95, 19.0, id="p95-of-20"),
    ],
)
def test_percentile(values: list[float], fraction: float, expected: float | None) -> None:
    assert tracker.percentile(values, fraction) == expected


def test_the_gpus_kubelet_confirmed_replace_binds_choice() -> None:
    t = new_tracker()
    record = t.submitted(job(run=5.0), name="research-y", uid="u", now=0.0)
    t.bound(record.key, node="dgx-a100", now=1.0)
    t.observe([pod(record.key, node="dgx-a100", gpus="0,1", phase="Running")], now=1.5)
    assert record.gpu_indices == (0, 1)
    confirmed = pod(record.key, node="dgx-a100", gpus="0,1", phase="Running")
    confirmed["metadata"]["annotations"][names.GPUS_CONFIRMED_ANNOTATION] = "2,3"
    t.observe([confirmed], now=2.0)
    assert record.gpu_indices == (2, 3)


def test_placement_quality_counts_what_kubelet_allocated_not_what_bind_chose() -> None:
    t = new_tracker()
    kept = t.submitted(job(gpus=4), name="research-a", uid="a", now=0.0)
    moved = t.submitted(job(gpus=4), name="research-b", uid="b", now=0.0)
    pending = t.submitted(job(gpus=4), name="research-c", uid="c", now=0.0)
    t.observe(
        [
            # bind chose a cube half of the DGX-1 and kubelet allocated it
            pod(kept.key, uid="a", node="dgx1-v100", gpus="0,1,2,3", confirmed="3,2,1,0"),
            # bind chose the other half; kubelet allocated across the halves
            pod(moved.key, uid="b", node="dgx1-v100", gpus="4,5,6,7", confirmed="2,3,4,5"),
            # bound, not confirmed yet: no placement counted either way
            pod(pending.key, uid="c", node="dgx-a100", gpus="0,1,2,3"),
        ],
        now=1.0,
    )
    figures = {f.tenant: f for f in t.figures(now=1.0)}["research"]
    assert (figures.bound, figures.confirmed, figures.corrected) == (3, 2, 1)
    assert (figures.multi_gpu_placed, figures.multi_gpu_one_island) == (2, 1)
    assert figures.placement_quality == 0.5
    assert moved.corrected
    assert not kept.corrected


def test_8_gpu_pods_on_one_island_counts_every_tenant_and_only_their_size() -> None:
    t = new_tracker()
    nvswitch = t.submitted(job(gpus=8), name="research-a", uid="a", now=0.0)
    dgx1 = t.submitted(job("vision", gpus=8), name="vision-b", uid="b", now=0.0)
    unconfirmed = t.submitted(job(gpus=8), name="research-c", uid="c", now=0.0)
    smaller = t.submitted(job("batch", gpus=4), name="batch-d", uid="d", now=0.0)
    every = "0,1,2,3,4,5,6,7"
    t.observe(
        [
            pod(nvswitch.key, uid="a", node="dgx-a100", gpus=every, confirmed=every),
            # two cube halves of four: not one island
            pod(dgx1.key, uid="b", node="dgx1-v100", gpus=every, confirmed=every),
            pod(unconfirmed.key, uid="c", node="hgx-h200", gpus=every),
            pod(smaller.key, uid="d", node="dgx1-v100", gpus="0,1,2,3", confirmed="0,1,2,3"),
        ],
        now=1.0,
    )
    assert t.one_island(gpus=8) == tracker.IslandFigure(gpus=8, placed=2, one_island=1)
    assert t.one_island(gpus=4) == tracker.IslandFigure(gpus=4, placed=1, one_island=1)
