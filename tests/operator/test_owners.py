"""Owner kinds: the sizes each owner object gives its pods' groups, and which kinds are watched.

Each kind is sized from an object shaped as its controller's API defines it (builders in
``tests/builders/groups.py``); discovery is asked once per group version, and a kind the API
server does not serve is logged once at info and left out.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from tests.builders import groups as g

from gpufair.operator import owners

NS = "team-a"


def placed(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["namespace"] = NS
    return body


@dataclasses.dataclass(frozen=True)
class Sized:
    kind: owners.OwnerKind
    body: dict[str, Any]
    entries: dict[Any, int]


def kubeflow(kind: str) -> owners.OwnerKind:
    return next(found for found in owners.KUBEFLOW if found.kind == kind)


SIZED = [
    pytest.param(Sized(owners.JOB, g.indexed_job("sweep", parallelism=4), {(NS, "sweep"): 4})),
    pytest.param(
        Sized(owners.JOB, g.indexed_job("sweep", parallelism=4, completions=2), {(NS, "sweep"): 2}),
        id="indexed-job-fewer-completions",
    ),
    pytest.param(
        Sized(owners.JOB, g.indexed_job("plain", parallelism=4, indexed=False), {}),
        id="non-indexed-job-no-group",
    ),
    pytest.param(
        Sized(
            owners.JOBSET,
            g.jobset("llm", replicated={"leader": (1, 1), "workers": (2, 4)}),
            {(NS, "llm"): 9},
        ),
        id="jobset-sums-replicated-jobs",
    ),
    pytest.param(
        Sized(
            kubeflow("PyTorchJob"),
            g.kubeflow_job("PyTorchJob", "bert", replicas={"Master": 1, "Worker": 3}),
            {(NS, "bert"): 4},
        ),
        id="pytorchjob",
    ),
    pytest.param(
        Sized(
            kubeflow("TFJob"),
            g.kubeflow_job("TFJob", "tf", replicas={"Chief": 1, "PS": 2, "Worker": 4}),
            {(NS, "tf"): 7},
        ),
        id="tfjob",
    ),
    pytest.param(
        Sized(
            kubeflow("MPIJob"),
            g.kubeflow_job("MPIJob", "mpi", replicas={"Launcher": None, "Worker": 4}),
            {(NS, "mpi"): 5},
        ),
        id="mpijob-launcher-defaults-to-one",
    ),
    pytest.param(
        Sized(
            kubeflow("XGBoostJob"),
            g.kubeflow_job("XGBoostJob", "xgb", replicas={"Master": 1, "Worker": 2}),
            {(NS, "xgb"): 3},
        ),
        id="xgboostjob",
    ),
    pytest.param(
        Sized(
            kubeflow("PaddleJob"),
            g.kubeflow_job("PaddleJob", "pd", replicas={"Worker": 2}),
            {(NS, "pd"): 2},
        ),
        id="paddlejob",
    ),
    pytest.param(
        Sized(
            kubeflow("JAXJob"),
            g.kubeflow_job("JAXJob", "jax", replicas={"Worker": 8}),
            {(NS, "jax"): 8},
        ),
        id="jaxjob",
    ),
    pytest.param(
        Sized(owners.POD_GROUP, g.pod_group("pg", min_count=4), {(NS, "pg"): 4}),
        id="podgroup-gang",
    ),
    pytest.param(
        Sized(owners.POD_GROUP, g.pod_group("pg", min_count=None), {}),
        id="podgroup-basic-no-group",
    ),
    pytest.param(
        Sized(
            owners.WORKLOAD,
            g.workload("wl", gangs={"workers": 4, "ps": None, "eval": 2}),
            {(NS, "wl", "workers"): 4, (NS, "wl", "eval"): 2},
        ),
        id="workload-gang-pod-groups-only",
    ),
]


@pytest.mark.parametrize("case", SIZED)
def test_each_owner_kind_sizes_its_pods_groups(case: Sized) -> None:
    assert case.kind.entries(placed(case.body)) == case.entries


def test_every_kubeflow_kind_has_its_replica_specs_builder() -> None:
    assert {kind.kind for kind in owners.KUBEFLOW} == set(g.KUBEFLOW_REPLICA_FIELDS)


def test_every_owner_kind_feeds_a_field_of_owner_sizes() -> None:
    assert {kind.field for kind in (owners.JOB, *owners.OPTIONAL)} == set(owners.FIELDS)


class Discovery:
    """A fake API server's discovery: the resources of each served group version."""

    def __init__(self, served: dict[tuple[str, str], set[str]]) -> None:
        self.served = served
        self.asked: list[tuple[str, str]] = []

    def __call__(self, group: str, version: str) -> frozenset[str] | None:
        self.asked.append((group, version))
        found = self.served.get((group, version))
        return None if found is None else frozenset(found)


