"""Scenario: a 4-pod group is admitted whole or not at all under contention (issue 17).

One ``gpufair operator`` (with its webhook) and one ``gpufair extender`` serve this module; the
scheduler driver plays kube-scheduler. One DGX-1 node (8 GPUs) in the pool; tenant ``other``
runs 6 of them. Tenant ``team``'s training job is 4 pods of 2 GPUs carrying
``gpufair.dev/pod-group`` + ``gpufair.dev/group-size: 4``:

- while only 2 members exist, none is admitted (though 2 GPUs are free), and each says
  ``2 of 4 members created``;
- all 4 exist but only 2 GPUs are free: none is admitted, each says why, and a 1-GPU pod of
  ``other`` submitted meanwhile still runs (the group does not block smaller pods);
- ``other``'s pods finish: all 4 members are admitted in one pass (one ``admitted-at`` stamp)
  and bound.

A second scenario shows the extender placing members to the group's plan: two DGX-1 nodes, one
with 2 GPUs taken by ``other`` (the extender alone would fill its broken island first, spreading
the group over both machines); the pass plans all 4 members on the free node (fewest machines),
the operator writes it on each member (``gpufair.dev/group-plan``) as it lifts the gate, and every
member is bound to the node its plan names.

Two more scenarios show a group sized by its owner: an indexed Job (``parallelism: 4``), and a
JobSet (one replicated job of 4 pods), whose pods carry only their controller's labels (the
stand-in runs neither controller, so the test creates the owner and its pods); the operator
reads the owner through its watch and admits the 4 pods all or nothing. The JobSet API is a
CRD, so the operator watches it only because discovery lists it when the operator starts: this
module installs the CRDs of every optional owner kind (``gpufair.operator.owners.OPTIONAL``:
JobSet, the Kubeflow training jobs, and the upstream alpha PodGroup/Workload API, here as CRDs
standing in for the feature-gated built-ins) before its operator starts.

Throughout, the members' gates are polled: a pass never leaves the group partly admitted. Gates
come off pod by pod (Kubernetes has no multi-object write), so a poll that lands between the
writes of one pass may see some gates gone; it then must see all of them gone once that pass
has finished, with the same ``admitted-at`` stamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from e2e.harness import scenario
from gpufair.api import names
from gpufair.operator import owners
from gpufair.state import groups

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
MEMBERS = 4


def _owner_crd(kind: owners.OwnerKind) -> dict[str, Any]:
    """A CRD serving ``kind`` as its API does (group, version, names); the schema keeps every
    field. A group under ``k8s.io`` needs the API approval annotation on a real API server."""
    metadata: dict[str, Any] = {"name": kind.resource}
    if kind.group.endswith(".k8s.io"):
        metadata["annotations"] = {
            "api-approved.kubernetes.io": "unapproved, stands in for the feature-gated built-in"
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": kind.group,
            "scope": "Namespaced",
            "names": {
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module", autouse=True)
def owner_apis(k8s: Any) -> Iterator[None]:
    """The optional owner kinds served before the module's operator starts (autouse fixtures
    of a scope come first), removed after it stopped."""
    created = []
    for kind in owners.OPTIONAL:
        k8s.apiextensions.create_custom_resource_definition(_owner_crd(kind))
        created.append(kind.resource)
    yield
    for name in created:
        k8s.apiextensions.delete_custom_resource_definition(name)


def _submit_member(k8s: Any, namespace: str, name: str, *, group: str = "train") -> None:
    body = scenario.gpu_pod(name, 2, scheduler_name=None)
    body["metadata"]["annotations"] = {
        names.POD_GROUP_KEY: group,
        names.GROUP_SIZE_KEY: str(MEMBERS),
    }
    created = k8s.core.create_namespaced_pod(namespace, body)
    assert scenario.is_gated(k8s.api_client.sanitize_for_serialization(created))


def _waiting_message(k8s: Any, namespace: str, wanted: str, name: str) -> str:
    """The pod's ``Waiting`` message containing ``wanted`` ("" when none does). Any, not the
    last listed: a pass that saw only the first member told it ``1 of 4 members created``, and
    the events of one pod within a second are not listed in a reliable order."""
    messages = [
        str(e.get("message") or "")
        for e in scenario.events_of(k8s, namespace, name)
        if e.get("reason") == "Waiting"
    ]
    return next((message for message in messages if wanted in message), "")


def _extender_passes(stack: scenario.Stack, namespace: str, node: str) -> bool:
    """Whether the extender's filter would place a 1-GPU pod of ``namespace`` on ``node``."""
    probe = scenario.gpu_pod("probe", 1)
    probe["metadata"].update(namespace=namespace, uid="probe")
    answer = httpx.post(
        f"{stack.extender_url}/filter",
        json={"Pod": probe, "Nodes": None, "NodeNames": [node]},
        timeout=5.0,
    ).json()
    return bool(answer.get("NodeNames") == [node])


