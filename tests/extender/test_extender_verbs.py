"""The four verbs over HTTP, with bodies shaped as kube-scheduler sends them.

The cluster: ``free`` (DGX-1, all 8 GPUs free), ``broken`` (DGX-1 with GPUs 0,1 and 4,5 taken,
so its largest free NVLink island is 2), ``pcie`` (no NVLink at all, all free), ``cpu`` (a
node in no pool). Tenants: team-a (limit 16), team-b (limit 2, already using 2).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.state import cache

NODES = ["free", "broken", "pcie", "cpu"]


def objects(rule: str = "Required") -> dict[str, Any]:
    return {
        "pools": [kube.pool("h100", rule=rule)],
        "quotas": [
            kube.quota("team-a", pools={"h100": (8, 16)}),
            kube.quota("team-b", pools={"h100": (2, 2)}),
            kube.quota("team-c", pools={"a100": (0, 8)}),
            kube.quota("broke", pools={"h100": (0, None)}, budget_exhausted=True),
        ],
        "nodes": [
            kube.node("free", kube.dgx1()),
            kube.node("broken", kube.dgx1()),
            kube.node("pcie", kube.pcie_only()),
            kube.node("cpu", None, pool_label=None, allocatable=0),
        ],
        "pods": [
            kube.pod("b1", namespace="team-b", gpus=2, node="broken", bound=[0, 1], pod_uid="b1"),
            kube.pod("a0", gpus=2, node="broken", bound=[4, 5], pod_uid="a0"),
        ],
    }


@pytest.fixture
def state() -> cache.ClusterCache:
    return cluster.cluster(**objects())


@pytest.fixture
def client(state: cache.ClusterCache) -> testclient.TestClient:
    return cluster.extender_client(state)


def filter_names(
    client: testclient.TestClient, pod: dict[str, Any], nodes: list[str] = NODES
) -> dict[str, Any]:
    response = client.post("/filter", json={"Pod": pod, "Nodes": None, "NodeNames": nodes})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


# -- filter ------------------------------------------------------------------------------------


def test_filter_keeps_nodes_with_a_free_island_and_says_why_others_drop(
    client: testclient.TestClient,
) -> None:
    result = filter_names(client, kube.pod("train", gpus=4))
    assert result == {
        "Nodes": None,
        "NodeNames": ["free", "pcie"],
        "FailedNodes": {"broken": "no free NVLink island of 4 GPUs (largest free: 2)"},
        "FailedAndUnresolvableNodes": {"cpu": "node is in no GPUPool"},
        "Error": "",
    }


def test_filter_with_full_node_objects_answers_with_node_objects(
    client: testclient.TestClient,
) -> None:
    items = [kube.node("free", kube.dgx1()), kube.node("broken", kube.dgx1())]
    response = client.post(
        "/filter",
        json={
            "Pod": kube.pod(gpus=4),
            "Nodes": {"metadata": {}, "items": items},
            "NodeNames": None,
        },
    )
    result = response.json()
    assert result["NodeNames"] is None
    assert result["Nodes"]["items"] == [items[0]]
    assert set(result["FailedNodes"]) == {"broken"}


def test_tenant_at_its_limit_is_unresolvable_everywhere_with_one_text(
    client: testclient.TestClient,
) -> None:
    result = filter_names(client, kube.pod("more", namespace="team-b", gpus=1), ["free", "pcie"])
    assert result["NodeNames"] == []
    assert result["FailedNodes"] == {}
    reason = "tenant team-b at limit 2/2 GPUs in pool h100 (requested 1)"
    assert result["FailedAndUnresolvableNodes"] == {"free": reason, "pcie": reason}


@pytest.mark.parametrize(
    ("namespace", "reason"),
    [
        pytest.param("nobody", "namespace nobody belongs to no TenantQuota", id="no-tenant"),
        pytest.param("team-c", "tenant team-c has no quota in pool h100", id="other-pool"),
        pytest.param("broke", "tenant broke GPU-hour budget exhausted", id="budget"),
    ],
)
def test_tenant_causes_are_unresolvable(
    client: testclient.TestClient, namespace: str, reason: str
) -> None:
    result = filter_names(client, kube.pod(namespace=namespace, gpus=1), ["free"])
    assert result["FailedAndUnresolvableNodes"] == {"free": reason}


def test_unknown_node_is_dropped_with_a_reason(client: testclient.TestClient) -> None:
    result = filter_names(client, kube.pod(gpus=1), ["free", "ghost"])
    assert result["NodeNames"] == ["free"]
    assert result["FailedNodes"] == {"ghost": "node not (yet) in gpufair's cache"}


def test_pods_without_gpus_pass_untouched(client: testclient.TestClient) -> None:
    result = filter_names(client, kube.pod("web", gpus=None))
    assert result["NodeNames"] == NODES
    assert result["FailedNodes"] == {}
    scores = client.post("/prioritize", json={"Pod": kube.pod(gpus=None), "NodeNames": NODES})
    assert scores.json() == [{"Host": n, "Score": 0} for n in NODES]


def test_a_pod_that_cannot_be_judged_gets_error_with_200(client: testclient.TestClient) -> None:
    result = filter_names(client, kube.pod("half", gpus="500m"))
    assert "team-a/half requests 0.5 nvidia.com/gpu: not a whole number" in result["Error"]


def test_filter_and_bind_before_the_cache_synced_are_errors() -> None:
    unsynced = cache.ClusterCache()
    pod = kube.pod(gpus=1)
    client = cluster.extender_client(unsynced, cluster.FakeWriter(unsynced, [pod]))
    assert client.get("/readyz").status_code == 503
    result = filter_names(client, pod, ["free"])
    assert result["Error"] == "gpufair extender cache has not synced with the API server yet"
    assert client.post("/bind", json=bind_args(pod, "free")).json() == {"Error": result["Error"]}
    assert filter_names(client, kube.pod(gpus=None), ["free"])["NodeNames"] == ["free"]


def test_filter_has_no_side_effects(
    client: testclient.TestClient, state: cache.ClusterCache
) -> None:
    before = state.snapshot()
    first = filter_names(client, kube.pod(gpus=4))
    second = filter_names(client, kube.pod(gpus=4))
    assert first == second
    assert state.snapshot() is before


# -- prioritize ---------------------------------------------------------------------------------


def test_prioritize_prefers_filling_a_broken_island(client: testclient.TestClient) -> None:
    response = client.post(
        "/prioritize", json={"Pod": kube.pod(gpus=2), "Nodes": None, "NodeNames": NODES}
    )
    scores = {entry["Host"]: entry["Score"] for entry in response.json()}
    assert set(scores) == set(NODES)
    assert all(isinstance(score, int) and 0 <= score <= 10 for score in scores.values())
    assert scores["broken"] > scores["free"] > scores["pcie"]
    assert scores["cpu"] == 0


def test_prioritize_keeps_the_islands_waiting_wider_pods_need() -> None:
    """Two 4-GPU pods wait (not bound yet): a 2-GPU pod now prefers the PCIe node to both
    DGX-1s, the idle one (it would break an island they need) and the broken one (its partly
    used islands are the ones that must empty for them). The demand comes from the cache."""
    waiting = [kube.pod(f"wide{i}", gpus=4, pod_uid=f"wide{i}") for i in range(2)]
    base = objects()
    state = cluster.cluster(**{**base, "pods": [*base["pods"], *waiting]})
    response = cluster.extender_client(state).post(
        "/prioritize", json={"Pod": kube.pod(gpus=2), "Nodes": None, "NodeNames": NODES}
    )
    scores = {entry["Host"]: entry["Score"] for entry in response.json()}
    assert scores["pcie"] > scores["broken"]
    assert scores["pcie"] > scores["free"]


# -- preempt ------------------------------------------------------------------------------------


def preempt(
    client: testclient.TestClient, pod: dict[str, Any], victims: dict[str, Any]
) -> dict[str, Any]:
    response = client.post(
        "/preempt",
        json={"Pod": pod, "NodeNameToVictims": None, "NodeNameToMetaVictims": victims},
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    ("gpus", "kept"),
    [
        pytest.param(
            6, {"broken": {"Pods": [{"UID": "a0"}], "NumPDBViolations": 0}}, id="narrowed"
        ),
        pytest.param(8, {}, id="node-dropped-when-the-rest-does-not-make-room"),
    ],
)
def test_preempt_protects_a_tenant_within_its_guarantee(
    client: testclient.TestClient, gpus: int, kept: dict[str, Any]
) -> None:
    """team-b holds exactly its guarantee (2): its pod may not be a victim of team-a."""
    result = preempt(
        client,
        kube.pod("big", gpus=gpus),
        {"broken": {"Pods": [{"UID": "b1"}, {"UID": "a0"}], "NumPDBViolations": 0}},
    )
    assert result == {"NodeNameToMetaVictims": kept}


def test_preempt_keeps_victims_of_the_preemptors_own_tenant(
    client: testclient.TestClient,
) -> None:
    result = preempt(
        client,
        kube.pod("urgent", gpus=6, priority=1000),
        {"broken": {"Pods": [{"UID": "a0"}], "NumPDBViolations": 1}},
    )
    assert result == {
        "NodeNameToMetaVictims": {"broken": {"Pods": [{"UID": "a0"}], "NumPDBViolations": 1}}
    }


def test_preempt_only_narrows(client: testclient.TestClient) -> None:
    proposal = {
        "broken": {"Pods": [{"UID": "a0"}, {"UID": "b1"}], "NumPDBViolations": 0},
        "ghost": {"Pods": [{"UID": "zzz"}], "NumPDBViolations": 0},
    }
    result = preempt(client, kube.pod("urgent", gpus=2), proposal)["NodeNameToMetaVictims"]
    assert set(result) <= set(proposal)
    for node, victims in result.items():
        assert {p["UID"] for p in victims["Pods"]} <= {p["UID"] for p in proposal[node]["Pods"]}


def test_preempt_for_a_pod_without_gpus_returns_the_proposal(
    client: testclient.TestClient,
) -> None:
    proposal = {"cpu": {"Pods": [{"UID": "x"}], "NumPDBViolations": 2}}
    assert preempt(client, kube.pod(gpus=None), proposal) == {"NodeNameToMetaVictims": proposal}


def test_preempt_with_full_victim_pods_answers_with_uids(client: testclient.TestClient) -> None:
    victim = kube.pod("a0", gpus=2, node="broken", bound=[4, 5], pod_uid="a0")
    response = client.post(
        "/preempt",
        json={
            "Pod": kube.pod("urgent", gpus=6),
            "NodeNameToVictims": {"broken": {"Pods": [victim], "NumPDBViolations": 0}},
        },
    )
    assert response.json() == {
        "NodeNameToMetaVictims": {"broken": {"Pods": [{"UID": "a0"}], "NumPDBViolations": 0}}
    }


# -- bind ---------------------------------------------------------------------------------------


def bind_args(pod: dict[str, Any], node: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"],
        "Node": node,
    }


def test_bind_records_gpus_and_numa_then_binds(state: cache.ClusterCache) -> None:
    pod = kube.pod("train", gpus=4)
    state.upsert(cache.Kind.POD, pod)
    writer = cluster.FakeWriter(state, [pod])
    client = cluster.extender_client(state, writer)
    response = client.post("/bind", json=bind_args(pod, "broken"))
    assert response.json() == {
        "Error": "cannot bind team-a/train to broken:"
        " no free NVLink island of 4 GPUs (largest free: 2)"
    }
    response = client.post("/bind", json=bind_args(pod, "free"))
    assert response.json() == {"Error": ""}
    assert writer.annotations[("team-a", "train")] == {
        names.GPUS_ANNOTATION: "0,1,2,3",
        names.NUMA_ANNOTATION: "0",
        names.POOL_ANNOTATION: "h100",
    }
    assert writer.bindings == [("team-a", "train", pod["metadata"]["uid"], "free")]
    assert state.snapshot().nodes["free"].free == frozenset({4, 5, 6, 7})


def test_bind_reads_a_pod_the_cache_has_not_seen(state: cache.ClusterCache) -> None:
    pod = kube.pod("fresh", gpus=1)
    writer = cluster.FakeWriter(state, [pod])
    response = cluster.extender_client(state, writer).post("/bind", json=bind_args(pod, "broken"))
    assert response.json() == {"Error": ""}
    assert writer.annotations[("team-a", "fresh")][names.GPUS_ANNOTATION] in {"2", "3", "6", "7"}


def test_a_failed_binding_gives_the_gpus_back(state: cache.ClusterCache) -> None:
    pod = kube.pod("train", gpus=4)
    writer = cluster.FakeWriter(state, [pod], fail_bind="pods/binding: conflict")
    response = cluster.extender_client(state, writer).post("/bind", json=bind_args(pod, "free"))
    assert "pods/binding: conflict" in response.json()["Error"]
    assert state.snapshot().nodes["free"].free == frozenset(range(8))
    assert state.snapshot().assumed == {}


# -- malformed bodies, health, metrics ----------------------------------------------------------


@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt", "bind"])
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="list"),
        pytest.param(b"{", id="cut"),
    ],
)
def test_malformed_bodies_are_400_with_a_specific_message(
    client: testclient.TestClient, verb: str, payload: bytes
) -> None:
    response = client.post(f"/{verb}", content=payload)
    assert response.status_code == 400
    assert response.text.startswith("Extender")
    assert len(response.text) < 200


def test_health_ready_and_metrics(client: testclient.TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    filter_names(client, kube.pod(gpus=1))
    text = client.get("/metrics").text
    assert 'gpufair_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
    assert 'gpufair_extender_filter_nodes_total{result="passed"} 3.0' in text
    assert "gpufair_extender_cache_synced 1.0" in text


def test_openapi_lists_the_verbs(client: testclient.TestClient) -> None:
    paths = json.loads(client.get("/openapi.json").text)["paths"]
    assert {"/filter", "/prioritize", "/preempt", "/bind", "/healthz", "/readyz"} <= set(paths)
