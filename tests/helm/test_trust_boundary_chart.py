"""The chart's trust boundary, rendered by Helm's own engine (``tests/helm/render.py``).

By default the extender runs beside kube-scheduler in each gpufair-scheduler pod on 127.0.0.1
(two replicas with leader election); run apart it serves HTTPS and kube-scheduler presents a
client certificate (mutual TLS), with certificates from cert-manager or provided Secrets. The
ValidatingAdmissionPolicy and the NetworkPolicies render with it.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.helm import render

from gpufair.api import names

Obj = dict[str, Any]
APART = {"extender": {"placement": "apart"}}
PROVIDED = {
    "extender": {
        "placement": "apart",
        "tls": {"certManager": {"enabled": False}, "serverSecret": "srv", "clientSecret": "cli"},
    }
}


def find(objects: list[Obj], kind: str, suffix: str = "") -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]


def pod_spec(objects: list[Obj], name_suffix: str) -> Obj:
    (deployment,) = find(objects, "Deployment", name_suffix)
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def container(spec: Obj, name: str) -> Obj:
    (found,) = [c for c in spec["containers"] if c["name"] == name]
    return found


def env(item: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in item.get("env", [])}


def extender_entry(objects: list[Obj]) -> Obj:
    (config_map,) = find(objects, "ConfigMap", "-scheduler")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["leaderElection"]["leaderElect"] is True
    (entry,) = config["extenders"]
    return dict(entry)


def test_by_default_the_extender_is_beside_each_scheduler_on_loopback() -> None:
    objects = render.render_chart({})
    spec = pod_spec(objects, "-scheduler")
    (deployment,) = find(objects, "Deployment", "-scheduler")
    assert deployment["spec"]["replicas"] >= 2
    extender = container(spec, "extender")
    assert env(extender)["GPUFAIR_EXTENDER_HOST"] == "127.0.0.1"
    assert [p["name"] for p in extender["ports"]] == ["metrics"]  # no port of the verbs
    entry = extender_entry(objects)
    assert entry["urlPrefix"] == f"http://127.0.0.1:{env(extender)['GPUFAIR_EXTENDER_PORT']}"
    assert entry["enableHTTPS"] is False
    assert find(objects, "Deployment", "-extender") == []
    (service,) = find(objects, "Service", "-extender")
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    (binding,) = find(objects, "ClusterRoleBinding", "-extender")
    assert [s["name"] for s in binding["subjects"]] == [spec["serviceAccountName"]]


@pytest.mark.parametrize("values", [APART, PROVIDED], ids=["cert-manager", "provided-secrets"])
def test_apart_the_extender_serves_https_to_client_certificates_only(values: Obj) -> None:
    objects = render.render_chart(values)
    extender_spec = pod_spec(objects, "-extender")
    variables = env(container(extender_spec, "extender"))
    assert variables["GPUFAIR_EXTENDER_HOST"] == "0.0.0.0"
    for key in ("GPUFAIR_TLS_CERT_FILE", "GPUFAIR_TLS_KEY_FILE", "GPUFAIR_TLS_CLIENT_CA_FILE"):
        assert variables[key].startswith("/etc/gpufair-extender/tls/")
    entry = extender_entry(objects)
    assert entry["urlPrefix"].startswith("https://")
    assert entry["enableHTTPS"] is True
    tls = entry["tlsConfig"]
    assert tls["insecure"] is False
    scheduler_spec = pod_spec(objects, "-scheduler")
    mounts = {
        m["mountPath"]: m["name"]
        for m in container(scheduler_spec, "kube-scheduler")["volumeMounts"]
    }
    volumes = {v["name"]: v for v in scheduler_spec["volumes"]}
    for key in ("certFile", "keyFile", "caFile"):
        directory = tls[key].rsplit("/", 1)[0]
        assert directory in mounts, f"{key} {tls[key]} is not mounted"
        client_secret = volumes[mounts[directory]]["secret"]["secretName"]
    server_secret = {v["name"]: v for v in extender_spec["volumes"]}["extender-tls"]["secret"]
    certificates = {c["spec"]["secretName"]: c for c in find(objects, "Certificate")}
    if values is PROVIDED:
        assert (server_secret["secretName"], client_secret) == ("srv", "cli")
        assert server_secret["secretName"] not in certificates
    else:
        server, client = certificates[server_secret["secretName"]], certificates[client_secret]
        assert "server auth" in server["spec"]["usages"]
        assert "client auth" in client["spec"]["usages"]
        assert server["spec"]["issuerRef"] == client["spec"]["issuerRef"]


def test_apart_without_cert_manager_needs_the_secrets() -> None:
    values = {"extender": {"placement": "apart", "tls": {"certManager": {"enabled": False}}}}
    with pytest.raises(Exception, match=r"extender\.tls\.(server|client)Secret is required"):
        render.render_chart(values)


def test_the_admission_policy_keeps_tenant_gpu_pods_on_the_gpufair_scheduler() -> None:
    objects = render.render_chart({})
    (policy,) = find(objects, "ValidatingAdmissionPolicy")
    (binding,) = find(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    constraints = policy["spec"]["matchConstraints"]
    assert constraints["namespaceSelector"]["matchExpressions"] == [
        {"key": names.TENANT_LABEL, "operator": "Exists"}
    ]
    (_, scheduler_rule, _) = policy["spec"]["validations"]
    assert f'object.spec.schedulerName == "{names.SCHEDULER_NAME}"' in scheduler_rule["expression"]
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_network_policies_narrow_the_webhook_to_the_api_server_when_told() -> None:
    objects = render.render_chart({"networkPolicy": {"apiServerCIDRs": ["10.0.0.1/32"]}})
    (operator,) = find(objects, "NetworkPolicy", "-operator")
    webhook_rule = next(
        rule for rule in operator["spec"]["ingress"] if rule["ports"][0]["port"] == "webhook"
    )
    assert webhook_rule["from"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    apart = render.render_chart(APART)
    (extender,) = find(apart, "NetworkPolicy", "-extender")
    verbs_rule = next(r for r in extender["spec"]["ingress"] if r["ports"][0]["port"] == "https")
    assert verbs_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "scheduler"
    )
