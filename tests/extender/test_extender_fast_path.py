"""The shortcuts that keep the HTTP path cheap answer exactly what the plain path answers.

Verb routes are served without FastAPI's per-request machinery (``routes.wire.VerbRoute``) and
prioritize reuses filter's verdicts when the pod and the snapshot are the same
(``verbs.Placer.judge``); neither may change an answer, a status code or what OpenAPI lists.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.extender import verbs
from gpufair.state import cache

NODES = ["free", "broken", "pcie", "cpu"]


def fresh_state() -> cache.ClusterCache:
    return cluster.cluster(
        pools=[kube.pool("h100")],
        quotas=[kube.quota("team-a", pools={"h100": (8, 16)})],
        nodes=[
            kube.node("free", kube.dgx1()),
            kube.node("broken", kube.dgx1()),
            kube.node("pcie", kube.pcie_only()),
            kube.node("cpu", None, pool_label=None, allocatable=0),
        ],
        pods=[kube.pod("a0", gpus=2, node="broken", bound=[4, 5], pod_uid="a0")],
    )


def args(pod: dict[str, Any], nodes: list[str] = NODES) -> dict[str, Any]:
    return {"Pod": pod, "Nodes": None, "NodeNames": nodes}


def scores(client: testclient.TestClient, pod: dict[str, Any]) -> dict[str, int]:
    response = client.post("/prioritize", json=args(pod))
    assert response.status_code == 200
    return {entry["Host"]: entry["Score"] for entry in response.json()}


@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt", "bind"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_verbs_answer_other_methods_with_405_and_allow_post(verb: str, method: str) -> None:
    response = cluster.extender_client(fresh_state()).request(method, f"/{verb}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_verbs_still_answer_json_with_their_content_type() -> None:
    response = cluster.extender_client(fresh_state()).post("/filter", json=args(kube.pod(gpus=2)))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)


def test_prioritize_after_filter_scores_as_a_fresh_extender_does() -> None:
    pod = kube.pod(gpus=2)
    warm = cluster.extender_client(fresh_state())
    warm.post("/filter", json=args(pod))
    assert scores(warm, pod) == scores(cluster.extender_client(fresh_state()), pod)


def test_prioritize_sees_a_change_made_after_filter() -> None:
    """A bind between filter and prioritize (another pod took GPUs) must not be hidden by
    filter's verdicts: a new snapshot gets a new judge."""
    pod = kube.pod(gpus=2)
    state = fresh_state()
    client = cluster.extender_client(state)
    client.post("/filter", json=args(pod))
    before = scores(client, pod)
    state.upsert(
        cache.Kind.POD, kube.pod("a1", gpus=6, node="free", bound=[0, 1, 2, 3, 4, 5], pod_uid="a1")
    )
    after = scores(client, pod)
    expected = scores(cluster.extender_client(state), pod)
    assert after == expected
    assert after["free"] != before["free"]


def test_placer_reuses_a_judge_only_for_the_same_pod_and_snapshot() -> None:
    state = fresh_state()
    placer = verbs.Placer()
    ask = verbs.read_pod(kube.pod(gpus=2, pod_uid="p1"))
    snapshot = state.snapshot()
    judge = placer.judge(snapshot, ask)
    assert placer.judge(snapshot, verbs.read_pod(kube.pod(gpus=2, pod_uid="p1"))) is judge
    assert placer.judge(snapshot, verbs.read_pod(kube.pod(gpus=4, pod_uid="p1"))) is not judge
    other = verbs.read_pod(kube.pod(gpus=2, pod_uid="p2"))
    assert placer.judge(snapshot, other) is not judge
    state.upsert(cache.Kind.POD, kube.pod("a1", gpus=1, node="free", bound=[0], pod_uid="a1"))
    assert placer.judge(state.snapshot(), other).snapshot is not snapshot


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(NODES, id="the-same-names"),
        pytest.param(NODES[::-1], id="reordered"),
        pytest.param(["free", "pcie", "nowhere", "cpu"], id="same-length-other-names"),
        pytest.param(["broken", "free"], id="a-subset"),
    ],
)
def test_prioritize_after_filter_of_other_names_scores_as_a_fresh_extender(
    names: list[str],
) -> None:
    pod = kube.pod(gpus=2)
    warm = cluster.extender_client(fresh_state())
    warm.post("/filter", json=args(pod))
    answers = []
    for client in (warm, cluster.extender_client(fresh_state())):
        response = client.post("/prioritize", json=args(pod, names))
        answers.append(sorted((e["Host"], e["Score"]) for e in response.json()))
    assert answers[0] == answers[1]
    assert [host for host, _ in answers[0]] == sorted(names)


