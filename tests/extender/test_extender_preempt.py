"""Preempt narrows kube-scheduler's victims to what the fair-share policy allows.

One DGX-1 (8 GPUs) in pool h100, all taken by team-b, which borrows: it has no guarantee.
team-a (guarantee 2) wants 4 GPUs: its fair share (2 guaranteed + half of the other 6, capped at
its demand) is 4, so it may reclaim 4 from team-b; team-b's pods are protected for their first
10 minutes.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.extender import app as extender_app
from gpufair.extender import settings


def ago(seconds: int) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def client(*, young_age: int = 60, guaranteed: int = 2) -> testclient.TestClient:
    state = cluster.cluster(
        quotas=[
            kube.quota("team-a", pools={"h100": (guaranteed, 16)}),
            kube.quota("team-b", pools={"h100": (0, None)}, min_runtime_seconds=600),
        ],
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[
            kube.pod(
                "old",
                namespace="team-b",
                gpus=4,
                node="n1",
                bound=[0, 1, 2, 3],
                pod_uid="old",
                started=ago(7200),
            ),
            kube.pod(
                "young",
                namespace="team-b",
                gpus=4,
                node="n1",
                bound=[4, 5, 6, 7],
                pod_uid="young",
                started=ago(young_age),
            ),
        ],
    )
    app = extender_app.create_app(settings.ExtenderSettings(watch=False), state=state)
    return testclient.TestClient(app)


def preempt(uids: list[str], *, gpus: int = 4, **setup: int) -> dict[str, Any]:
    response = client(**setup).post(
        "/preempt",
        json={
            "Pod": kube.pod("urgent", gpus=gpus),
            "NodeNameToVictims": None,
            "NodeNameToMetaVictims": {
                "n1": {"Pods": [{"UID": uid} for uid in uids], "NumPDBViolations": 0}
            },
        },
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_a_borrower_past_its_minimum_runtime_may_be_reclaimed() -> None:
    assert preempt(["old", "young"]) == {
        "NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": "old"}], "NumPDBViolations": 0}}
    }


def test_a_young_pod_is_protected_and_the_node_dropped() -> None:
    assert preempt(["young"]) == {"NodeNameToMetaVictims": {}}


@pytest.mark.parametrize(
    ("guaranteed", "kept"),
    [
        pytest.param(2, {}, id="8-gpus-would-exceed-a-share-of-5"),
        pytest.param(
            8,
            {"n1": {"Pods": [{"UID": "old"}, {"UID": "young"}], "NumPDBViolations": 0}},
            id="a-guarantee-of-8-makes-the-share-8",
        ),
    ],
)
def test_reclaim_stops_at_the_preemptors_fair_share(guaranteed: int, kept: dict[str, Any]) -> None:
    result = preempt(["old", "young"], gpus=8, young_age=3600, guaranteed=guaranteed)
    assert result == {"NodeNameToMetaVictims": kept}