class GroupWatch:
    """Polls the group's members and fails on a pass that leaves only some of them admitted."""

    def __init__(self, stack: scenario.Stack, k8s: Any, namespace: str) -> None:
        self.stack, self.k8s, self.namespace = stack, k8s, namespace
        self.polls = 0

    def members(self) -> list[dict[str, Any]]:
        return [
            pod
            for pod in scenario.pods(self.k8s, self.namespace)
            if (pod["metadata"].get("annotations") or {}).get(names.POD_GROUP_KEY) == "train"
        ]

    def admitted(self) -> int:
        """Members without their gate (asserting the pass that lifted one lifted all)."""
        self.polls += 1
        pods = self.members()
        open_ = [pod for pod in pods if not scenario.is_gated(pod)]
        if open_ and len(open_) < len(pods):
            # Between the writes of one pass: once it has finished, all must be open.
            scenario.wait_passes(self.stack, 1)
            pods = self.members()
            open_ = [pod for pod in pods if not scenario.is_gated(pod)]
            assert len(open_) == len(pods), (
                f"partial admission: {len(open_)} of {len(pods)} members admitted after a pass"
            )
        stamps = {pod["metadata"]["annotations"].get(names.ADMITTED_AT_ANNOTATION) for pod in open_}
        assert len(stamps) <= 1, f"members admitted in different passes: {stamps}"
        return len(open_)


def _two_tenants(cleanup: scenario.Cleanup, k8s: Any, pool: str) -> tuple[str, str, dict[str, str]]:
    """GPUPool ``pool`` and two tenants of equal weight in it, each with a namespace of its own,
    known to the operator: (team, other, namespace by tenant)."""
    team, other = scenario.unique("team"), scenario.unique("other")
    spaces = {tenant: cleanup.namespace() for tenant in (team, other)}
    cleanup.apply(scenario.pool_manifest(pool))
    for tenant in (team, other):
        cleanup.apply(
            scenario.quota_manifest(tenant, namespaces=[spaces[tenant]], pools=[{"name": pool}])
        )
    scenario.wait_known(k8s, team, other)
    return team, other, spaces


