"""The chart rendered and linted by Helm's own engine, every object valid for Kubernetes 1.36.

Five value sets a user installs with (:data:`VALUE_SETS`). For each: ``helm lint --strict
--kube-version v1.36.0`` finds nothing above info; the render holds the objects that set is
for and none it turns off; every rendered object passes :func:`tests.helm.validation.problems`
(built-in kinds against Kubernetes 1.36's strict schemas, custom kinds against their CRDs).
The e2e test ``e2e/test_chart_dry_run.py`` sends the same objects to the stand-in API server.
"""

from __future__ import annotations

import base64
import pathlib
from typing import Any

import helm_python
import pytest
import yaml
from tests.helm import render, validation

PROVIDED_TLS_SECRET = "gpufair-webhook-own-tls"
PROVIDED_CA_BUNDLE = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...\n").decode()

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True, "namespace": "monitoring"},
    },
    "provided-tls": {
        "webhook": {
            "certManager": {"enabled": False},
            "tls": {"secretName": PROVIDED_TLS_SECRET, "caBundle": PROVIDED_CA_BUNDLE},
        },
    },
    "allocation": {
        "agent": {"allocation": {"proxy": True}},
        "serviceMonitor": {"enabled": True},
    },
    "agent-only": {
        "operator": {"enabled": False},
        "webhook": {"enabled": False},
        "scheduler": {"enabled": False},
        "extender": {"enabled": False},
        "dashboards": {"enabled": False},
    },
}

# Kinds each value set must render (present) and must not (absent).
EXPECTED_KINDS: dict[str, tuple[set[str], set[str]]] = {
    "defaults": (
        {"StatefulSet", "Deployment", "DaemonSet", "MutatingWebhookConfiguration", "Certificate"},
        {"ServiceMonitor", "PrometheusRule"},
    ),
    "monitoring": ({"ServiceMonitor", "PrometheusRule", "ConfigMap"}, set()),
    "provided-tls": ({"MutatingWebhookConfiguration"}, {"Certificate", "Issuer"}),
    "allocation": ({"DaemonSet", "Service", "ServiceMonitor"}, set()),
    "agent-only": (
        {"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"},
        {"StatefulSet", "Deployment", "MutatingWebhookConfiguration", "ConfigMap", "Service"},
    ),
}

SETS = sorted(VALUE_SETS)


def object_id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("value_set", SETS)
def test_helm_lint_strict_finds_nothing(value_set: str) -> None:
    report = render.lint(VALUE_SETS[value_set])
    findings = [message for message in report["messages"] if message["severity"] >= 2]
    assert (findings, report["errors"]) == ([], [])


def test_helm_lint_reports_values_the_schema_refuses() -> None:
    """The lint above can fail: Helm's lint checks values against values.schema.json."""
    report = render.lint({"operator": {"replicas": "two"}})
    errors = [message["error"] for message in report["messages"] if message["severity"] == 3]
    assert any("/operator/replicas" in error for error in errors), report


@pytest.mark.parametrize("value_set", SETS)
def test_value_set_renders_its_components(value_set: str) -> None:
    kinds = {obj["kind"] for obj in render.render_chart(VALUE_SETS[value_set])}
    present, absent = EXPECTED_KINDS[value_set]
    assert present - kinds == set(), "missing"
    assert absent & kinds == set(), "rendered although turned off"


@pytest.mark.parametrize("value_set", SETS)
def test_every_rendered_object_is_valid_for_kubernetes_1_36(value_set: str) -> None:
    invalid = {
        object_id(obj): found
        for obj in render.render_chart(VALUE_SETS[value_set])
        if (found := validation.problems(obj))
    }
    assert invalid == {}


@pytest.mark.parametrize("value_set", SETS)
def test_object_names_are_unique_per_kind_and_namespace(value_set: str) -> None:
    keys = [
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        for obj in render.render_chart(VALUE_SETS[value_set])
    ]
    assert sorted({key for key in keys if keys.count(key) > 1}) == []


def test_provided_tls_mounts_the_users_secret_and_trusts_its_ca() -> None:
    objects = render.render_chart(VALUE_SETS["provided-tls"])
    (webhook_config,) = render.find(objects, "MutatingWebhookConfiguration")
    assert {hook["clientConfig"]["caBundle"] for hook in webhook_config["webhooks"]} == {
        PROVIDED_CA_BUNDLE
    }
    assert "cert-manager.io/inject-ca-from" not in webhook_config["metadata"].get("annotations", {})
    (operator,) = render.find(objects, "StatefulSet")
    secrets = {
        volume["secret"]["secretName"]
        for volume in operator["spec"]["template"]["spec"]["volumes"]
        if "secret" in volume
    }
    assert PROVIDED_TLS_SECRET in secrets


def test_monitoring_objects_carry_the_selector_labels_and_namespace() -> None:
    objects = render.render_chart(VALUE_SETS["monitoring"])
    (monitor,) = render.find(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboards = [
        obj
        for obj in render.find(objects, "ConfigMap")
        if "grafana_dashboard" in obj["metadata"]["labels"]
    ]
    assert dashboards
    assert {obj["metadata"]["namespace"] for obj in dashboards} == {"monitoring"}


def test_without_cert_manager_helm_refuses_missing_tls_values() -> None:
    values = {"webhook": {"certManager": {"enabled": False}}}
    with pytest.raises(helm_python.HelmError, match="tls"):
        render.render_chart(values)


@pytest.mark.parametrize("path", sorted((render.REPO_ROOT / "crds" / "examples").glob("*.yaml")))
def test_crd_examples_are_valid_against_the_crds(path: pathlib.Path) -> None:
    examples = [obj for obj in yaml.safe_load_all(path.read_text()) if obj]
    assert examples
    assert {object_id(obj): validation.problems(obj) for obj in examples} == {
        object_id(obj): [] for obj in examples
    }


# -- the validator itself can fail -------------------------------------------------------------


def _default(kind: str) -> dict[str, Any]:
    return render.find(render.render_chart({}), kind)[0]


def _misspelt_container_field(obj: dict[str, Any]) -> None:
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _string_replicas(obj: dict[str, Any]) -> None:
    obj["spec"]["replicas"] = "two"


def _unknown_certificate_field(obj: dict[str, Any]) -> None:
    obj["spec"]["dnsName"] = ["x"]


def _peering_spec(obj: dict[str, Any]) -> None:
    obj["spec"] = {"priority": 1}


@pytest.mark.parametrize(
    ("kind", "breakage", "complaint"),
    [
        pytest.param("Deployment", _misspelt_container_field, "imagePullPolicyy", id="typo"),
        pytest.param("StatefulSet", _string_replicas, "'two'", id="type"),
        pytest.param("Certificate", _unknown_certificate_field, "dnsName", id="third-party"),
        pytest.param("ClusterKopfPeering", _peering_spec, "spec", id="crd"),
    ],
)
def test_validation_refuses_a_broken_object(kind: str, breakage: Any, complaint: str) -> None:
    obj = _default(kind)
    assert validation.problems(obj) == []
    breakage(obj)
    assert any(complaint in problem for problem in validation.problems(obj))