@dataclasses.dataclass(frozen=True)
class Served:
    discovery: dict[tuple[str, str], set[str]]
    watched: set[str]


SERVED = [
    pytest.param(Served({}, set()), id="nothing-served"),
    pytest.param(
        Served({("jobset.x-k8s.io", "v1alpha2"): {"jobsets", "jobsets/status"}}, {"JobSet"}),
        id="jobset-only",
    ),
    pytest.param(
        Served({("jobset.x-k8s.io", "v1alpha1"): {"jobsets"}}, set()),
        id="another-version-is-not-read",
    ),
    pytest.param(
        Served({("kubeflow.org", "v1"): {"pytorchjobs", "tfjobs"}}, {"PyTorchJob", "TFJob"}),
        id="some-kubeflow-kinds",
    ),
    pytest.param(
        Served(
            {
                ("scheduling.k8s.io", "v1alpha2"): {"podgroups", "workloads"},
                ("scheduling.k8s.io", "v1"): {"priorityclasses"},
            },
            {"PodGroup"},
        ),
        id="kubernetes-1.36-workload-api",
    ),
    pytest.param(
        Served({("scheduling.k8s.io", "v1alpha1"): {"workloads"}}, {"Workload"}),
        id="kubernetes-1.35-workload-api",
    ),
]


@pytest.mark.parametrize("case", SERVED)
def test_only_served_owner_kinds_are_watched_each_missing_one_logged_once_at_info(
    case: Served, caplog: pytest.LogCaptureFixture
) -> None:
    discovery = Discovery(case.discovery)
    with caplog.at_level(logging.INFO, logger=owners.logger.name):
        watched = owners.served(discovery)

    assert {kind.kind for kind in watched} == case.watched
    assert len(discovery.asked) == len(set(discovery.asked)), "a group version asked twice"
    missing = [kind for kind in owners.OPTIONAL if kind.kind not in case.watched]
    told = [r for r in caplog.records if r.getMessage().startswith("not watching")]
    assert len(told) == (1 if missing else 0), caplog.text
    for kind in missing:
        assert f"{kind.kind} ({kind.api_version} {kind.plural})" in told[0].getMessage()
    for kind in watched:
        assert all(f"{kind.kind} (" not in record.getMessage() for record in told)
    assert all(record.levelno == logging.INFO for record in caplog.records)


class Answers:
    """``CustomObjectsApi`` whose discovery answers with ``answer`` (raised when an error)."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def __call__(self) -> Answers:
        return self

    def get_api_resources(self, group: str, version: str, **_: object) -> object:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@dataclasses.dataclass(frozen=True)
class Asked:
    answer: object
    found: frozenset[str] | None
    warned: str = ""


def _resources(*plurals: str) -> object:
    import kubernetes

    return kubernetes.client.V1APIResourceList(
        group_version="jobset.x-k8s.io/v1alpha2",
        resources=[
            kubernetes.client.V1APIResource(
                name=plural, kind="JobSet", namespaced=True, singular_name="", verbs=["list"]
            )
            for plural in plurals
        ],
    )


def _refused(status: int, reason: str) -> Exception:
    import kubernetes

    return kubernetes.client.ApiException(status=status, reason=reason)


ASKED = [
    pytest.param(
        Asked(_resources("jobsets", "jobsets/status"), frozenset({"jobsets", "jobsets/status"})),
        id="served",
    ),
    pytest.param(Asked(_refused(404, "Not Found"), None), id="not-served-quietly"),
    pytest.param(
        Asked(_refused(403, "Forbidden"), None, "discovery of jobset.x-k8s.io/v1alpha2 failed"),
        id="forbidden-warned-and-skipped",
    ),
    pytest.param(
        Asked(_refused(503, "Service Unavailable"), None, "(503 Service Unavailable)"),
        id="server-error-warned-and-skipped",
    ),
]


@pytest.mark.parametrize("case", ASKED)
def test_discovery_through_the_client_never_fails_the_operator(
    case: Asked, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import kubernetes

    monkeypatch.setattr(kubernetes.client, "CustomObjectsApi", Answers(case.answer))
    with caplog.at_level(logging.INFO, logger=owners.logger.name):
        found = owners.api_lookup("jobset.x-k8s.io", "v1alpha2")
    assert found == case.found
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if case.warned:
        assert len(warnings) == 1, warnings
        assert case.warned in warnings[0]
    else:
        assert warnings == []
