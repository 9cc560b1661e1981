"""Kubernetes JSON to snapshot values and back: pods, nodes, quotas, statuses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.builders import groups as groups_b
from tests.builders import operator as b

from gpufair.api import names, quota
from gpufair.operator import objects, plan
from gpufair.state import model

T0 = "2026-11-26T10:00:00Z"
T0_SECONDS = objects.parse_time(T0) or 0.0


def pod_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "team-a", "uid": "u1", "creationTimestamp": T0},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
        "status": {"phase": "Pending"},
    }
    for path, value in changes.items():
        section, key = path.split("__")
        body[section][key] = value
    return body


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        pytest.param(
            {"spec__schedulingGates": [{"name": names.ADMISSION_GATE}]},
            model.PodState.GATED,
            id="gated",
        ),
        pytest.param({}, model.PodState.PENDING, id="admitted-not-bound"),
        pytest.param({"spec__nodeName": "n1"}, model.PodState.BOUND, id="bound"),
        pytest.param(
            {"spec__nodeName": "n1", "metadata__deletionTimestamp": T0},
            model.PodState.TERMINATING,
            id="terminating",
        ),
        pytest.param(
            {"spec__nodeName": "n1", "status__phase": "Succeeded"},
            model.PodState.FINISHED,
            id="succeeded",
        ),
    ],
)
def test_pod_states(changes: dict[str, Any], state: model.PodState) -> None:
    pod = objects.gpu_pod(pod_json(**changes), resources=["nvidia.com/gpu"], observed_at=50.0)
    assert pod is not None
    assert (pod.state, pod.gpus, pod.created_at) == (state, 2, T0_SECONDS)


def test_a_bound_pod_keeps_the_time_it_was_first_seen_bound() -> None:
    body = pod_json(spec__nodeName="n1")
    first = objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=100.0)
    again = objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=200.0, previous=first)
    assert first is not None
    assert again is not None
    assert first.started_at == again.started_at == 100.0


def test_pods_without_gpus_are_not_gpu_pods() -> None:
    body = pod_json()
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}
    assert objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=0.0) is None


def test_an_invalid_quota_is_read_with_the_reason() -> None:
    tenant = objects.tenant(
        {
            "metadata": {"name": "a", "generation": 3},
            "spec": {"namespaces": ["a"], "pools": [{"name": "h100", "guaranteed": 8, "limit": 4}]},
        }
    )
    assert tenant.invalid is not None
    assert "guaranteed" in tenant.invalid
    assert "limit" in tenant.invalid
    assert tenant.generation == 3


def test_a_status_written_and_read_back_keeps_usage_exactly() -> None:
    start = 1_800_000_000.123
    tenant = b.tenant("a").budget(100.0, period=30 * 24 * b.HOUR).build()
    cluster = b.SimCluster(
        nodes={"n1": b.node("n1")},
        tenants={"a": dataclasses.replace(tenant, created_at=start)},
    )
    cluster.add(b.pod("a/p").gpus(3).bound("n1", at=start, indices=[0, 1, 2]).build())
    cluster.step(start)
    decided = cluster.step(start + 3600.0)
    written = decided.tenants["a"]
    wire = objects.tenant_status(written)

    quota.TenantQuotaStatus.model_validate(wire)  # what the CRD schema describes
    assert objects.persisted_usage(wire) == {b.POOL: written.pools[0].usage}
    assert wire["budget"]["usedGPUHours"] == pytest.approx(3.0, abs=1e-6)


def test_pool_status_is_valid_against_the_model() -> None:
    decided = plan.plan(
        b.snap(now=1.0, nodes=[b.node("n1")], tenants=[b.tenant("a").build()]), half_life=60.0
    )
    wire = objects.pool_status(decided.pools[b.POOL])
    assert (wire["capacity"], wire["free"], wire["nodes"]) == (8, 8, 1)
    assert {c["type"] for c in wire["conditions"]} >= {"Ready", "NoNodes", "TopologyMissing"}


def test_a_pod_carries_what_node_filters_judge() -> None:
    body = pod_json(
        spec__containers=[
            {
                "name": "c",
                "resources": {
                    "limits": {"nvidia.com/gpu": "2"},
                    "requests": {"cpu": "1500m", "memory": "1Gi"},
                },
            }
        ],
        spec__tolerations=[{"key": "dedicated", "operator": "Exists"}, "junk"],
    )
    pod = objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=50.0)
    assert pod is not None
    assert (pod.cpu_millis, pod.memory_bytes) == (1500, 1024**3)
    assert pod.tolerations == ({"key": "dedicated", "operator": "Exists"},)


@pytest.mark.parametrize(
    ("allocatable", "cpu", "memory"),
    [
        pytest.param({"cpu": "7500m", "memory": "64Gi"}, 7500, 64 * 1024**3, id="reported"),
        pytest.param({}, None, None, id="not-reported"),
        pytest.param({"cpu": "lots", "memory": "-1"}, None, 0, id="unreadable-or-negative"),
    ],
)
def test_a_node_carries_taints_and_room(
    allocatable: dict[str, str], cpu: int | None, memory: int | None
) -> None:
    node = objects.node(
        {
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"allocatable": allocatable},
        }
    )
    assert node.taints == ({"key": "k", "effect": "NoSchedule"},)
    assert (node.cpu_millis, node.memory_bytes) == (cpu, memory)


@pytest.mark.parametrize(
    ("condition", "since"),
    [
        pytest.param(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
            T0_SECONDS,
            id="unschedulable",
        ),
        pytest.param(
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
            None,
            id="gated-is-not-unschedulable",
        ),
        pytest.param({"type": "Ready", "status": "False"}, None, id="other-condition"),
    ],
)
def test_a_pod_says_since_when_it_is_unschedulable(
    condition: dict[str, str], since: float | None
) -> None:
    body = pod_json(status__conditions=[{**condition, "lastTransitionTime": T0}])
    pod = objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=50.0)
    assert pod is not None
    assert pod.unschedulable_since == since


def test_the_store_keeps_what_pods_without_gpus_request_on_their_nodes() -> None:
    from gpufair.operator import store

    cluster = store.ClusterStore()
    cpu_pod = {
        "metadata": {"name": "web", "namespace": "x", "uid": "u-web"},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
        },
        "status": {"phase": "Running"},
    }
    cluster.apply_pod(cpu_pod, deleted=False, now=1.0)
    assert cluster.take_snapshot(now=2.0).other_requests == {"n1": (2000, 1024**3)}
    cluster.apply_pod({**cpu_pod, "status": {"phase": "Succeeded"}}, deleted=False, now=3.0)
    assert cluster.take_snapshot(now=4.0).other_requests == {}
    cluster.apply_pod(cpu_pod, deleted=False, now=5.0)
    cluster.apply_pod(cpu_pod, deleted=True, now=6.0)
    assert cluster.take_snapshot(now=7.0).other_requests == {}


GROUP_CASES = [
    pytest.param(
        groups_b.gpufair_member("w-0", group="train", size=4), "train", 4, None, id="gpufair-pair"
    ),
    pytest.param(
        groups_b.gpufair_member("w-0", group="train", size="four"),
        None,
        None,
        "gpufair.dev/group-size 'four' is not a whole number",
        id="unreadable-size",
    ),
    pytest.param(
        groups_b.jobset_member("w-0", jobset="llm"), None, None, None, id="controller-size-unknown"
    ),
    pytest.param(groups_b.member("alone"), None, None, None, id="no-group"),
]


@pytest.mark.parametrize(("body", "group", "size", "error"), GROUP_CASES)
def test_a_pod_carries_its_group_when_its_size_is_known(
    body: dict[str, Any], group: str | None, size: int | None, error: str | None
) -> None:
    pod = objects.gpu_pod(body, resources=["nvidia.com/gpu"], observed_at=0.0)
    assert pod is not None
    assert (pod.group.key.name if pod.group else None, pod.group.size if pod.group else None) == (
        group,
        size,
    )
    assert (pod.group_error is None) == (error is None)
    if error is not None:
        assert error in str(pod.group_error)
