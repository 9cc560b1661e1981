"""Which pods form one job: pod groups, recognised from the pod and what owns it.

A distributed training job is several pods that are useless one without the others, so gpufair
admits a group all or nothing (issue 17, ``docs/pod-groups.md``). This module only *recognises*
groups; it is pure (plain dicts in, frozen values out) so the operator and the extender read a
pod's group the same way. Sources, the first that applies wins:

1. gpufair's own pair ``gpufair.dev/pod-group`` + ``gpufair.dev/group-size`` (annotations or
   labels), which also overrides the size any controller implies;
2. the upstream Workload API (alpha, ``GenericWorkload`` feature gate, off by default):
   ``spec.schedulingGroup.podGroupName`` naming a ``scheduling.k8s.io/v1alpha2`` PodGroup
   (Kubernetes 1.36), or ``spec.workloadRef`` naming a pod group of a ``v1alpha1`` Workload
   (1.35); the size is the gang policy's ``minCount``;
3. JobSet (``jobset.sigs.k8s.io/jobset-name``): one group per JobSet, of
   ``sum(replicas x min(parallelism, completions))`` over its replicated jobs;
4. Kubeflow training operator jobs (``training.kubeflow.org/job-name``): one group per job, of
   the sum of its replica specs' ``replicas``;
5. indexed Jobs (``batch.kubernetes.io/job-name`` with a completion index): one group per Job
   of ``min(parallelism, completions)`` pods, when that is more than one.

The size of a controller's group is on the owner object, not on the pod; the caller passes the
sizes it knows (:class:`OwnerSizes`, built with :func:`job_group_size` and friends from the
objects it watches: the operator's are in ``gpufair.operator.owners``). A group whose size is
unknown is still a group (``size=None``): the caller must not admit part of it.

When the operator admits a group it records where the pass planned each member
(``gpufair.dev/group-plan``, :func:`plan_annotations`), and the extender places the member
there while that node can take it (:func:`plan_step`): the one rule both sides follow.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from gpufair.api import names

JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
KUBEFLOW_JOB_NAME_LABEL = "training.kubeflow.org/job-name"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
"""Label (Kubernetes 1.28+) and annotation of an indexed Job's pods."""

ObjectDict = Mapping[str, Any]
NamespacedName = tuple[str, str]


class GroupError(ValueError):
    """A pod or owner object whose group facts cannot be read; the message says which field."""


