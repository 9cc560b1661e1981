"""Loading documents as ``kubectl apply -f`` takes them: lists, foreign objects, replacements,
and errors that name the file, the object and the field."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml
from tests.builders.manifests import gpu_pool, pool_entry, tenant_quota

from gpufair.api import manifests


def docs(*bodies: Any, origin: str = "a.yaml") -> list[manifests.Document]:
    return [manifests.Document(origin, index, body) for index, body in enumerate(bodies, 1)]


def load_problems(documents: list[manifests.Document]) -> list[str]:
    with pytest.raises(manifests.InvalidManifestsError) as invalid:
        manifests.load(documents)
    return [str(problem) for problem in invalid.value.problems]


def test_objects_are_found_by_kind_and_name() -> None:
    loaded = manifests.load(docs(gpu_pool("h100"), tenant_quota("team-a"), None))
    assert list(loaded.pools) == ["h100"]
    assert list(loaded.quotas) == ["team-a"]
    assert loaded.origins[("GPUPool", "h100")] == "a.yaml"
    assert loaded.notes == ()


@pytest.mark.parametrize(
    "list_kind",
    [pytest.param("List", id="v1-List"), pytest.param("TenantQuotaList", id="typed-list")],
)
def test_lists_are_unpacked(list_kind: str) -> None:
    listing = {
        "apiVersion": "v1",
        "kind": list_kind,
        "items": [tenant_quota("team-a"), tenant_quota("team-b")],
    }
    loaded = manifests.load(docs(listing))
    assert list(loaded.quotas) == ["team-a", "team-b"]


def test_objects_of_other_groups_are_skipped_with_a_note() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    loaded = manifests.load(docs(namespace, gpu_pool("h100")))
    assert list(loaded.pools) == ["h100"]
    assert loaded.notes == ("skipped 1 object(s) that are not gpufair.dev objects",)


def test_a_later_object_replaces_an_earlier_one_like_kubectl_apply() -> None:
    first = docs(tenant_quota("team-a", weight=1), origin="base.yaml")
    second = docs(tenant_quota("team-a", weight=3), origin="override.yaml")
    loaded = manifests.load(first + second)
    assert loaded.quotas["team-a"].spec.weight == 3
    assert loaded.notes == ("override.yaml: TenantQuota team-a replaces the one in base.yaml",)


def test_every_problem_is_reported_with_file_object_and_field() -> None:
    bad_limit = tenant_quota("team-a", pools=[pool_entry("h100", guaranteed=40, limit=32)])
    bad_pool = gpu_pool("h100", placement={"mode": "Packed"})
    assert load_problems(docs(bad_limit) + docs(bad_pool, origin="pools.yaml")) == [
        "a.yaml: TenantQuota team-a: spec.pools[0].guaranteed: must be <= limit (32)",
        "pools.yaml: GPUPool h100: spec.placement.mode: must be 'Pack' or 'Spread' (got 'Packed')",
    ]


def test_objects_without_a_name_are_named_by_document() -> None:
    nameless = {**tenant_quota(), "metadata": {}}
    assert load_problems(docs(gpu_pool(), nameless)) == [
        "a.yaml: document 2: metadata.name: required"
    ]


def test_list_items_are_named_by_position() -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": [gpu_pool(), "oops"]}
    assert load_problems(docs(listing)) == ["a.yaml: document 1 items[1]: not a Kubernetes object"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(["a", "list"], "a.yaml: document 1: not a Kubernetes object", id="not-a-map"),
        pytest.param(
            {"metadata": {"name": "x"}},
            "a.yaml: document 1: apiVersion and kind are required",
            id="no-kind",
        ),
    ],
)
def test_documents_that_are_not_objects(body: Any, expected: str) -> None:
    assert load_problems(docs(body)) == [expected]


def test_a_namespace_belongs_to_one_tenant() -> None:
    a = tenant_quota("team-a", namespaces=["shared", "a"])
    b = tenant_quota("team-b", namespaces=["b", "shared"])
    assert load_problems(docs(a, b)) == [
        "a.yaml: TenantQuota team-b: spec.namespaces[1]: namespace shared already belongs to"
        " TenantQuota team-a"
    ]


def test_yaml_timestamps_are_read_as_times() -> None:
    text = """
apiVersion: gpufair.dev/v1alpha1
kind: GPUPool
metadata:
  name: h100
  creationTimestamp: 2026-11-26T12:00:00Z
spec:
  nodeSelector: {}
status:
  capacity: 64
  conditions:
    - type: Ready
      status: "True"
      reason: NodesFound
      lastTransitionTime: 2026-11-26T12:00:00Z
"""
    loaded = manifests.load(docs(yaml.safe_load(text)))
    status = loaded.pools["h100"].status
    assert status is not None
    assert status.conditions[0].last_transition_time == datetime.datetime(
        2026, 11, 26, 12, tzinfo=datetime.UTC
    )


def test_a_namespace_on_a_cluster_scoped_object_is_ignored() -> None:
    body = gpu_pool("h100")
    body["metadata"]["namespace"] = "default"
    assert list(manifests.load(docs(body)).pools) == ["h100"]
