"""Concurrent binds never share a GPU; a restarted extender rebuilds everything from the API."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.extender import app as extender_app
from gpufair.extender import settings
from gpufair.state import cache


def bind_args(pod: dict[str, Any], node: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"],
        "Node": node,
    }


def new_client(state: cache.ClusterCache, writer: cluster.FakeWriter) -> testclient.TestClient:
    app = extender_app.create_app(
        settings.ExtenderSettings(watch=False), state=state, writer=writer
    )
    return testclient.TestClient(app)


def gpus_of(writer: cluster.FakeWriter) -> list[frozenset[int]]:
    return [
        frozenset(int(i) for i in notes[names.GPUS_ANNOTATION].split(","))
        for notes in writer.annotations.values()
    ]


@pytest.mark.parametrize("confirm", [False, True], ids=["assumed-only", "watch-confirms"])
def test_concurrent_binds_to_one_node_never_share_a_gpu(confirm: bool) -> None:
    pods = [kube.pod(f"p{i}", gpus=1 + i % 2) for i in range(8)]  # 12 GPUs asked, 8 exist
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=pods)
    writer = cluster.FakeWriter(state, pods, confirm=confirm)
    client = new_client(state, writer)
    start = threading.Barrier(len(pods))

    def bind(pod: dict[str, Any]) -> str:
        start.wait()
        response = client.post("/bind", json=bind_args(pod, "n1"))
        error: str = response.json()["Error"]
        return error

    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        errors = list(pool.map(bind, pods))

    taken = gpus_of(writer)
    assert sum(len(g) for g in taken) == len(frozenset().union(*taken))
    assert sum(len(g) for g in taken) <= 8
    assert len(writer.bindings) == errors.count("")
    assert all("free GPUs" in e or "no free" in e for e in errors if e)
    assert len(state.snapshot().nodes["n1"].free) == 8 - sum(len(g) for g in taken)


def test_binds_to_many_nodes_in_parallel_fill_them_exactly() -> None:
    nodes = [kube.node(f"n{i}", kube.nvswitch()) for i in range(4)]
    pods = [kube.pod(f"p{i}", gpus=2) for i in range(16)]
    state = cluster.cluster(nodes=nodes, pods=pods, quotas=[kube.quota("team-a")])
    writer = cluster.FakeWriter(state, pods, confirm=False)
    client = new_client(state, writer)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        errors = list(
            pool.map(
                lambda ip: client.post("/bind", json=bind_args(ip[1], f"n{ip[0] % 4}")).json()[
                    "Error"
                ],
                enumerate(pods),
            )
        )
    assert errors == [""] * 16
    assert all(not view.free for view in state.snapshot().nodes.values())


def test_restart_rebuilds_allocations_from_pod_annotations() -> None:
    node_objects = [kube.node("n1", kube.dgx1()), kube.node("n2", kube.dgx1())]
    first_pods = [kube.pod(f"a{i}", gpus=2) for i in range(3)]
    state = cluster.cluster(nodes=node_objects, pods=first_pods)
    writer = cluster.FakeWriter(state, first_pods, confirm=True)
    client = new_client(state, writer)
    for pod in first_pods:
        assert client.post("/bind", json=bind_args(pod, "n1")).json() == {"Error": ""}
    before = state.snapshot()

    # The extender restarts: a new cache lists what the API server has (the writer's pods).
    api_pods = list(writer.pods.values())
    restarted = cluster.cluster(nodes=node_objects, pods=api_pods)
    after = restarted.snapshot()
    assert after.nodes["n1"].free == before.nodes["n1"].free == frozenset({6, 7})
    assert after.used("team-a", "h100") == 6

    newcomer = kube.pod("late", gpus=2)
    writer2 = cluster.FakeWriter(restarted, [*api_pods, newcomer], confirm=True)
    response = new_client(restarted, writer2).post("/bind", json=bind_args(newcomer, "n1"))
    assert response.json() == {"Error": ""}
    assert writer2.annotations[("team-a", "late")][names.GPUS_ANNOTATION] == "6,7"
    assert restarted.snapshot().nodes["n1"].free == frozenset()