class Source(enum.StrEnum):
    """Where a group was recognised from."""

    GPUFAIR = "gpufair"
    POD_GROUP = "PodGroup"
    WORKLOAD = "Workload"
    JOBSET = "JobSet"
    KUBEFLOW = "Kubeflow"
    INDEXED_JOB = "Job"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    """A group's identity: its source, namespace and name (groups never span namespaces)."""

    namespace: str
    source: Source
    name: str

    def __str__(self) -> str:
        return f"{self.source} {self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    """The group a pod belongs to and how many pods the group has (``None``: not known yet)."""

    key: GroupKey
    size: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerSizes:
    """Group sizes read from owner objects, by (namespace, name); what is not here is unknown."""

    jobs: Mapping[NamespacedName, int] = dataclasses.field(default_factory=dict)
    """Indexed Jobs: :func:`job_group_size`."""
    jobsets: Mapping[NamespacedName, int] = dataclasses.field(default_factory=dict)
    """JobSets: :func:`jobset_size`."""
    kubeflow: Mapping[NamespacedName, int] = dataclasses.field(default_factory=dict)
    """Kubeflow training jobs (PyTorchJob, TFJob, MPIJob, ...): :func:`kubeflow_size`."""
    pod_groups: Mapping[NamespacedName, int] = dataclasses.field(default_factory=dict)
    """Upstream ``scheduling.k8s.io/v1alpha2`` PodGroups: :func:`pod_group_min_count`."""
    workloads: Mapping[tuple[str, str, str], int] = dataclasses.field(default_factory=dict)
    """Upstream ``v1alpha1`` Workloads, by (namespace, workload, pod group):
    :func:`workload_min_counts`."""


def group_of(pod: ObjectDict, sizes: OwnerSizes | None = None) -> Membership | None:
    """The group ``pod`` belongs to, or ``None`` for a pod that runs alone.

    ``GroupError`` for a malformed gpufair annotation (a size that is not a positive integer, a
    size without a group, a label and an annotation that disagree).
    """
    sizes = sizes or OwnerSizes()
    metadata = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    facts = _Pod(
        namespace=str(metadata.get("namespace") or "default"),
        labels=_strings(metadata.get("labels")),
        annotations=_strings(metadata.get("annotations")),
        spec=spec,
    )
    override = _gpufair_size(facts.labels, facts.annotations)
    for recognise in (_gpufair, _upstream, _jobset, _kubeflow, _indexed_job):
        found = recognise(facts, sizes)
        if found is not None:
            key, size = found
            return Membership(key=key, size=override if override is not None else size)
    if override is not None:
        raise GroupError(f"{names.GROUP_SIZE_KEY} is set but {names.POD_GROUP_KEY} is not")
    return None


def owner_size(key: GroupKey, sizes: OwnerSizes) -> int | None:
    """The size owner objects give ``key``'s group (``None``: not known), for a caller that
    learns them after it read the pod (the operator sizes a Job's group at each pass). As in
    :func:`group_of`, an indexed Job of one pod is no group: 1 is returned and the caller lets
    the pod run alone."""
    where = (key.namespace, key.name)
    match key.source:
        case Source.INDEXED_JOB:
            return sizes.jobs.get(where)
        case Source.JOBSET:
            return sizes.jobsets.get(where)
        case Source.KUBEFLOW:
            return sizes.kubeflow.get(where)
        case Source.POD_GROUP:
            return sizes.pod_groups.get(where)
        case Source.WORKLOAD:
            workload, _, rest = key.name.partition("/")
            return sizes.workloads.get((key.namespace, workload, rest.partition("/")[0]))
        case Source.GPUFAIR:
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """A group's pods seen so far, against its size."""

    key: GroupKey
    size: int | None
    members: tuple[str, ...]
    """Names of the member pods seen, sorted."""

    @property
    def complete(self) -> bool:
        """Every pod of the group exists: only then can it be admitted whole."""
        return self.size is not None and len(self.members) >= self.size

    @property
    def waiting_for(self) -> str | None:
        """Why the group cannot be considered yet, readable; ``None`` when complete."""
        if self.size is None:
            return f"{self.key}: group size not known yet ({len(self.members)} pods seen)"
        if len(self.members) < self.size:
            return f"{self.key}: {len(self.members)} of {self.size} pods created"
        return None


def assemble(memberships: Iterable[tuple[str, Membership]]) -> list[Group]:
    """Groups from ``(pod name, membership)`` pairs, by key. Members that disagree on the size
    give the group the largest size they state (never admit fewer pods than one asks for)."""
    members: dict[GroupKey, list[str]] = {}
    size: dict[GroupKey, int | None] = {}
    for pod_name, membership in memberships:
        members.setdefault(membership.key, []).append(pod_name)
        known = size.get(membership.key)
        if membership.size is not None and (known is None or membership.size > known):
            size[membership.key] = membership.size
        else:
            size.setdefault(membership.key, known)
    return [
        Group(key=key, size=size[key], members=tuple(sorted(members[key])))
        for key in sorted(members)
    ]


# -- a member's planned node ---------------------------------------------------------------


class PlanStep(enum.StrEnum):
    """What placement does with a group member's plan (:func:`plan_step`)."""

    NONE = "none"
    """The pod carries no plan: it is placed like any pod."""
    FOLLOW = "follow"
    """The planned node can take it: only that node."""
    WAIT = "wait"
    """The planned node will take it shortly (a bind there is not confirmed yet): no node now."""
    FALL_BACK = "fall-back"
    """The plan cannot be followed (node gone, not offered, or without room): placed like any
    pod, and said so, rather than waiting for a node that may never have room."""


def plan_annotations(node: str) -> dict[str, str]:
    """What the operator writes on a member it admits with the group's plan."""
    return {names.GROUP_PLAN_ANNOTATION: node}


def planned_node(annotations: object) -> str | None:
    """The node the member's plan names (``None``: no plan, or annotations that are not a
    mapping). Only gpufair writes it: the webhook refuses anyone else who sets or changes it
    (``names.GPUFAIR_ONLY_ANNOTATIONS``)."""
    value = _mapping(annotations).get(names.GROUP_PLAN_ANNOTATION)
    return value.strip() or None if isinstance(value, str) else None


def plan_step(planned: str | None, *, offered: bool, fits: bool, soon: bool = False) -> PlanStep:
    """Where a member goes: ``offered`` says the planned node is among the nodes the scheduler
    asks about, ``fits`` that it can take the member now, ``soon`` that it cannot only for a
    short-lived reason (an unconfirmed bind of the same size on the node)."""
    if planned is None:
        return PlanStep.NONE
    if offered and fits:
        return PlanStep.FOLLOW
    if offered and soon:
        return PlanStep.WAIT
    return PlanStep.FALL_BACK


def off_plan(planned: str) -> str:
    """Why another node is refused to a member that follows its plan."""
    return f"pod group plan places this member on node {planned}"


def plan_dropped(planned: str, *, offered: bool, why: str = "") -> str:
    """Why a member is placed off its plan (for the log)."""
    if not offered:
        return (
            f"planned node {planned} is not offered (gone, cordoned, or refused by"
            " kube-scheduler's own filters): placed like any pod"
        )
    return f"planned node {planned} cannot take it ({why}): placed like any pod"


# -- sizes from owner objects --------------------------------------------------------------


def job_group_size(job: ObjectDict) -> int | None:
    """An indexed Job's group: ``min(parallelism, completions)`` pods run at once; ``None`` for a
    non-indexed Job (its pods are interchangeable workers, not one gang)."""
    spec = _mapping(job.get("spec"))
    if spec.get("completionMode") != "Indexed":
        return None
    parallelism = _count(spec.get("parallelism", 1), "Job spec.parallelism")
    completions = _count(spec.get("completions", parallelism), "Job spec.completions")
    return min(parallelism, completions)


def jobset_size(jobset: ObjectDict) -> int:
    """Pods a JobSet runs at once: ``replicas x min(parallelism, completions)`` summed over its
    ``spec.replicatedJobs``."""
    total = 0
    for number, replicated in enumerate(_list(_mapping(jobset.get("spec")).get("replicatedJobs"))):
        where = f"JobSet spec.replicatedJobs[{number}]"
        entry = _mapping(replicated)
        replicas = _count(entry.get("replicas", 1), f"{where}.replicas")
        job_spec = _mapping(_mapping(entry.get("template")).get("spec"))
        parallelism = _count(job_spec.get("parallelism", 1), f"{where} parallelism")
        completions = _count(job_spec.get("completions", parallelism), f"{where} completions")
        total += replicas * min(parallelism, completions)
    return total


def kubeflow_size(job: ObjectDict) -> int:
    """Pods of a Kubeflow training job: the ``replicas`` of every ``*ReplicaSpecs`` entry
    (``pytorchReplicaSpecs``, ``tfReplicaSpecs``, ``mpiReplicaSpecs``, ...), default 1 each."""
    total = 0
    for field, specs in _mapping(job.get("spec")).items():
        if not field.endswith("ReplicaSpecs"):
            continue
        for role, replica in _mapping(specs).items():
            total += _count(_mapping(replica).get("replicas", 1), f"{field}.{role}.replicas")
    return total


def pod_group_min_count(pod_group: ObjectDict) -> int | None:
    """A ``scheduling.k8s.io/v1alpha2`` PodGroup's gang size (``spec.schedulingPolicy.gang.
    minCount``); ``None`` under the ``basic`` policy (pods scheduled one by one)."""
    policy = _mapping(_mapping(pod_group.get("spec")).get("schedulingPolicy"))
    gang = policy.get("gang")
    if gang is None:
        return None
    return _count(_mapping(gang).get("minCount"), "PodGroup spec.schedulingPolicy.gang.minCount")


def workload_min_counts(workload: ObjectDict) -> dict[str, int]:
    """A ``scheduling.k8s.io/v1alpha1`` Workload's gang sizes by pod group name
    (``spec.podGroups[].policy.gang.minCount``); ``basic`` groups are left out."""
    out: dict[str, int] = {}
    for number, entry in enumerate(_list(_mapping(workload.get("spec")).get("podGroups"))):
        group = _mapping(entry)
        gang = _mapping(group.get("policy")).get("gang")
        if gang is not None:
            where = f"Workload spec.podGroups[{number}].policy.gang.minCount"
            out[str(group.get("name"))] = _count(_mapping(gang).get("minCount"), where)
    return out


# -- recognisers ---------------------------------------------------------------------------

_Found = tuple[GroupKey, int | None] | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Pod:
    """What recognisers read of a pod."""

    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]


