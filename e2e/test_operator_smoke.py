"""The operator as a real process: statuses converge, pods are admitted, usage survives restarts.

``gpufair operator --dev`` (no webhook) runs against the stand-in API server. A GPUPool selects
one node made from a real DGX-1 capture; a TenantQuota owns the test's namespace. The test
checks the pool and quota statuses converge, a gated pod is admitted (gate removed, time
stamped), a bound pod is metered, ``/metrics`` shows it, and a restarted operator resumes the
GPU-seconds from the persisted status without losing or double-counting them.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from e2e.harness import processes, waiting
from gpufair.api import names

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
POOL_LABEL = "gpufair.test/operator-pool"


def _get(k8s: Any, plural: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = k8s.custom.get_cluster_custom_object(
        names.GROUP, names.VERSION, plural, name
    )
    return result


def _condition(status: dict[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def tenant_setup(
    k8s: Any,
    apply_crds: Callable[..., list[str]],
    make_gpu_node: Callable[..., dict[str, Any]],
    namespace: str,
) -> Any:
    apply_crds()
    suffix = uuid.uuid4().hex[:6]
    pool, tenant, node = f"pool-{suffix}", f"tenant-{suffix}", f"node-{suffix}"
    make_gpu_node(node, DGX1, labels={POOL_LABEL: pool})
    k8s.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.GPU_POOL_PLURAL,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.GPU_POOL_KIND,
            "metadata": {"name": pool},
            "spec": {"nodeSelector": {"matchLabels": {POOL_LABEL: pool}}},
        },
    )
    k8s.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.TENANT_QUOTA_PLURAL,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.TENANT_QUOTA_KIND,
            "metadata": {"name": tenant},
            "spec": {"namespaces": [namespace], "pools": [{"name": pool, "guaranteed": 4}]},
        },
    )
    yield pool, tenant, node
    for plural, name in ((names.TENANT_QUOTA_PLURAL, tenant), (names.GPU_POOL_PLURAL, pool)):
        try:
            k8s.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, plural, name)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise


def _operator(run_component: Callable[..., processes.Component], port: int) -> processes.Component:
    return run_component(
        ["operator", "--dev", "--metrics-port", str(port), "--tick", "1"],
        ready_url=f"http://127.0.0.1:{port}/metrics",
        ready_timeout=60.0,
        env={"GPUFAIR_STATUS_INTERVAL_SECONDS": "1"},
    )


def test_statuses_converge_pods_are_admitted_and_usage_survives_a_restart(
    k8s: Any,
    namespace: str,
    run_component: Callable[..., processes.Component],
    tenant_setup: Any,
) -> None:
    # run_component before tenant_setup: the operator outlives the pool's deletion, so it can
    # remove kopf's finalizer from the pool (the reconcile loop is a kopf daemon on pools).
    import kubernetes

    pool, tenant, node = tenant_setup
    port = processes.free_port()
    operator = _operator(run_component, port)

    pool_status = waiting.wait_for(
        lambda: (
            (_get(k8s, names.GPU_POOL_PLURAL, pool).get("status") or {}).get("capacity") == 8
            and _get(k8s, names.GPU_POOL_PLURAL, pool)["status"]
        ),
        timeout=60,
        what="GPUPool status with the node's 8 GPUs",
    )
    assert _condition(pool_status, "Ready") == "True"
    assert pool_status["largestFreeIsland"] == 4, "DGX-1: two NVLink islands of four"
    quota = waiting.wait_for(
        lambda: (
            _condition(_get(k8s, names.TENANT_QUOTA_PLURAL, tenant).get("status") or {}, "Ready")
            == "True"
            and _get(k8s, names.TENANT_QUOTA_PLURAL, tenant)["status"]
        ),
        timeout=30,
        what="TenantQuota Ready",
    )
    assert quota["observedGeneration"] == 1
    assert quota["guaranteed"] == 4

    k8s.core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "train"},
            "spec": {
                "schedulerName": names.SCHEDULER_NAME,
                "schedulingGates": [{"name": names.ADMISSION_GATE}],
                "containers": [
                    {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
                ],
            },
        },
    )
    admitted = waiting.wait_for(
        lambda: (
            not k8s.core.read_namespaced_pod("train", namespace).spec.scheduling_gates
            and k8s.core.read_namespaced_pod("train", namespace)
        ),
        timeout=30,
        what="the admission gate removed",
    )
    assert names.ADMITTED_AT_ANNOTATION in (admitted.metadata.annotations or {})

    # Bind it as the extender would: GPU indices on the pod, then pods/binding.
    k8s.core.patch_namespaced_pod(
        "train", namespace, {"metadata": {"annotations": {names.GPUS_ANNOTATION: "0,1"}}}
    )
    k8s.core.create_namespaced_pod_binding(
        "train",
        namespace,
        kubernetes.client.V1Binding(
            metadata=kubernetes.client.V1ObjectMeta(name="train"),
            target=kubernetes.client.V1ObjectReference(kind="Node", name=node),
        ),
        _preload_content=False,
    )

    def metered() -> dict[str, Any] | None:
        status = _get(k8s, names.TENANT_QUOTA_PLURAL, tenant).get("status") or {}
        entry = (status.get("pools") or [{}])[0]
        return status if entry.get("allocated") == 2 and entry["usage"]["gpuSeconds"] > 0 else None

    status = waiting.wait_for(metered, timeout=30, what="the bound pod metered")
    first = status["pools"][0]["usage"]
    bound_at = _seconds(first["asOf"]) - first["gpuSeconds"] / 2
    # A pass writes the status first and records metrics at its end: wait for the gauge.
    gauge = f'gpufair_tenant_allocated_gpus{{pool="{pool}",tenant="{tenant}"}} 2.0'
    waiting.wait_for(
        lambda: gauge in _fetch(f"http://127.0.0.1:{port}/metrics"),
        timeout=10,
        what="the allocated-GPUs gauge",
    )

    # Restart: the new process resumes from the persisted usage.
    operator.stop()
    before = _get(k8s, names.TENANT_QUOTA_PLURAL, tenant)["status"]["pools"][0]["usage"]
    _operator(run_component, port)

    def resumed() -> dict[str, Any] | None:
        usage = _get(k8s, names.TENANT_QUOTA_PLURAL, tenant)["status"]["pools"][0]["usage"]
        return usage if _seconds(usage["asOf"]) > _seconds(before["asOf"]) + 1 else None

    after = waiting.wait_for(resumed, timeout=60, what="usage metered by the new process")
    held = _seconds(after["asOf"]) - bound_at
    assert after["gpuSeconds"] >= before["gpuSeconds"]
    assert after["gpuSeconds"] == pytest.approx(2 * held, abs=2 * 1.5), "no loss, no double count"


def _fetch(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_an_owner_reclaims_its_share_by_eviction_and_it_settles(
    k8s: Any,
    kubectl: Any,
    apply_crds: Callable[..., list[str]],
    make_gpu_node: Callable[..., dict[str, Any]],
    run_component: Callable[..., processes.Component],
) -> None:
    apply_crds()
    suffix = uuid.uuid4().hex[:6]
    pool, node = f"pool-{suffix}", f"node-{suffix}"
    borrower, owner = f"borrow-{suffix}", f"own-{suffix}"
    make_gpu_node(node, DGX1, labels={POOL_LABEL: pool})
    cleanup = contextlib.ExitStack()
    for ns in (borrower, owner):
        kubectl("create", "namespace", ns)
        cleanup.callback(kubectl, "delete", "namespace", ns, "--wait=false", check=False)
    for plural, name in (
        (names.TENANT_QUOTA_PLURAL, borrower),
        (names.TENANT_QUOTA_PLURAL, owner),
        (names.GPU_POOL_PLURAL, pool),
    ):
        cleanup.callback(_delete, k8s, plural, name)
    with cleanup:
        _reclaim_scenario(k8s, run_component, pool=pool, node=node, borrower=borrower, owner=owner)


def _delete(k8s: Any, plural: str, name: str) -> None:
    with contextlib.suppress(Exception):
        k8s.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, plural, name)


def _reclaim_scenario(
    k8s: Any,
    run_component: Callable[..., processes.Component],
    *,
    pool: str,
    node: str,
    borrower: str,
    owner: str,
) -> None:
    k8s.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.GPU_POOL_PLURAL,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.GPU_POOL_KIND,
            "metadata": {"name": pool},
            "spec": {"nodeSelector": {"matchLabels": {POOL_LABEL: pool}}},
        },
    )
    for tenant, guaranteed in ((borrower, 0), (owner, 4)):
        k8s.custom.create_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.TENANT_QUOTA_PLURAL,
            {
                "apiVersion": names.API_VERSION,
                "kind": names.TENANT_QUOTA_KIND,
                "metadata": {"name": tenant},
                "spec": {
                    "namespaces": [tenant],
                    "pools": [{"name": pool, "guaranteed": guaranteed}],
                },
            },
        )

    def pod(name: str, *, bound_to: int | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "schedulerName": names.SCHEDULER_NAME,
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        }
        metadata: dict[str, Any] = {"name": name}
        if bound_to is None:
            spec["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
        else:
            spec["nodeName"] = node
            metadata["annotations"] = {names.GPUS_ANNOTATION: str(bound_to)}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}

    for i in range(8):
        k8s.core.create_namespaced_pod(borrower, pod(f"b{i}", bound_to=i))
    for i in range(4):
        k8s.core.create_namespaced_pod(owner, pod(f"o{i}"))

    port = processes.free_port()
    _operator(run_component, port)

    def count(ns: str) -> int:
        return len(k8s.core.list_namespaced_pod(ns).items)

    waiting.wait_for(lambda: count(borrower) == 4, timeout=60, what="4 borrower pods evicted")
    waiting.wait_for(
        lambda: all(not p.spec.scheduling_gates for p in k8s.core.list_namespaced_pod(owner).items),
        timeout=30,
        what="the owner's 4 pods admitted",
    )
    reasons = {e.reason for e in k8s.core.list_namespaced_event(borrower).items if e.reason}
    assert "Preempted" in reasons
    text = _fetch(f"http://127.0.0.1:{port}/metrics")
    assert (
        f'gpufair_preemptions_total{{pool="{pool}",reason="Reclaim",tenant="{borrower}"}} 4.0'
        in text
    )

    # Settled: the borrower is at its fair share (4 of 8); nothing more is evicted.
    time.sleep(5)
    assert count(borrower) == 4
    status = _get(k8s, names.TENANT_QUOTA_PLURAL, borrower)["status"]["pools"][0]
    assert status["fairShare"] == 4