def test_a_group_is_admitted_whole_or_not_at_all_under_contention(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool, node = scenario.unique("gang"), scenario.unique("n")
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    team, other, spaces = _two_tenants(cleanup, k8s, pool)
    watch = GroupWatch(stack, k8s, spaces[team])

    with stack.driver(spaces.values()) as driver:
        for i in range(3):
            scenario.submit(k8s, spaces[other], f"busy-{i}", 2)
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [spaces[other]])) == 3,
            timeout=60,
            what="the other tenant runs on 6 of the 8 GPUs",
            driver=driver,
        )

        # Half the group exists, and 2 GPUs are free: nothing of it is admitted.
        for i in range(2):
            _submit_member(k8s, spaces[team], f"w-{i}")
        scenario.settle(
            lambda: _waiting_message(k8s, spaces[team], "2 of 4 members created", "w-0"),
            timeout=30,
            what="the members wait for the rest of the group",
        )
        for _ in range(3):
            scenario.wait_passes(stack, 1)
            driver.schedule_pending()
            assert watch.admitted() == 0, "members admitted before the group was complete"

        # The whole group exists, 2 GPUs free: still nothing, with the reason.
        for i in range(2, MEMBERS):
            _submit_member(k8s, spaces[team], f"w-{i}")
        reason = scenario.settle(
            lambda: _waiting_message(k8s, spaces[team], "needs 8 GPUs at once", "w-3"),
            timeout=30,
            what="the complete group waits for room with a reason",
        )
        assert "the pool has 2 free" in reason
        # A small pod of the other tenant is not held back by the group.
        scenario.submit(k8s, spaces[other], "small", 1)
        scenario.settle(
            lambda: scenario.read_pod(k8s, spaces[other], "small")["spec"].get("nodeName"),
            timeout=30,
            what="a 1-GPU pod runs while the group waits",
            driver=driver,
        )
        for _ in range(3):
            scenario.wait_passes(stack, 1)
            driver.schedule_pending()
            assert watch.admitted() == 0, "part of the group admitted under contention"

        # The other tenant's pods finish: the whole group comes in, in one pass.
        for pod in scenario.pods(k8s, spaces[other]):
            k8s.core.delete_namespaced_pod(pod["metadata"]["name"], spaces[other])
        scenario.settle(
            lambda: watch.admitted() == MEMBERS,
            timeout=60,
            what="every member admitted once there is room",
        )
        scenario.settle(
            lambda: len(scenario.running_on_nodes(k8s, [spaces[team]])) == MEMBERS,
            timeout=60,
            what="every member bound",
            driver=driver,
        )
    assert watch.polls > 6
    assert scenario.shared_gpus(k8s, [node]) == {}


