"""The owner objects whose size groups their pods, and which of them the API server serves.

A JobSet's, a Kubeflow training job's or an upstream PodGroup's pods say which object they
belong to, not how many pods it runs; the operator watches those objects and sizes the groups
from them (``gpufair.state.groups.OwnerSizes``), so such a job is admitted all or nothing with
no gpufair annotation (docs/pod-groups.md). Jobs (``batch/v1``) are served by every cluster;
the others only where their controller's CRDs are installed or, for the upstream Workload API,
its alpha feature gate is on. :func:`served` asks discovery once, at startup, and keeps the
kinds that are served: a kind that is not is logged once at info and not watched (its pods
stay admitted one by one, each told so), rather than left to a watch that fails again and
again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gpufair.state import groups

logger = logging.getLogger(__name__)

Body = Mapping[str, Any]
OwnerEntries = dict[Any, int]
"""Group sizes one owner object gives, keyed as its :class:`groups.OwnerSizes` field is."""


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerKind:
    """One watched owner resource and how its objects size their pods' groups."""

    kind: str
    group: str
    version: str
    plural: str
    field: str
    """The :class:`groups.OwnerSizes` field its sizes go to."""
    read: Callable[[Body], OwnerEntries]
    """The sizes one object gives (``GroupError`` for a field that cannot be read)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group``, as RBAC and CRDs name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def entries(self, body: Body) -> OwnerEntries:
        return self.read(body)


def _where(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _job(body: Body) -> OwnerEntries:
    size = groups.job_group_size(body)
    return {} if size is None else {_where(body): size}


def _jobset(body: Body) -> OwnerEntries:
    return {_where(body): groups.jobset_size(body)}


def _kubeflow(body: Body) -> OwnerEntries:
    return {_where(body): groups.kubeflow_size(body)}


def _pod_group(body: Body) -> OwnerEntries:
    size = groups.pod_group_min_count(body)
    return {} if size is None else {_where(body): size}


def _workload(body: Body) -> OwnerEntries:
    namespace, name = _where(body)
    return {
        (namespace, name, pod_group): size
        for pod_group, size in groups.workload_min_counts(body).items()
    }


JOB = OwnerKind("Job", "batch", "v1", "jobs", "jobs", _job)
JOBSET = OwnerKind("JobSet", "jobset.x-k8s.io", "v1alpha2", "jobsets", "jobsets", _jobset)
KUBEFLOW = tuple(
    OwnerKind(kind, "kubeflow.org", "v1", plural, "kubeflow", _kubeflow)
    for kind, plural in (
        ("PyTorchJob", "pytorchjobs"),
        ("TFJob", "tfjobs"),
        ("MPIJob", "mpijobs"),
        ("XGBoostJob", "xgboostjobs"),
        ("PaddleJob", "paddlejobs"),
        ("JAXJob", "jaxjobs"),
    )
)
"""The Kubeflow training operator's (v1.9) jobs; their pods carry ``training.kubeflow.org/
job-name`` and the job's ``*ReplicaSpecs`` give the pod count."""
POD_GROUP = OwnerKind(
    "PodGroup", "scheduling.k8s.io", "v1alpha2", "podgroups", "pod_groups", _pod_group
)
"""Kubernetes 1.36 (alpha, ``GenericWorkload`` feature gate)."""
WORKLOAD = OwnerKind(
    "Workload", "scheduling.k8s.io", "v1alpha1", "workloads", "workloads", _workload
)
"""Kubernetes 1.35 (alpha, ``GenericWorkload``); 1.36 serves ``v1alpha2`` Workloads, whose
pod groups are PodGroup objects (read through :data:`POD_GROUP`)."""

OPTIONAL: tuple[OwnerKind, ...] = (JOBSET, *KUBEFLOW, POD_GROUP, WORKLOAD)
"""Owner kinds watched only where the API server serves them (Jobs always are)."""
FIELDS = tuple(field.name for field in dataclasses.fields(groups.OwnerSizes))

Lookup = Callable[[str, str], frozenset[str] | None]
"""``lookup(group, version)``: the resources discovery lists in that group version, or
``None`` when the API server does not serve it."""


def served(lookup: Lookup, kinds: Iterable[OwnerKind] = OPTIONAL) -> tuple[OwnerKind, ...]:
    """The ``kinds`` the API server serves, asking discovery once per group version. One info
    line names the kinds watched, one those that are not (each once, with its API)."""
    listed: dict[tuple[str, str], frozenset[str] | None] = {}
    found: list[OwnerKind] = []
    missing: list[OwnerKind] = []
    for kind in kinds:
        where = (kind.group, kind.version)
        if where not in listed:
            listed[where] = lookup(*where)
        (found if kind.plural in (listed[where] or ()) else missing).append(kind)
    if found:
        logger.info("watching to size their pods' groups: %s", _named(found))
    if missing:
        logger.info(
            "not watching (the API server does not serve them): %s; their pods are admitted one"
            " by one unless they carry gpufair.dev/group-size (an API installed later is"
            " watched after the operator restarts)",
            _named(missing),
        )
    return tuple(found)


def _named(kinds: Iterable[OwnerKind]) -> str:
    return ", ".join(f"{kind.kind} ({kind.api_version} {kind.plural})" for kind in kinds)


def api_lookup(group: str, version: str) -> frozenset[str] | None:
    """Discovery through the default Kubernetes client: the resources of ``group/version``,
    ``None`` when it is not served. An API server that answers otherwise (forbidden, an
    error) is logged as a warning and the group version treated as not served: the operator
    runs without that owner kind rather than not at all."""
    import kubernetes
    import urllib3

    try:
        answer = kubernetes.client.CustomObjectsApi().get_api_resources(
            group, version, _request_timeout=(5, 15)
        )
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            logger.warning(
                "discovery of %s/%s failed (%s %s): its owner kinds are not watched",
                group,
                version,
                error.status,
                error.reason,
            )
        return None
    except urllib3.exceptions.HTTPError as error:
        logger.warning(
            "discovery of %s/%s failed (%s): its owner kinds are not watched", group, version, error
        )
        return None
    return frozenset(str(resource.name) for resource in (getattr(answer, "resources", None) or ()))
