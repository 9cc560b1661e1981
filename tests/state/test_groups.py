"""Pod groups: which pods form one job, from gpufair's pair, the Workload API and controllers."""

from __future__ import annotations

from typing import Any

import pytest
from tests.builders import groups as b

from gpufair.api import names
from gpufair.state import groups
from gpufair.state.groups import GroupKey, Membership, Source

NS = "team-a"

SIZES = groups.OwnerSizes(
    jobs={(NS, "sweep"): groups.job_group_size(b.indexed_job("sweep", parallelism=4)) or 0},
    jobsets={(NS, "llm"): groups.jobset_size(b.jobset("llm", replicated={"w": (2, 4)}))},
    kubeflow={(NS, "bert"): groups.kubeflow_size(b.pytorchjob("bert", master=1, workers=3))},
    pod_groups={(NS, "pg"): groups.pod_group_min_count(b.pod_group("pg", min_count=4)) or 0},
    workloads={
        (NS, "wl", group): n
        for group, n in groups.workload_min_counts(b.workload("wl", gangs={"w": 2})).items()
    },
)


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(
            b.gpufair_member("w-0", group="train", size=4),
            Membership(GroupKey(NS, Source.GPUFAIR, "train"), 4),
            id="gpufair-annotations",
        ),
        pytest.param(
            b.gpufair_member("w-0", group="train", size=" 2", as_labels=True),
            Membership(GroupKey(NS, Source.GPUFAIR, "train"), 2),
            id="gpufair-labels",
        ),
        pytest.param(
            b.pod_group_member("w-0", pod_group="pg"),
            Membership(GroupKey(NS, Source.POD_GROUP, "pg"), 4),
            id="podgroup-v1alpha2-schedulingGroup",
        ),
        pytest.param(
            b.pod_group_member("w-0", pod_group="unseen"),
            Membership(GroupKey(NS, Source.POD_GROUP, "unseen"), None),
            id="podgroup-not-seen-size-unknown",
        ),
        pytest.param(
            b.workload_member("w-0", workload="wl", pod_group="w"),
            Membership(GroupKey(NS, Source.WORKLOAD, "wl/w"), 2),
            id="workload-v1alpha1-workloadRef",
        ),
        pytest.param(
            b.workload_member("w-0", workload="wl", pod_group="w", replica="1"),
            Membership(GroupKey(NS, Source.WORKLOAD, "wl/w/1"), 2),
            id="workload-replica-key-is-its-own-group",
        ),
        pytest.param(
            b.jobset_member("w-0", jobset="llm"),
            Membership(GroupKey(NS, Source.JOBSET, "llm"), 8),
            id="jobset-beats-its-indexed-job",
        ),
        pytest.param(
            b.kubeflow_member("w-0", job="bert"),
            Membership(GroupKey(NS, Source.KUBEFLOW, "bert"), 4),
            id="kubeflow-master-plus-workers",
        ),
        pytest.param(
            b.indexed_job_member("w-0", job="sweep"),
            Membership(GroupKey(NS, Source.INDEXED_JOB, "sweep"), 4),
            id="indexed-job-parallelism",
        ),
        pytest.param(
            b.indexed_job_member("w-0", job="other"),
            Membership(GroupKey(NS, Source.INDEXED_JOB, "other"), None),
            id="indexed-job-owner-unknown",
        ),
        pytest.param(b.job_member("w-0", job="sweep"), None, id="non-indexed-job-pod-alone"),
        pytest.param(b.member("solo"), None, id="plain-pod-alone"),
        pytest.param(
            b.member(
                "w-0",
                labels={groups.JOBSET_NAME_LABEL: "llm"},
                annotations={names.POD_GROUP_KEY: "mine", names.GROUP_SIZE_KEY: "2"},
            ),
            Membership(GroupKey(NS, Source.GPUFAIR, "mine"), 2),
            id="gpufair-pair-beats-controller",
        ),
        pytest.param(
            b.member(
                "w-0",
                labels={groups.JOBSET_NAME_LABEL: "llm"},
                annotations={names.GROUP_SIZE_KEY: "16"},
            ),
            Membership(GroupKey(NS, Source.JOBSET, "llm"), 16),
            id="group-size-overrides-controller-size",
        ),
    ],
)
def test_group_of(pod: dict[str, Any], expected: Membership | None) -> None:
    assert groups.group_of(pod, SIZES) == expected


def test_indexed_job_of_one_pod_is_no_group() -> None:
    sizes = groups.OwnerSizes(jobs={(NS, "one"): 1})
    assert groups.group_of(b.indexed_job_member("w-0", job="one"), sizes) is None


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        pytest.param(
            b.member("w", annotations={names.POD_GROUP_KEY: "train"}),
            "gpufair.dev/pod-group 'train' needs gpufair.dev/group-size as well",
            id="group-without-size",
        ),
        pytest.param(
            b.member("w", annotations={names.GROUP_SIZE_KEY: "4"}),
            "gpufair.dev/group-size is set but gpufair.dev/pod-group is not",
            id="size-without-group",
        ),
        pytest.param(
            b.gpufair_member("w", group="train", size="four"),
            "gpufair.dev/group-size 'four' is not a whole number",
            id="size-not-a-number",
        ),
        pytest.param(
            b.gpufair_member("w", group="train", size=0),
            "gpufair.dev/group-size '0' must be at least 1",
            id="size-zero",
        ),
        pytest.param(
            b.member(
                "w",
                labels={names.POD_GROUP_KEY: "a"},
                annotations={names.POD_GROUP_KEY: "b", names.GROUP_SIZE_KEY: "2"},
            ),
            "gpufair.dev/pod-group: label 'a' and annotation 'b' disagree",
            id="label-and-annotation-disagree",
        ),
        pytest.param(
            b.gpufair_member("w", group=" ", size=2),
            "gpufair.dev/pod-group is empty",
            id="empty-group-name",
        ),
    ],
)
def test_group_errors_say_which_field(pod: dict[str, Any], message: str) -> None:
    with pytest.raises(groups.GroupError) as caught:
        groups.group_of(pod)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("owner", "size"),
    [
        pytest.param(b.indexed_job("j", parallelism=4, completions=2), 2, id="job-few-completions"),
        pytest.param(b.indexed_job("j", parallelism=4, indexed=False), None, id="job-not-indexed"),
        pytest.param(b.pod_group("p", min_count=None), None, id="podgroup-basic-policy"),
    ],
)
def test_owner_sizes(owner: dict[str, Any], size: int | None) -> None:
    if owner["kind"] == "Job":
        assert groups.job_group_size(owner) == size
    else:
        assert groups.pod_group_min_count(owner) == size


