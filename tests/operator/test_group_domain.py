"""A pool that keeps each pod group within one multi-node NVLink domain (``groupDomain: Same``).

From the GPUPool object the operator reads to the pass's group fit: the field read by
``objects.gpu_pool``, the domains from the nodes' ``nvidia.com/gpu.clique`` labels, and the
group admitted whole within one domain or held with the fit's reason.

The cluster: DGX-1 nodes (8 GPUs each) of pool ``h100``; tenant ``team-a`` submits a group of
2 pods of 8 GPUs (one machine each).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.builders import groups as g
from tests.builders import kube

from gpufair.api import names
from gpufair.operator import objects, store
from gpufair.state import scheduling

NS = "team-a"


def view(group_domain: str | None, cliques: dict[str, str | None]) -> store.ClusterStore:
    cluster = store.ClusterStore()
    cluster.apply_pool(kube.pool("h100", group_domain=group_domain), deleted=False)
    for name, clique in cliques.items():
        extra = {names.NVLINK_DOMAIN_LABEL: clique} if clique is not None else {}
        cluster.apply_node(kube.node(name, kube.dgx1(), extra_labels=extra), deleted=False)
    cluster.apply_tenant(kube.quota(NS, pools={"h100": (0, None)}), deleted=False)
    cluster.apply_namespace({"metadata": {"name": NS, "labels": {}}}, deleted=False)
    for index in range(2):
        pod = g.gpufair_member(f"w-{index}", group="train", size=2)
        pod["spec"]["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
        pod["spec"]["schedulerName"] = names.SCHEDULER_NAME
        pod["metadata"]["uid"] = pod["metadata"]["name"]
        cluster.apply_pod(pod, deleted=False, now=1.0)
    cluster.mark_synced()
    return cluster


@dataclasses.dataclass(frozen=True)
class Case:
    group_domain: str | None
    cliques: dict[str, str | None]
    nodes: set[str] | None
    """The nodes the group is admitted on; ``None``: held."""
    reason: str = ""


CASES = [
    pytest.param(
        Case(None, {"n1": "gb-a", "n2": "gb-b"}, {"n1", "n2"}), id="any-by-default-spans-domains"
    ),
    pytest.param(Case("Any", {"n1": "gb-a", "n2": "gb-b"}, {"n1", "n2"}), id="any-spans-domains"),
    pytest.param(
        Case(
            "Same",
            {"n1": "gb-a", "n2": "gb-b"},
            None,
            "no NVLink domain can hold every pod at once (most free GPUs in one domain: 8)",
        ),
        id="same-held-when-no-domain-holds-it",
    ),
    pytest.param(
        Case("Same", {"n1": "gb-a", "n2": "gb-a"}, {"n1", "n2"}), id="same-one-domain-of-two-nodes"
    ),
    pytest.param(
        Case("Same", {"n1": "gb-a", "n2": "gb-b", "n3": "gb-b"}, {"n2", "n3"}),
        id="same-the-domain-that-holds-it",
    ),
    pytest.param(
        Case("Same", {"n1": None, "n2": None}, None, "no NVLink domain can hold every pod"),
        id="same-a-node-without-the-label-is-its-own-domain",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_a_pool_keeps_each_group_within_one_nvlink_domain_when_it_asks(case: Case) -> None:
    cluster = view(case.group_domain, case.cliques)

    decided = scheduling.schedule(cluster.take_snapshot(now=10.0), half_life=3600.0)

    placed = {admitted.node for admitted in decided.admissions}
    if case.nodes is None:
        assert decided.admissions == ()
        holds = [decided.holds.get(f"w-{index}", "") for index in range(2)]
        assert all(case.reason in hold for hold in holds), holds
    else:
        assert len(decided.admissions) == 2
        assert placed == case.nodes


@pytest.mark.parametrize(("field", "one_domain"), [(None, False), ("Any", False), ("Same", True)])
def test_the_operator_reads_the_pools_group_domain(field: str | None, one_domain: bool) -> None:
    body: dict[str, Any] = kube.pool("h100", group_domain=field)
    assert objects.gpu_pool(body).one_domain is one_domain
