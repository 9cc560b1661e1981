"""Bind refuses what kube-scheduler would never ask, and binds nothing when it refuses.

The extender holds cluster-wide ``pods/binding`` rights, so an unexpected ``POST /bind``
(another scheduler's pod, a node the pod's selector, affinity, taints or tenant exclude) must
get an ``Error`` and leave the pod untouched. Cluster: ``h1`` and ``h2`` (h100 pool; ``h2`` in
zone b and tainted ``dedicated=infer:NoSchedule``), ``a1`` (a100 pool, where team-a has no
quota), ``cpu`` (in no pool).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.extender import app as extender_app
from gpufair.extender import settings
from gpufair.state import cache

Pod = dict[str, Any]


def tainted(node: dict[str, Any]) -> dict[str, Any]:
    node["spec"]["taints"] = [{"key": "dedicated", "value": "infer", "effect": "NoSchedule"}]
    return node


def new_state() -> cache.ClusterCache:
    return cluster.cluster(
        pools=[kube.pool("h100"), kube.pool("a100")],
        quotas=[kube.quota("team-a", pools={"h100": (8, 16)})],
        nodes=[
            kube.node("h1", kube.dgx1(), extra_labels={"zone": "a"}),
            tainted(kube.node("h2", kube.dgx1(), extra_labels={"zone": "b"})),
            kube.node("a1", kube.dgx1(), pool_label="a100"),
            kube.node("cpu", None, pool_label=None, allocatable=0),
        ],
    )


def with_spec(**fields: Any) -> Callable[[Pod], Pod]:
    def change(pod: Pod) -> Pod:
        pod["spec"].update(copy.deepcopy(fields))
        return pod

    return change


def requiring_zone(zone: str) -> Callable[[Pod], Pod]:
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": [zone]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}  # fmt: skip
    return with_spec(affinity=affinity)


def unchanged(pod: Pod) -> Pod:
    return pod


def without_gpus(_: Pod) -> Pod:
    return kube.pod("train", gpus=None)


TOLERATE_INFER = {"key": "dedicated", "operator": "Equal", "value": "infer", "effect": "NoSchedule"}

REFUSED = [
    pytest.param(with_spec(schedulerName="default-scheduler"), "h1",
                 "uses scheduler 'default-scheduler', not gpufair-scheduler", id="other-scheduler"),
    pytest.param(with_spec(nodeName="h2"), "h1", "already bound to h2", id="already-bound"),
    pytest.param(without_gpus, "h1", "requests no GPU resource gpufair manages", id="no-gpu"),
    pytest.param(unchanged, "ghost", "node not in gpufair's cache", id="unknown-node"),
    pytest.param(with_spec(nodeSelector={"zone": "b"}), "h1",
                 "does not match the pod's nodeSelector zone=b", id="node-selector"),
    pytest.param(requiring_zone("b"), "h1", "required node affinity", id="required-affinity"),
    pytest.param(unchanged, "h2", "taint dedicated:NoSchedule", id="untolerated-taint"),
    pytest.param(unchanged, "a1", "tenant team-a has no quota in pool a100", id="tenant-pool"),
    pytest.param(unchanged, "cpu", "node is in no GPUPool", id="no-pool"),
]  # fmt: skip

ALLOWED = [
    pytest.param(unchanged, "h1", id="plain"),
    pytest.param(with_spec(nodeSelector={"zone": "a"}), "h1", id="matching-selector"),
    pytest.param(
        lambda p: with_spec(tolerations=[TOLERATE_INFER])(requiring_zone("b")(p)),
        "h2",
        id="affinity-and-toleration",
    ),
]


def bind(pod: Pod, node: str) -> tuple[dict[str, Any], cluster.FakeWriter]:
    state = new_state()
    writer = cluster.FakeWriter(state, [pod])
    client = testclient.TestClient(
        extender_app.create_app(settings.ExtenderSettings(watch=False), state=state, writer=writer)
    )
    meta = pod["metadata"]
    body = {"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"]}
    response = client.post("/bind", json={**body, "Node": node})
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer, writer


@pytest.mark.parametrize(("change", "node", "reason"), REFUSED)
def test_bind_refuses_and_touches_nothing(
    change: Callable[[Pod], Pod], node: str, reason: str
) -> None:
    answer, writer = bind(change(kube.pod("train", gpus=2)), node)
    assert reason in answer["Error"]
    assert writer.bindings == []
    assert writer.annotations == {}


@pytest.mark.parametrize(("change", "node"), ALLOWED)
def test_bind_allows_what_the_pod_permits(change: Callable[[Pod], Pod], node: str) -> None:
    answer, writer = bind(change(kube.pod("train", gpus=2)), node)
    assert answer == {"Error": ""}
    assert [b[3] for b in writer.bindings] == [node]
    assert writer.annotations[("team-a", "train")][names.POOL_ANNOTATION] == "h100"