def _gpufair(pod: _Pod, sizes: OwnerSizes) -> _Found:  # noqa: ARG001 - one signature for all
    name = _one_value(names.POD_GROUP_KEY, pod.labels, pod.annotations)
    if name is None:
        return None
    if not name.strip():
        raise GroupError(f"{names.POD_GROUP_KEY} is empty")
    size = _gpufair_size(pod.labels, pod.annotations)
    if size is None:
        raise GroupError(f"{names.POD_GROUP_KEY} {name!r} needs {names.GROUP_SIZE_KEY} as well")
    return GroupKey(pod.namespace, Source.GPUFAIR, name), size


def _upstream(pod: _Pod, sizes: OwnerSizes) -> _Found:
    scheduling_group = _mapping(pod.spec.get("schedulingGroup"))
    pod_group = scheduling_group.get("podGroupName")
    if isinstance(pod_group, str) and pod_group:
        key = GroupKey(pod.namespace, Source.POD_GROUP, pod_group)
        return key, sizes.pod_groups.get((pod.namespace, pod_group))
    ref = _mapping(pod.spec.get("workloadRef"))
    workload, group = ref.get("name"), ref.get("podGroup")
    if isinstance(workload, str) and isinstance(group, str) and workload and group:
        replica = ref.get("podGroupReplicaKey")
        name = f"{workload}/{group}" + (f"/{replica}" if replica else "")
        key = GroupKey(pod.namespace, Source.WORKLOAD, name)
        return key, sizes.workloads.get((pod.namespace, workload, group))
    return None


