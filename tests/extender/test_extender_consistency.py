"""Issue 13, extender side: a tenant's limit holds under concurrent binds (item 4), a failed bind
leaves no trace (item 11), and a stale cache answers an Error and is not ready (item 6)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import threading
from typing import Any

import pytest
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.state import cache

Pod = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bind_args(pod: Pod, node: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"],
        "Node": node,
    }


def held_by_team_a(state: cache.ClusterCache) -> int:
    return state.snapshot().used("team-a", "h100")


# -- item 4: the limit is checked atomically with the assumption --------------------------------


@pytest.mark.parametrize("confirm", [False, True], ids=["assumed-only", "watch-confirms"])
def test_concurrent_binds_of_one_tenant_to_different_nodes_keep_its_limit(
    monkeypatch: pytest.MonkeyPatch, confirm: bool
) -> None:
    """Two 4-GPU pods of team-a (limit 4) bound at once to n1 and n2: one succeeds.

    Each bind waits at a barrier before taking its node lock, so on a limit check made on a
    snapshot taken before that lock both binds would pass it; under the tenant's lock the
    second bind cannot even start deciding until the first has assumed (the barrier times
    out, and the first goes on alone).
    """
    pods = [kube.pod("p1", gpus=4), kube.pod("p2", gpus=4)]
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1()), kube.node("n2", kube.dgx1())],
        quotas=[kube.quota("team-a", pools={"h100": (4, 4)})],
        pods=pods,
    )
    writer = cluster.FakeWriter(state, pods, confirm=confirm)
    client = cluster.extender_client(state, writer)
    both_decided = threading.Barrier(2, timeout=0.5)
    node_lock = state.node_lock

    def racing_node_lock(node: str) -> threading.Lock:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_decided.wait()
        return node_lock(node)

    monkeypatch.setattr(state, "node_lock", racing_node_lock)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        errors = list(
            pool.map(
                lambda pn: client.post("/bind", json=bind_args(*pn)).json()["Error"],
                [(pods[0], "n1"), (pods[1], "n2")],
            )
        )
    assert sorted(errors, key=bool)[0] == ""
    assert "limit" in sorted(errors, key=bool)[1]
    assert len(writer.bindings) == 1
    assert held_by_team_a(state) == 4


def test_many_concurrent_binds_of_two_tenants_never_pass_either_limit() -> None:
    quotas = [
        kube.quota("team-a", pools={"h100": (4, 6)}),
        kube.quota("team-b", pools={"h100": (4, 5)}),
    ]
    pods = [
        kube.pod(f"p{i}", gpus=1 + i % 2, namespace="team-a" if i % 3 else "team-b")
        for i in range(24)
    ]
    state = cluster.cluster(
        nodes=[kube.node(f"n{i}", kube.dgx1()) for i in range(4)], quotas=quotas, pods=pods
    )
    writer = cluster.FakeWriter(state, pods, confirm=False)
    client = cluster.extender_client(state, writer)
    start = threading.Barrier(8)

    def bind(index: int) -> str:
        if index < 8:
            start.wait()
        error: str = client.post("/bind", json=bind_args(pods[index], f"n{index % 4}")).json()[
            "Error"
        ]
        return error

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        errors = list(pool.map(bind, range(len(pods))))
    snapshot = state.snapshot()
    assert snapshot.used("team-a", "h100") <= 6
    assert snapshot.used("team-b", "h100") <= 5
    assert snapshot.used("team-a", "h100") + snapshot.used("team-b", "h100") == sum(
        len(a.gpus) for a in snapshot.assumed.values()
    )
    assert all("limit" in error for error in errors if error)


# -- item 11: a failed bind leaves nothing behind -----------------------------------------------


class ConflictError(Exception):
    """What the kubernetes client raises for HTTP 409 (its ApiException, in shape)."""

    status = 409
    reason = "Conflict"


class LosingWriter(cluster.FakeWriter):
    """Another scheduler binds the pod between bind's read and its write: the API server
    answers the extender's Binding with 409 Conflict."""

    def bind_pod(self, *, namespace: str, name: str, uid: str, node: str, annotations: Any) -> None:
        pod = self.pods[(namespace, name)]
        winner = kube.bound_copy(copy.deepcopy(pod), node="elsewhere", annotations={})
        self.pods[(namespace, name)] = winner
        self.state.upsert(cache.Kind.POD, winner)
        raise ConflictError(f'pods "{name}" is already assigned to node "elsewhere"')


def test_a_bind_ending_in_409_leaves_no_gpus_annotation_and_no_assumption() -> None:
    pod = kube.pod("late", gpus=2)
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[pod])
    writer = LosingWriter(state, [pod])
    error = (
        cluster.extender_client(state, writer)
        .post("/bind", json=bind_args(pod, "n1"))
        .json()["Error"]
    )
    assert "already assigned" in error
    annotations = writer.pods[("team-a", "late")]["metadata"].get("annotations") or {}
    assert names.GPUS_ANNOTATION not in annotations
    snapshot = state.snapshot()
    assert snapshot.assumed == {}
    assert snapshot.nodes["n1"].free == frozenset(range(8))
    assert held_by_team_a(state) == 0  # "elsewhere" is no node of the cache: counted nowhere


# -- item 6: a stale cache is not ready and answers every verb with an Error --------------------


def test_a_cache_silent_past_its_bound_is_not_ready_until_the_watch_hears_again() -> None:
    clock = Clock()
    pod = kube.pod("p", gpus=1)
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1())], pods=[pod], clock=clock, staleness_seconds=10
    )
    client = cluster.extender_client(state, cluster.FakeWriter(state, [pod]))
    filter_body = {"Pod": pod, "NodeNames": ["n1"]}
    assert client.get("/readyz").status_code == 200

    clock.now += 10  # at the bound: still fresh
    assert client.post("/filter", json=filter_body).json()["NodeNames"] == ["n1"]
    for kind in cache.Kind:
        if kind is not cache.Kind.POD:
            state.heard(kind)
    clock.now += 1  # pods silent for 11 s
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "stale" in ready.text
    answer = client.post("/filter", json=filter_body).json()
    assert "stale" in answer["Error"]
    assert not answer.get("NodeNames")
    assert "stale" in client.post("/bind", json=bind_args(pod, "n1")).json()["Error"]
    metrics = client.get("/metrics").text
    assert "gpufair_extender_cache_stale 1.0" in metrics
    assert 'gpufair_extender_cache_silence_seconds{kind="Pod"} 11.0' in metrics

    state.heard(cache.Kind.POD)  # a bookmark arrives: recovered without a restart
    assert client.get("/readyz").status_code == 200
    assert client.post("/filter", json=filter_body).json()["NodeNames"] == ["n1"]


class UnreachableWriter(cluster.FakeWriter):
    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")


def test_a_bind_while_the_api_server_is_unreachable_is_an_error_not_a_500() -> None:
    """Found by e2e/test_faults_extender.py: reading the pod raised through the route."""
    pod = kube.pod("p", gpus=1)
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[pod])
    answer = cluster.extender_client(state, UnreachableWriter(state, [pod])).post(
        "/bind", json=bind_args(pod, "n1")
    )
    assert answer.status_code == 200
    assert "Connection refused" in answer.json()["Error"]
    assert state.snapshot().assumed == {}