def test_the_members_of_an_admitted_group_are_bound_to_the_nodes_of_its_plan(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    pool = scenario.unique("plan")
    taken, empty = scenario.unique("taken"), scenario.unique("empty")
    make_gpu_node(taken, DGX1, labels={scenario.POOL_LABEL: pool})
    team, other, spaces = _two_tenants(cleanup, k8s, pool)

    with stack.driver(spaces.values()) as driver:
        # 2 of the first node's GPUs are taken before the second node exists.
        scenario.submit(k8s, spaces[other], "busy", 2)
        scenario.settle(
            lambda: (
                [p["spec"].get("nodeName") for p in scenario.running_on_nodes(k8s, [spaces[other]])]
                == [taken]
            ),
            timeout=60,
            what="the other tenant runs on the first node",
            driver=driver,
        )
        make_gpu_node(empty, DGX1, labels={scenario.POOL_LABEL: pool})
        scenario.settle(
            lambda: scenario.pool_status(k8s, pool).get("capacity") == 16,
            timeout=30,
            what="the operator counts both nodes in the pool",
        )
        scenario.settle(
            lambda: _extender_passes(stack, spaces[team], empty),
            timeout=30,
            what="the extender knows the new node",
        )

        for i in range(MEMBERS):
            _submit_member(k8s, spaces[team], f"p-{i}", group="planned")
        members = scenario.settle(
            lambda: (
                len(bound := scenario.running_on_nodes(k8s, [spaces[team]])) == MEMBERS and bound
            ),
            timeout=60,
            what="every member admitted and bound",
            driver=driver,
        )

    plans = {
        pod["metadata"]["name"]: (pod["metadata"].get("annotations") or {}).get(
            names.GROUP_PLAN_ANNOTATION
        )
        for pod in members
    }
    placed = {pod["metadata"]["name"]: pod["spec"]["nodeName"] for pod in members}
    # Fewest machines: the empty node holds all 4 (the other has 6 free GPUs, not 8).
    assert plans == dict.fromkeys(placed, empty), plans
    assert placed == plans, "members bound off their plan"
    stamps = {pod["metadata"]["annotations"][names.ADMITTED_AT_ANNOTATION] for pod in members}
    assert len(stamps) == 1, f"members admitted in different passes: {stamps}"
    assert scenario.shared_gpus(k8s, [taken, empty]) == {}


def _owned_group_is_admitted_whole(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
    *,
    create_owner: Callable[[str], Callable[[], object]],
    labels: Callable[[int], dict[str, str]],
) -> None:
    """4 pods of 2 GPUs carrying only ``labels(index)`` of the owner that ``create_owner(
    namespace)`` makes (it returns how to delete it): held as one group while 6 GPUs are free,
    all admitted in one pass once 8 are."""
    pool, node = scenario.unique("owned"), scenario.unique("n")
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    team, other, spaces = _two_tenants(cleanup, k8s, pool)
    delete_owner = create_owner(spaces[team])
    try:
        with stack.driver(spaces.values()) as driver:
            scenario.submit(k8s, spaces[other], "busy", 2)
            scenario.settle(
                lambda: len(scenario.running_on_nodes(k8s, [spaces[other]])) == 1,
                timeout=60,
                what="the other tenant runs on 2 of the 8 GPUs",
                driver=driver,
            )
            for index in range(MEMBERS):
                body = scenario.gpu_pod(f"sweep-{index}", 2, scheduler_name=None)
                body["metadata"]["labels"] = labels(index)
                k8s.core.create_namespaced_pod(spaces[team], body)
            reason = scenario.settle(
                lambda: _waiting_message(k8s, spaces[team], "needs 8 GPUs at once", "sweep-3"),
                timeout=30,
                what="the owner's pods wait as one group of 4",
            )
            assert "group sweep" in reason
            assert "the pool has 6 free" in reason
            assert all(scenario.is_gated(pod) for pod in scenario.pods(k8s, spaces[team]))

            k8s.core.delete_namespaced_pod("busy", spaces[other])
            running = scenario.settle(
                lambda: (
                    len(bound := scenario.running_on_nodes(k8s, [spaces[team]])) == MEMBERS
                    and bound
                ),
                timeout=60,
                what="every pod of the owner admitted and bound",
                driver=driver,
            )
    finally:
        delete_owner()
    stamps = {pod["metadata"]["annotations"][names.ADMITTED_AT_ANNOTATION] for pod in running}
    assert len(stamps) == 1, f"the owner's pods admitted in different passes: {stamps}"


def test_an_indexed_jobs_pods_are_admitted_whole_sized_by_the_job(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    batch = kubernetes.client.BatchV1Api(k8s.api_client)

    def create(namespace: str) -> Callable[[], object]:
        job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "sweep"},
            "spec": {
                "completionMode": "Indexed",
                "parallelism": MEMBERS,
                "completions": MEMBERS,
                "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
            },
        }
        batch.create_namespaced_job(namespace, job)
        return lambda: batch.delete_namespaced_job("sweep", namespace)

    _owned_group_is_admitted_whole(
        stack,
        k8s,
        cleanup,
        make_gpu_node,
        create_owner=create,
        labels=lambda index: {
            groups.JOB_NAME_LABEL: "sweep",
            groups.COMPLETION_INDEX_KEY: str(index),
        },
    )


def test_a_jobsets_pods_are_admitted_whole_sized_by_the_jobset(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
) -> None:
    """No gpufair annotation: the JobSet's spec (1 replicated job of 4 pods) sizes the group."""
    kind = owners.JOBSET

    def create(namespace: str) -> Callable[[], object]:
        jobset = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": "sweep"},
            "spec": {
                "replicatedJobs": [
                    {
                        "name": "workers",
                        "replicas": 1,
                        "template": {
                            "spec": {
                                "parallelism": MEMBERS,
                                "completions": MEMBERS,
                                "template": {"spec": {"containers": [{"name": "c"}]}},
                            }
                        },
                    }
                ]
            },
        }
        custom = k8s.custom
        custom.create_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, jobset
        )
        return lambda: custom.delete_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, "sweep"
        )

    _owned_group_is_admitted_whole(
        stack,
        k8s,
        cleanup,
        make_gpu_node,
        create_owner=create,
        labels=lambda index: {  # as the JobSet controller labels its child Job's pods
            groups.JOBSET_NAME_LABEL: "sweep",
            "jobset.sigs.k8s.io/replicatedjob-name": "workers",
            "jobset.sigs.k8s.io/job-index": "0",
            groups.JOB_NAME_LABEL: "sweep-workers-0",
            groups.COMPLETION_INDEX_KEY: str(index),
        },
    )
