"""Controllers' groups whose size is on the owner: an indexed Job's, a JobSet's, a Kubeflow
job's, an upstream PodGroup's or Workload's pods are admitted whole.

The pods of such a job say which object they belong to, not how many pods it runs; the
operator watches the owner kinds the API server serves (:mod:`gpufair.operator.owners`) and
sizes their groups at each pass (``ClusterStore.take_snapshot``), in whichever order the owner
and its pods arrive. A group whose owner gpufair has not seen is admitted pod by pod, and each
pod's ``Admitted`` event says why and how to get all-or-nothing admission.

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
from gpufair.operator import owners, statuses, store
from gpufair.state import scheduling

NS = "team-a"


def gated(pod: dict[str, Any], gpus: int = 2) -> dict[str, Any]:
    pod["spec"]["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
    pod["spec"]["schedulerName"] = names.SCHEDULER_NAME
    pod["spec"]["containers"][0]["resources"] = {"limits": {names.DEFAULT_GPU_RESOURCE: gpus}}
    pod["metadata"]["uid"] = pod["metadata"]["name"]
    return pod


def placed(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["namespace"] = NS
    return body


def job(name: str, *, parallelism: int, indexed: bool = True) -> dict[str, Any]:
    return placed(g.indexed_job(name, parallelism=parallelism, indexed=indexed))


Owner = tuple[owners.OwnerKind, dict[str, Any]]
PYTORCH = next(kind for kind in owners.KUBEFLOW if kind.kind == "PyTorchJob")


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
    owner: dict[str, Any] | Owner | None
    """An indexed Job, or another owner kind with its object."""
    held: int = 0
    owner_first: bool = True
    admitted: int = 0
    alone_note: bool = False
    """Each admitted pod's event says it was admitted on its own (size unknown)."""


def sweep(count: int = 4) -> list[dict[str, Any]]:
    return [gated(g.indexed_job_member(f"s-{i}", job="sweep", index=i)) for i in range(count)]


def llm(count: int = 4) -> list[dict[str, Any]]:
    return [gated(g.jobset_member(f"j-{i}", jobset="sweep")) for i in range(count)]


def bert() -> list[dict[str, Any]]:
    return [gated(g.kubeflow_member(f"b-{i}", job="sweep")) for i in range(4)]


def podgroup() -> list[dict[str, Any]]:
    return [gated(g.pod_group_member(f"p-{i}", pod_group="sweep")) for i in range(4)]


def workload() -> list[dict[str, Any]]:
    return [
        gated(g.workload_member(f"w-{i}", workload="sweep", pod_group="workers")) for i in range(4)
    ]


JOBSET_OWNER = (owners.JOBSET, placed(g.jobset("sweep", replicated={"workers": (2, 2)})))
PYTORCH_OWNER = (PYTORCH, placed(g.pytorchjob("sweep", master=1, workers=3)))
PODGROUP_OWNER = (owners.POD_GROUP, placed(g.pod_group("sweep", min_count=4)))
WORKLOAD_OWNER = (owners.WORKLOAD, placed(g.workload("sweep", gangs={"workers": 4})))


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
        Case(llm(), None, held=2, admitted=3, alone_note=True),
        id="jobset-not-seen-pod-by-pod-and-said-so",
    ),
    pytest.param(Case(llm(), JOBSET_OWNER, admitted=4), id="jobset-with-room"),
    pytest.param(
        Case(llm(), JOBSET_OWNER, held=2, admitted=0), id="jobset-room-for-3-of-4-admits-none"
    ),
    pytest.param(
        Case(llm(), JOBSET_OWNER, held=2, owner_first=False, admitted=0),
        id="the-jobset-seen-after-its-pods",
    ),
    pytest.param(Case(llm(3), JOBSET_OWNER, admitted=0), id="jobset-waits-for-every-pod"),
    pytest.param(Case(bert(), PYTORCH_OWNER, admitted=4), id="pytorchjob-with-room"),
    pytest.param(Case(bert(), PYTORCH_OWNER, held=2, admitted=0), id="pytorchjob-room-for-3-of-4"),
    pytest.param(
        Case(bert(), None, held=2, admitted=3, alone_note=True),
        id="pytorchjob-not-seen-pod-by-pod",
    ),
    pytest.param(
        Case(podgroup(), PODGROUP_OWNER, held=2, admitted=0), id="podgroup-room-for-3-of-4"
    ),
    pytest.param(Case(podgroup(), PODGROUP_OWNER, admitted=4), id="podgroup-with-room"),
    pytest.param(
        Case(workload(), WORKLOAD_OWNER, held=2, admitted=0), id="workload-room-for-3-of-4"
    ),
    pytest.param(Case(workload(), WORKLOAD_OWNER, admitted=4), id="workload-with-room"),
]


def apply_owner(view: store.ClusterStore, owner: dict[str, Any] | Owner) -> None:
    if isinstance(owner, tuple):
        view.apply_owner(*owner, deleted=False)
    else:
        view.apply_job(owner, deleted=False)


@pytest.mark.parametrize("case", CASES)
def test_a_controllers_group_is_sized_from_its_owner(case: Case) -> None:
    view = cluster(case.held)
    if case.owner is not None and case.owner_first:
        apply_owner(view, case.owner)
    for pod in case.members:
        view.apply_pod(pod, deleted=False, now=1.0)
    if case.owner is not None and not case.owner_first:
        apply_owner(view, case.owner)

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


@pytest.mark.parametrize(
    ("members", "owner"),
    [(llm, JOBSET_OWNER), (bert, PYTORCH_OWNER), (podgroup, PODGROUP_OWNER)],
    ids=["jobset", "pytorchjob", "podgroup"],
)
def test_a_deleted_owner_leaves_its_pods_unsized_again(members: Any, owner: Owner) -> None:
    view = cluster(held=2)
    view.apply_owner(*owner, deleted=False)
    for pod in members():
        view.apply_pod(pod, deleted=False, now=1.0)
    assert scheduling.schedule(view.take_snapshot(now=10.0), half_life=3600.0).admissions == ()
    view.changed.clear()
    view.apply_owner(*owner, deleted=True)
    assert view.changed.is_set()
    assert len(scheduling.schedule(view.take_snapshot(now=11.0), half_life=3600.0).admissions) == 3


def test_a_workload_whose_gang_shrinks_drops_the_old_size() -> None:
    view = cluster(held=0)
    view.apply_owner(
        owners.WORKLOAD, placed(g.workload("wl", gangs={"a": 4, "b": 2})), deleted=False
    )
    view.apply_owner(owners.WORKLOAD, placed(g.workload("wl", gangs={"a": 3})), deleted=False)
    assert view.owner_sizes["workloads"] == {(NS, "wl", "a"): 3}


def test_an_owner_whose_size_cannot_be_read_gives_none_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = cluster(held=2)
    broken = placed(g.jobset("sweep", replicated={"workers": (2, 2)}))
    broken["spec"]["replicatedJobs"][0]["replicas"] = "two"
    view.apply_owner(owners.JOBSET, broken, deleted=False)
    for pod in llm():
        view.apply_pod(pod, deleted=False, now=1.0)
    decided = scheduling.schedule(view.take_snapshot(now=10.0), half_life=3600.0)
    assert len(decided.admissions) == 3
    assert "JobSet team-a/sweep: JobSet spec.replicatedJobs[0].replicas is 'two'" in caplog.text