def test_jobset_size_sums_replicated_jobs() -> None:
    owner = b.jobset("llm", replicated={"leader": (1, 1), "workers": (2, 4)})
    assert groups.jobset_size(owner) == 9


def test_owner_with_bad_count_names_the_field() -> None:
    owner = b.pytorchjob("bert")
    owner["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "3"
    with pytest.raises(groups.GroupError, match=r"pytorchReplicaSpecs\.Worker\.replicas is '3'"):
        groups.kubeflow_size(owner)


def test_assemble_waits_for_every_member_and_the_size() -> None:
    train = GroupKey(NS, Source.GPUFAIR, "train")
    pg = GroupKey(NS, Source.POD_GROUP, "pg")
    assembled = groups.assemble(
        [
            ("w-1", Membership(train, 3)),
            ("w-0", Membership(train, 3)),
            ("p-0", Membership(pg, None)),
        ]
    )
    by_key = {group.key: group for group in assembled}
    assert by_key[train].members == ("w-0", "w-1")
    assert not by_key[train].complete
    assert by_key[train].waiting_for == "gpufair team-a/train: 2 of 3 pods created"
    assert by_key[pg].waiting_for == "PodGroup team-a/pg: group size not known yet (1 pods seen)"


def test_assemble_takes_the_largest_stated_size() -> None:
    key = GroupKey(NS, Source.GPUFAIR, "train")
    (group,) = groups.assemble([("a", Membership(key, 2)), ("b", Membership(key, 3))])
    assert group.size == 3
    assert not group.complete


# -- a member's planned node: the rule the operator writes and the extender follows -------------


@pytest.mark.parametrize(
    ("planned", "offered", "fits", "soon", "step"),
    [
        pytest.param(None, True, True, False, groups.PlanStep.NONE, id="no-plan"),
        pytest.param("n1", True, True, False, groups.PlanStep.FOLLOW, id="planned-node-fits"),
        pytest.param("n1", True, False, True, groups.PlanStep.WAIT, id="unconfirmed-bind-there"),
        pytest.param("n1", True, False, False, groups.PlanStep.FALL_BACK, id="planned-node-full"),
        pytest.param("n1", False, False, False, groups.PlanStep.FALL_BACK, id="node-not-offered"),
        pytest.param("n1", False, False, True, groups.PlanStep.FALL_BACK, id="gone-never-waits"),
    ],
)
def test_plan_step(
    planned: str | None, offered: bool, fits: bool, soon: bool, step: groups.PlanStep
) -> None:
    assert groups.plan_step(planned, offered=offered, fits=fits, soon=soon) is step


@pytest.mark.parametrize(
    ("annotations", "node"),
    [
        pytest.param(groups.plan_annotations("dgx-3"), "dgx-3", id="written-by-the-operator"),
        pytest.param({}, None, id="no-plan"),
        pytest.param({names.GROUP_PLAN_ANNOTATION: "  "}, None, id="blank-is-no-plan"),
        pytest.param({names.GROUP_PLAN_ANNOTATION: " n1 "}, "n1", id="spaces-trimmed"),
    ],
)
def test_planned_node_reads_what_the_operator_writes(
    annotations: dict[str, str], node: str | None
) -> None:
    assert groups.planned_node(annotations) == node


def test_the_plan_annotation_is_gpufairs_only() -> None:
    """Forging it would steer a member; the webhook refuses it like ``gpufair.dev/gpus``."""
    assert names.GROUP_PLAN_ANNOTATION in names.GPUFAIR_ONLY_ANNOTATIONS


@pytest.mark.parametrize(
    ("pod", "size"),
    [
        pytest.param(b.indexed_job_member("w-0", job="sweep"), 4, id="indexed-job"),
        pytest.param(b.jobset_member("w-0", jobset="llm"), 8, id="jobset"),
        pytest.param(b.kubeflow_member("w-0", job="bert"), 4, id="kubeflow"),
        pytest.param(b.pod_group_member("w-0", pod_group="pg"), 4, id="pod-group"),
        pytest.param(b.workload_member("w-0", workload="wl", pod_group="w", replica="r1"), 2,
                     id="workload-replica"),
        pytest.param(b.indexed_job_member("w-0", job="other"), None, id="owner-not-known"),
    ],
)  # fmt: skip
def test_owner_size_of_a_group_read_without_sizes(pod: dict[str, Any], size: int | None) -> None:
    """A caller that reads owners after their pods sizes the group as group_of would have."""
    unsized = groups.group_of(pod)
    assert unsized is not None
    assert unsized.size is None
    assert groups.owner_size(unsized.key, SIZES) == size
    sized = groups.group_of(pod, SIZES)
    assert sized is not None
    assert sized.size == size