def _jobset(pod: _Pod, sizes: OwnerSizes) -> _Found:
    name = pod.labels.get(JOBSET_NAME_LABEL)
    if not name:
        return None
    return GroupKey(pod.namespace, Source.JOBSET, name), sizes.jobsets.get((pod.namespace, name))


def _kubeflow(pod: _Pod, sizes: OwnerSizes) -> _Found:
    name = pod.labels.get(KUBEFLOW_JOB_NAME_LABEL)
    if not name:
        return None
    return GroupKey(pod.namespace, Source.KUBEFLOW, name), sizes.kubeflow.get((pod.namespace, name))


def _indexed_job(pod: _Pod, sizes: OwnerSizes) -> _Found:
    name = pod.labels.get(JOB_NAME_LABEL)
    indexed = COMPLETION_INDEX_KEY in pod.labels or COMPLETION_INDEX_KEY in pod.annotations
    if not name or not indexed:
        return None
    size = sizes.jobs.get((pod.namespace, name))
    if size is not None and size <= 1:
        return None
    return GroupKey(pod.namespace, Source.INDEXED_JOB, name), size


# -- reading helpers -----------------------------------------------------------------------


def _gpufair_size(labels: Mapping[str, str], annotations: Mapping[str, str]) -> int | None:
    raw = _one_value(names.GROUP_SIZE_KEY, labels, annotations)
    if raw is None:
        return None
    try:
        size = int(raw.strip())
    except ValueError:
        raise GroupError(f"{names.GROUP_SIZE_KEY} {raw!r} is not a whole number") from None
    if size < 1:
        raise GroupError(f"{names.GROUP_SIZE_KEY} {raw!r} must be at least 1")
    return size


def _one_value(key: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    label, annotation = labels.get(key), annotations.get(key)
    if label is not None and annotation is not None and label != annotation:
        raise GroupError(f"{key}: label {label!r} and annotation {annotation!r} disagree")
    return annotation if annotation is not None else label


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GroupError(f"{where} is {value!r}, not a whole number >= 0")
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}