CHANGES: list[tuple[str, cache.Kind, dict[str, Any]]] = [
    ("upsert", cache.Kind.POD, kube.pod("x1", gpus=2, node="free", bound=[0, 4], pod_uid="x1")),
    (
        "upsert",
        cache.Kind.POD,
        kube.pod("x2", gpus=4, node="pcie", bound=[0, 1, 2, 3], pod_uid="x2"),
    ),
    ("upsert", cache.Kind.TENANT_QUOTA, kube.quota("team-a", pools={"h100": (2, 8)})),  # at limit
    (
        "delete",
        cache.Kind.POD,
        kube.pod("x2", gpus=4, node="pcie", bound=[0, 1, 2, 3], pod_uid="x2"),
    ),
    ("upsert", cache.Kind.GPU_POOL, kube.pool("h100", rule="Required")),
    ("delete", cache.Kind.POD, kube.pod("x1", gpus=2, node="free", bound=[0, 4], pod_uid="x1")),
    ("upsert", cache.Kind.NODE, kube.node("broken", kube.dgx1(), unschedulable=True)),
]
"""What happens to the cluster between the pods of the long-running test, one per step."""


def answers(client: testclient.TestClient, pod: dict[str, Any]) -> tuple[Any, Any]:
    filtered = client.post("/filter", json=args(pod)).json()
    scored = client.post("/prioritize", json=args(pod)).json()
    return filtered, sorted((entry["Host"], entry["Score"]) for entry in scored)


def test_a_long_running_extender_answers_as_a_fresh_one_after_every_change() -> None:
    """Verdicts kept across requests (per node shape, per pod ask) never outlive what they
    depend on: after each change, pods of every size get what a just-started extender says."""
    state = fresh_state()
    warm = cluster.extender_client(state)
    for step in range(8):
        for gpus in (1, 2, 4, 8):
            pod = kube.pod(f"p{step}-{gpus}", gpus=gpus, pod_uid=f"p{step}-{gpus}")
            assert answers(warm, pod) == answers(cluster.extender_client(state), pod), (step, gpus)
        action, kind, obj = CHANGES[step % len(CHANGES)]
        (state.upsert if action == "upsert" else state.delete)(kind, obj)


def test_the_same_malformed_body_twice_is_refused_twice() -> None:
    client = cluster.extender_client(fresh_state())
    body = b'{"Pod": null, "NodeNames": ["free"]}'
    for _ in range(2):
        response = client.post("/filter", content=body)
        assert response.status_code == 400
        assert response.text.startswith("ExtenderArgs: Pod: Input should be")


def test_a_body_repeated_for_another_verb_is_decoded_as_that_verb() -> None:
    """filter's bytes sent to preempt are a preempt body without proposals, not filter args."""
    client = cluster.extender_client(fresh_state())
    body = kube_json(args(kube.pod(gpus=2)))
    assert client.post("/filter", content=body).json()["NodeNames"] == ["free", "broken", "pcie"]
    assert client.post("/preempt", content=body).json() == {"NodeNameToMetaVictims": {}}


def kube_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize(
    ("names", "message"),
    [
        pytest.param('"free"', "ExtenderArgs: NodeNames: Input should be a valid array", id="text"),
        pytest.param(
            '["free", 7]', "ExtenderArgs: NodeNames[1]: Input should be a valid string", id="num"
        ),
    ],
)
def test_malformed_names_get_400_naming_the_field_after_a_filter_answer(
    verb: str, names: str, message: str
) -> None:
    """The names are decoded by msgspec, or not at all when they are filter's last answer;
    a bad list still gets pydantic's specific message, never a stack trace."""
    client = cluster.extender_client(fresh_state())
    pod = kube.pod(gpus=2)
    assert client.post("/filter", json=args(pod)).status_code == 200
    bad = b'{"Pod":' + kube_json(pod) + b',"Nodes":null,"NodeNames":' + names.encode() + b"}"
    response = client.post(f"/{verb}", content=bad)
    assert response.status_code == 400
    assert response.text.strip() == message
