"""Every object the chart renders, sent to the stand-in API server with ``kubectl apply
--dry-run=server``, for each value set of ``tests/helm/test_render.py``.

As ``helm install`` does, the chart's ``crds/`` are applied first (for real). The chart also
renders kinds of cert-manager and prometheus-operator, whose CRDs a real cluster gets from those
projects; here :func:`third_party_crds` serves each such kind with a CRD that preserves its
spec (the spec's fields are checked offline in ``tests/helm/validation.py``). The release
namespace (and the dashboards' namespace) exists, as ``helm install --create-namespace``
leaves it. A server-side dry run must change nothing: the test checks none of the objects
exists afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from tests.helm import render, validation
from tests.helm.test_render import VALUE_SETS

from e2e.harness import kubectl as kubectl_mod


def third_party_crds() -> list[dict[str, Any]]:
    """A CRD per third-party kind the chart renders, with an open spec."""
    crds = []
    for api_version, kind in sorted(validation.THIRD_PARTY):
        group, version = api_version.split("/")
        plural = kind.lower() + "s"
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": version,
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {
                                        "spec": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        }
                                    },
                                }
                            },
                        }
                    ],
                },
            }
        )
    return crds


def as_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def namespaces_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {obj["metadata"]["namespace"] for obj in objects if "namespace" in obj["metadata"]}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        for name in sorted(names)
    ]


def existing(kubectl: kubectl_mod.Kubectl, objects: list[dict[str, Any]]) -> set[str]:
    """Which of ``objects`` the stand-in holds, as ``kind/name`` of kubectl's ``-o name``."""
    result = kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", input=as_yaml(objects))
    return set(result.stdout.split())


@pytest.fixture(scope="module")
def chart_crds_applied(
    apply_crds: Callable[..., list[str]], kubectl: kubectl_mod.Kubectl
) -> list[str]:
    applied = apply_crds(render.CHART / "crds")
    kubectl.apply(as_yaml(third_party_crds()))
    for crd in third_party_crds():
        kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}")
    return applied


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_server_dry_run_accepts_every_rendered_object(
    value_set: str, chart_crds_applied: list[str], kubectl: kubectl_mod.Kubectl
) -> None:
    objects = render.render_chart(VALUE_SETS[value_set])
    kubectl.apply(as_yaml(namespaces_of(objects)))
    before = existing(kubectl, objects)

    output = kubectl.apply(as_yaml(objects), "--dry-run=server", "-o", "json")

    answered = json.loads(output)
    items = answered["items"] if answered.get("kind") == "List" else [answered]
    sent = sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects)
    assert sorted((item["kind"], item["metadata"]["name"]) for item in items) == sent
    assert existing(kubectl, objects) == before, "a server-side dry run persisted objects"


def test_server_dry_run_is_decided_by_the_server(
    chart_crds_applied: list[str], kubectl: kubectl_mod.Kubectl
) -> None:
    """The dry run is a check, not a formality: the server refuses what it would refuse for
    real, here a release into a namespace that does not exist.

    (The stand-in does not validate fields against schemas; ``tests/helm/test_render.py``
    validates the same objects against Kubernetes 1.36's schemas instead.)"""
    objects = render.render_chart({}, namespace="gpufair-nowhere")
    namespaced = [obj for obj in objects if "namespace" in obj["metadata"]]
    result = kubectl(
        "apply", "-f", "-", "--dry-run=server", input=as_yaml(namespaced[:1]), check=False
    )
    assert result.returncode != 0
    assert 'namespaces "gpufair-nowhere" not found' in result.stderr
