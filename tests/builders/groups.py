"""Builders for pod groups: member pods as job controllers label them, and their owner objects.

gpufair_member("w-0", group="train", size=4)
jobset_member("w-0", jobset="llm"), jobset("llm", workers=(2, 4))
indexed_job_member("w-0", job="sweep"), indexed_job("sweep", parallelism=4)
pytorchjob("bert", master=1, workers=3), pod_group("pg", min_count=4)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.builders import kube

from gpufair.api import names
from gpufair.state import groups


def member(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
    namespace: str = "team-a",
    gpus: int = 8,
) -> dict[str, Any]:
    """A pending GPU pod with extra labels, annotations and spec fields."""
    out = kube.pod(name, namespace=namespace, gpus=gpus, annotations=annotations)
    out["metadata"]["labels"].update(labels or {})
    out["spec"].update(spec or {})
    return out


def gpufair_member(
    name: str, *, group: str, size: int | str, as_labels: bool = False
) -> dict[str, Any]:
    notes = {names.POD_GROUP_KEY: group, names.GROUP_SIZE_KEY: str(size)}
    if as_labels:
        return member(name, labels=notes)
    return member(name, annotations=notes)


def jobset_member(name: str, *, jobset: str, replicated_job: str = "workers") -> dict[str, Any]:
    job = f"{jobset}-{replicated_job}-0"
    return member(
        name,
        labels={
            groups.JOBSET_NAME_LABEL: jobset,
            "jobset.sigs.k8s.io/replicatedjob-name": replicated_job,
            "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
            "jobset.sigs.k8s.io/job-index": "0",
            groups.JOB_NAME_LABEL: job,
            groups.COMPLETION_INDEX_KEY: "0",
        },
        annotations={groups.COMPLETION_INDEX_KEY: "0"},
    )


def kubeflow_member(name: str, *, job: str, role: str = "worker") -> dict[str, Any]:
    return member(
        name,
        labels={
            groups.KUBEFLOW_JOB_NAME_LABEL: job,
            "training.kubeflow.org/replica-type": role,
            "training.kubeflow.org/replica-index": "0",
            "training.kubeflow.org/operator-name": "pytorchjob-controller",
        },
    )


def indexed_job_member(name: str, *, job: str, index: int = 0) -> dict[str, Any]:
    return member(
        name,
        labels={groups.JOB_NAME_LABEL: job, groups.COMPLETION_INDEX_KEY: str(index)},
        annotations={groups.COMPLETION_INDEX_KEY: str(index)},
    )


def job_member(name: str, *, job: str) -> dict[str, Any]:
    """A pod of a non-indexed Job (no completion index)."""
    return member(name, labels={groups.JOB_NAME_LABEL: job})


def pod_group_member(name: str, *, pod_group: str) -> dict[str, Any]:
    return member(name, spec={"schedulingGroup": {"podGroupName": pod_group}})


def workload_member(
    name: str, *, workload: str, pod_group: str, replica: str | None = None
) -> dict[str, Any]:
    ref: dict[str, str] = {"name": workload, "podGroup": pod_group}
    if replica is not None:
        ref["podGroupReplicaKey"] = replica
    return member(name, spec={"workloadRef": ref})


def indexed_job(
    name: str, *, parallelism: int = 4, completions: int | None = None, indexed: bool = True
) -> dict[str, Any]:
    spec: dict[str, Any] = {"parallelism": parallelism, "completions": completions or parallelism}
    if indexed:
        spec["completionMode"] = "Indexed"
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def jobset(name: str, *, replicated: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """``replicated``: replicated job name -> (replicas, parallelism)."""
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "replicatedJobs": [
                {
                    "name": job,
                    "replicas": replicas,
                    "template": {"spec": {"parallelism": parallelism, "completions": parallelism}},
                }
                for job, (replicas, parallelism) in replicated.items()
            ]
        },
    }


def pytorchjob(name: str, *, master: int = 1, workers: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": master, "template": {}},
                "Worker": {"replicas": workers, "template": {}},
            },
        },
    }


KUBEFLOW_REPLICA_FIELDS = {
    "PyTorchJob": "pytorchReplicaSpecs",
    "TFJob": "tfReplicaSpecs",
    "MPIJob": "mpiReplicaSpecs",
    "XGBoostJob": "xgbReplicaSpecs",
    "PaddleJob": "paddleReplicaSpecs",
    "JAXJob": "jaxReplicaSpecs",
}
"""The replica specs field of each Kubeflow training operator (v1) kind."""


def kubeflow_job(kind: str, name: str, *, replicas: Mapping[str, int | None]) -> dict[str, Any]:
    """A ``kubeflow.org/v1`` job of ``kind``; ``replicas``: role -> replicas (``None``: the
    field left out, which the training operator defaults to 1)."""
    specs: dict[str, Any] = {}
    for role, count in replicas.items():
        spec: dict[str, Any] = {"restartPolicy": "OnFailure", "template": {"spec": {}}}
        if count is not None:
            spec["replicas"] = count
        specs[role] = spec
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"runPolicy": {"cleanPodPolicy": "None"}, KUBEFLOW_REPLICA_FIELDS[kind]: specs},
    }


def pod_group(name: str, *, min_count: int | None) -> dict[str, Any]:
    policy: dict[str, Any] = (
        {"basic": {}} if min_count is None else {"gang": {"minCount": min_count}}
    )
    return {
        "apiVersion": "scheduling.k8s.io/v1alpha2",
        "kind": "PodGroup",
        "metadata": {"name": name},
        "spec": {"schedulingPolicy": policy},
    }


def workload(name: str, *, gangs: Mapping[str, int | None]) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "podGroups": [
                {"name": group, "policy": {"basic": {}} if n is None else {"gang": {"minCount": n}}}
                for group, n in gangs.items()
            ]
        },
    }
