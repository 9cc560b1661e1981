"""Controllers' groups whose size is on the owner: an indexed Job's pods are admitted whole.

The pods of an indexed Job say which Job they belong to, not how many pods it runs; the
operator watches Jobs and sizes their groups at each pass (``ClusterStore.take_snapshot``), in
whichever order the Job and its pods arrive. A group whose owner gpufair does not read (a
JobSet, a Kubeflow job, an upstream PodGroup) is admitted pod by pod, and each pod's
``Admitted`` event says why and how to get all-or-nothing admission.

The cluster: one DGX-1 node (8 GPUs) of pool ``h100``, tenant ``team-a`` owning namespace
``team-a``; ``held`` GPUs are taken by a bound pod of tenant ``other``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.builders import groups as g
from tests.builders import kube

from gpufair.api import names
from gpufair.operator import statuses, store
from gpufair.state import scheduling

NS = "team-a"


def gated(pod: dict[str, Any], gpus: int = 2) -> dict[str, Any]:
    pod["spec"]["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
    pod["spec"]["schedulerName"] = names.SCHEDULER_NAME
    pod["spec"]["containers"][0]["resources"] = {"limits": {names.DEFAULT_GPU_RESOURCE: gpus}}
    pod["metadata"]["uid"] = pod["metadata"]["name"]
    return pod


def job(name: str, *, parallelism: int, indexed: bool = True) -> dict[str, Any]:
    body = g.indexed_job(name, parallelism=parallelism, indexed=indexed)
    body["metadata"]["namespace"] = NS
    return body


def cluster(held: int) -> store.ClusterStore:
    view = store.ClusterStore()
    view.apply_pool(kube.pool("h100"), deleted=False)
    view.apply_node(kube.node("n1", kube.dgx1()), deleted=False)
    for tenant in (NS, "other"):
        view.apply_tenant(kube.quota(tenant, pools={"h100": (0, None)}), deleted=False)
        view.apply_namespace({"metadata": {"name": tenant, "labels": {}}}, deleted=False)
    if held:
        busy = kube.pod("busy", namespace="other", gpus=held, node="n1", bound=range(held))
        view.apply_pod(busy, deleted=False, now=0.0)
    view.mark_synced()
    return view


@dataclasses.dataclass(frozen=True)
class Case:
    members: list[dict[str, Any]]
    owner: dict[str, Any] | None
    held: int = 0
    owner_first: bool = True
    admitted: int = 0
    alone_note: bool = False
    """Each admitted pod's event says it was admitted on its own (size unknown)."""


def sweep(count: int = 4) -> list[dict[str, Any]]:
    return [gated(g.indexed_job_member(f"s-{i}", job="sweep", index=i)) for i in range(count)]


CASES = [
    pytest.param(
        Case(sweep(), job("sweep", parallelism=4), admitted=4), id="indexed-job-with-room"
    ),
    pytest.param(
        Case(sweep(), job("sweep", parallelism=4), held=2, admitted=0),
        id="indexed-job-room-for-3-of-4-admits-none",
    ),
    pytest.param(
        Case(sweep(), job("sweep", parallelism=4), held=2, owner_first=False, admitted=0),
        id="the-job-seen-after-its-pods",
    ),
    pytest.param(
        Case(sweep(3), job("sweep", parallelism=4), admitted=0),
        id="indexed-job-waits-for-every-pod",
    ),
    pytest.param(
        Case(sweep(1), job("sweep", parallelism=1), admitted=1),
        id="an-indexed-job-of-one-pod-is-no-group",
    ),
    pytest.param(
        Case(sweep(), None, held=2, admitted=3, alone_note=True),
        id="job-not-seen-pod-by-pod-and-said-so",
    ),
    pytest.param(
        Case(
            [gated(g.jobset_member(f"j-{i}", jobset="llm")) for i in range(4)],
            None,
            held=2,
            admitted=3,
            alone_note=True,
        ),
        id="jobset-pod-by-pod-and-said-so",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_a_controllers_group_is_sized_from_its_owner(case: Case) -> None:
    view = cluster(case.held)
    if case.owner is not None and case.owner_first:
        view.apply_job(case.owner, deleted=False)
    for pod in case.members:
        view.apply_pod(pod, deleted=False, now=1.0)
    if case.owner is not None and not case.owner_first:
        view.apply_job(case.owner, deleted=False)

    decided = scheduling.schedule(view.take_snapshot(now=10.0), half_life=3600.0)

    assert len(decided.admissions) == case.admitted
    told = [event.message for event in statuses.admission_events(decided.admissions)]
    alone = [message for message in told if "admitted on its own" in message]
    assert len(alone) == (case.admitted if case.alone_note else 0)
    for message in alone:
        assert "whose size gpufair does not know" in message
        assert names.GROUP_SIZE_KEY in message
    if case.admitted == 0:
        holds = [decided.holds.get(pod["metadata"]["uid"]) for pod in case.members]
        assert all(hold and "group sweep" in hold for hold in holds), holds


def test_a_deleted_job_leaves_its_pods_unsized_again() -> None:
    view = cluster(held=2)
    view.apply_job(job("sweep", parallelism=4), deleted=False)
    for pod in sweep():
        view.apply_pod(pod, deleted=False, now=1.0)
    assert scheduling.schedule(view.take_snapshot(now=10.0), half_life=3600.0).admissions == ()
    view.apply_job(job("sweep", parallelism=4), deleted=True)
    assert view.changed.is_set()
    decided = scheduling.schedule(view.take_snapshot(now=11.0), half_life=3600.0)
    assert len(decided.admissions) == 3


def test_a_job_event_that_changes_no_size_does_not_wake_the_loop() -> None:
    view = cluster(held=0)
    view.apply_job(job("sweep", parallelism=4), deleted=False)
    view.changed.clear()
    view.apply_job(job("sweep", parallelism=4), deleted=False)
    view.apply_job(job("plain", parallelism=4, indexed=False), deleted=False)
    assert not view.changed.is_set()
