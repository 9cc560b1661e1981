"""A pod group member goes to the node of its group's plan (``gpufair.dev/group-plan``).

The operator admits a group whole and writes each member's node in the plan; the extender keeps
only that node while it can take the member (prioritize scores it highest), waits while a bind
of the member's size there awaits confirmation, and falls back to every node that fits when the
planned node is gone, not offered or full, saying so in its log and metrics rather than leaving
the member unplaceable (``gpufair.state.groups.plan_step``).

The cluster: ``free`` (DGX-1, all free), ``broken`` (DGX-1, GPUs 0,1 and 4,5 taken), ``pcie``
(no NVLink, all free), ``proxy`` (DGX-1 whose agent runs the device-plugin proxy, a 2-GPU pod
bound there unconfirmed, so no other 2-GPU pod fits it until then). A 2-GPU pod without a plan
scores ``broken`` highest.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.core import labels
from gpufair.state import cache, groups

NODES = ["free", "broken", "pcie", "proxy"]
OFF_PLAN = "pod group plan places this member on node {}"


@pytest.fixture
def state() -> cache.ClusterCache:
    return cluster.cluster(
        pools=[kube.pool("h100")],
        quotas=[kube.quota("team-a", pools={"h100": (8, 32)})],
        nodes=[
            kube.node("free", kube.dgx1()),
            kube.node("broken", kube.dgx1()),
            kube.node("pcie", kube.pcie_only()),
            kube.node("proxy", kube.dgx1(), extra_labels={labels.PROXY_LABEL: "true"}),
        ],
        pods=[
            kube.pod("x0", gpus=2, node="broken", bound=[0, 1], pod_uid="x0"),
            kube.pod("x1", gpus=2, node="broken", bound=[4, 5], pod_uid="x1"),
            kube.pod("x2", gpus=2, node="proxy", bound=[0, 1], pod_uid="x2"),
        ],
    )


def member(planned: str | None, *, gpus: int = 2) -> dict[str, Any]:
    notes = {names.POD_GROUP_KEY: "train", names.GROUP_SIZE_KEY: "4"}
    if planned is not None:
        notes.update(groups.plan_annotations(planned))
    return kube.pod("w-0", gpus=gpus, annotations=notes, pod_uid="w-0")


def filter_names(
    client: testclient.TestClient, pod: dict[str, Any], nodes: list[str] = NODES
) -> dict[str, Any]:
    response = client.post("/filter", json={"Pod": pod, "Nodes": None, "NodeNames": nodes})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def scores(client: testclient.TestClient, pod: dict[str, Any], nodes: list[str]) -> dict[str, int]:
    response = client.post("/prioritize", json={"Pod": pod, "Nodes": None, "NodeNames": nodes})
    return {entry["Host"]: entry["Score"] for entry in response.json()}


def metric(client: testclient.TestClient, outcome: str) -> float:
    wanted = f'gpufair_extender_group_plan_total{{outcome="{outcome}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return 0.0


@dataclasses.dataclass(frozen=True)
class Case:
    planned: str | None
    passed: list[str]
    offered: list[str] = dataclasses.field(default_factory=lambda: list(NODES))
    gpus: int = 2
    off_plan: list[str] = dataclasses.field(default_factory=list)
    """Nodes refused (unresolvable) because the plan names another."""
    fell_back: bool = False


CASES = [
    pytest.param(Case(None, ["free", "broken", "pcie"]), id="no-plan-every-node-that-fits"),
    pytest.param(
        Case("pcie", ["pcie"], off_plan=["free", "broken"]),
        id="planned-node-fits-only-it",
    ),
    pytest.param(
        Case("proxy", [], gpus=2, off_plan=["free", "broken", "pcie"]),
        id="a-bind-of-its-size-unconfirmed-there-waits-for-it",
    ),
    pytest.param(
        Case("broken", ["free", "pcie", "proxy"], gpus=6, fell_back=True),
        id="planned-node-full-falls-back",
    ),
    pytest.param(
        Case("gone", ["free", "broken", "pcie"], fell_back=True),
        id="planned-node-gone-falls-back",
    ),
    pytest.param(
        Case("pcie", ["free", "broken"], offered=["free", "broken"], fell_back=True),
        id="planned-node-not-offered-falls-back",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_filter_keeps_a_member_to_its_plan_while_the_planned_node_can_take_it(
    state: cache.ClusterCache, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    client = cluster.extender_client(state)
    with caplog.at_level(logging.WARNING, logger="gpufair.extender.handlers"):
        result = filter_names(client, member(case.planned, gpus=case.gpus), case.offered)
    assert result["Error"] == ""
    assert result["NodeNames"] == case.passed
    refused = {
        node: reason
        for node, reason in result["FailedAndUnresolvableNodes"].items()
        if reason.startswith("pod group plan")
    }
    assert refused == dict.fromkeys(case.off_plan, OFF_PLAN.format(case.planned))
    assert metric(client, "fell_back") == (1.0 if case.fell_back else 0.0)
    dropped = [r.getMessage() for r in caplog.records if "off its plan" in r.getMessage()]
    if case.fell_back:
        assert dropped
        assert f"planned node {case.planned}" in dropped[0]
    else:
        assert dropped == []


def test_the_waiting_member_keeps_the_planned_nodes_own_reason(state: cache.ClusterCache) -> None:
    result = filter_names(cluster.extender_client(state), member("proxy"))
    assert "not yet confirmed by the node agent" in result["FailedNodes"]["proxy"]


def test_prioritize_scores_the_planned_node_highest(state: cache.ClusterCache) -> None:
    client = cluster.extender_client(state)
    offered = ["free", "broken", "pcie"]
    assert scores(client, member("pcie"), offered) == {"pcie": 10, "free": 0, "broken": 0}
    unplanned = scores(client, member(None), offered)
    assert unplanned["broken"] > unplanned["pcie"]  # without the plan pcie would not win
    full = scores(client, member("broken", gpus=6), offered)
    assert full == scores(client, member(None, gpus=6), offered)  # a plan that cannot be kept


def test_bind_counts_members_bound_on_and_off_their_plan(state: cache.ClusterCache) -> None:
    on_plan, off_plan = member("pcie"), kube.pod("w-1", gpus=2, pod_uid="w-1")
    off_plan["metadata"]["annotations"] = dict(groups.plan_annotations("pcie"))
    writer = cluster.FakeWriter(state, [on_plan, off_plan])
    client = cluster.extender_client(state, writer)
    for pod, node in ((on_plan, "pcie"), (off_plan, "free")):
        meta = pod["metadata"]
        args = {
            "PodName": meta["name"],
            "PodNamespace": meta["namespace"],
            "PodUID": meta["uid"],
            "Node": node,
        }
        assert client.post("/bind", json=args).json() == {"Error": ""}
    assert metric(client, "bound_on_plan") == 1.0
    assert metric(client, "bound_off_plan") == 1.0
