"""Each attack on gpufair's trust boundary, against real processes: the attack must fail.

One ``gpufair operator`` (its webhook over HTTPS; the stand-in sends the caller's identity as
``userInfo``) and one ``gpufair extender`` serve the module; the chart's
ValidatingAdmissionPolicy and binding (rendered by Helm's engine) are applied, and the stand-in
evaluates them with cel-python as the API server does. The test client is the cluster admin,
which is not one of gpufair's service accounts, so it stands for a tenant here.

- forged ``gpufair.dev/gpus``, ``gpufair.dev/pool`` and ``gpufair.dev/group-plan`` at creation:
  denied by the webhook, and by the admission policy where the webhook never looks;
- a GPU pod with ``schedulerName: default-scheduler`` in a tenant namespace the webhook never
  sees (opted out): denied by the admission policy;
- a priority class tenants may not use: denied by the admission policy;
- a namespace label claiming another tenant: ownership never follows it, the operator removes
  it;
- unauthenticated ``POST /bind`` and a client certificate from another CA, against an extender
  process serving mutual TLS: no answer, nothing bound.
"""

from __future__ import annotations

import json
import pathlib
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.builders import tls
from tests.helm import render

from e2e.harness import processes, scenario, waiting
from gpufair.api import names

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


@pytest.fixture(scope="module")
def admission_policy(stack: scenario.Stack, kubectl: Any) -> Iterator[None]:
    """The chart's ValidatingAdmissionPolicy and binding, as ``helm install`` renders them
    (removed after the module: other modules' tests write gpufair annotations as the admin)."""
    objects = render.render_chart({})
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    applied = [obj for obj in objects if obj["kind"] in kinds]
    for obj in applied:
        kubectl.apply(json.dumps(obj))
    yield
    for obj in reversed(applied):
        kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found")


@pytest.fixture
def tenant_namespace(
    stack: scenario.Stack, k8s: Any, cleanup: scenario.Cleanup, kubectl: Any
) -> Callable[..., str]:
    """A namespace owned by a fresh tenant with a pool; waits until the operator labelled it."""

    def make(*, opted_out: bool = False) -> str:
        namespace = cleanup.namespace("tb")
        if opted_out:
            kubectl("label", "namespace", namespace, f"{names.OPT_OUT_LABEL}=disabled")
        pool, tenant = scenario.unique("tbpool"), scenario.unique("tbtenant")
        cleanup.apply(scenario.pool_manifest(pool))
        cleanup.apply(
            scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}])
        )
        scenario.wait_known(k8s, tenant)
        waiting.wait_for(
            lambda: _labels(k8s, namespace).get(names.TENANT_LABEL) == tenant,
            timeout=30,
            what=f"the operator labels {namespace} {names.TENANT_LABEL}={tenant}",
        )
        return namespace

    return make


def _labels(k8s: Any, namespace: str) -> dict[str, str]:
    return dict(k8s.core.read_namespace(namespace).metadata.labels or {})


def _create(k8s: Any, namespace: str, pod: dict[str, Any]) -> Any:
    import kubernetes

    with pytest.raises(kubernetes.client.ApiException) as refused:
        k8s.core.create_namespaced_pod(namespace, pod)
    return refused.value


@pytest.mark.parametrize(
    "annotation",
    [names.GPUS_ANNOTATION, names.POOL_ANNOTATION, names.GROUP_PLAN_ANNOTATION],
    ids=["forged-gpus", "forged-pool", "forged-group-plan"],
)
def test_a_forged_gpufair_annotation_is_denied_at_creation(
    annotation: str, tenant_namespace: Callable[..., str], k8s: Any
) -> None:
    namespace = tenant_namespace()
    pod = scenario.gpu_pod("forger", 2, scheduler_name=None)
    pod["metadata"]["annotations"] = {annotation: "0,1" if annotation.endswith("gpus") else "x"}
    refused = _create(k8s, namespace, pod)
    assert refused.status == 403
    assert f"{annotation} is written only by gpufair" in refused.body
    assert not scenario.pods(k8s, namespace)


@pytest.mark.usefixtures("admission_policy")
def test_a_forged_annotation_is_denied_where_the_webhook_never_looks(
    tenant_namespace: Callable[..., str], k8s: Any
) -> None:
    namespace = tenant_namespace(opted_out=True)  # as while the operator is down
    pod = scenario.gpu_pod("forger", 2)
    pod["metadata"]["annotations"] = {names.GPUS_ANNOTATION: "0,1"}
    refused = _create(k8s, namespace, pod)
    assert refused.status == 403
    assert "ValidatingAdmissionPolicy" in refused.body
    assert "written only by gpufair's service accounts" in refused.body


@pytest.mark.usefixtures("admission_policy")
def test_a_gpu_pod_on_the_default_scheduler_cannot_bypass_gpufair(
    tenant_namespace: Callable[..., str], k8s: Any
) -> None:
    namespace = tenant_namespace(opted_out=True)  # the webhook never sees this namespace
    refused = _create(
        k8s, namespace, scenario.gpu_pod("bypass", 1, scheduler_name="default-scheduler")
    )
    assert refused.status == 403
    assert "ValidatingAdmissionPolicy" in refused.body
    assert "must use schedulerName gpufair-scheduler, not default-scheduler" in refused.body
    # The same pod on the gpufair scheduler is admitted: the policy refuses only the bypass.
    k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("fair", 1))


@pytest.mark.usefixtures("admission_policy")
def test_a_priority_class_tenants_may_not_use_is_denied(
    tenant_namespace: Callable[..., str], k8s: Any
) -> None:
    namespace = tenant_namespace()
    pod = scenario.gpu_pod("vip", 1, scheduler_name=None)
    pod["spec"]["priorityClassName"] = "system-node-critical"
    refused = _create(k8s, namespace, pod)
    assert refused.status == 403
    assert "priority class system-node-critical is not allowed" in refused.body


def test_a_namespace_label_claiming_another_tenant_claims_nothing(
    stack: scenario.Stack, k8s: Any, cleanup: scenario.Cleanup, kubectl: Any
) -> None:
    victim, pool = scenario.unique("victim"), scenario.unique("tbpool")
    cleanup.apply(scenario.pool_manifest(pool))
    quota = json.loads(scenario.quota_manifest(victim, namespaces=[], pools=[{"name": pool}]))
    # Even a selector on gpufair's own label must not let the label decide ownership.
    quota["spec"].pop("namespaces")
    quota["spec"]["namespaceSelector"] = {"matchLabels": {names.TENANT_LABEL: victim}}
    cleanup.apply(json.dumps(quota))
    scenario.wait_known(k8s, victim)
    intruder = cleanup.namespace("intruder")
    kubectl("label", "namespace", intruder, f"{names.TENANT_LABEL}={victim}")
    waiting.wait_for(
        lambda: names.TENANT_LABEL not in _labels(k8s, intruder),
        timeout=30,
        what=f"the operator removes the forged {names.TENANT_LABEL} from {intruder}",
    )
    status = scenario.quota_status(k8s, victim)
    assert intruder not in json.dumps(status)


# -- the extender run apart: mutual TLS, as a real process ------------------------------------


@pytest.fixture
def mtls_extender(tmp_path: pathlib.Path, run_component: Callable[..., Any]) -> dict[str, Any]:
    ca = tls.authority(tmp_path, "cluster-ca")
    server = tls.issue(tmp_path, ca, "extender", server=True)
    port, probe_port = processes.free_port(), processes.free_port()
    run_component(
        [
            "extender",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--probe-host",
            "127.0.0.1",
            "--probe-port",
            str(probe_port),
            "--tls-cert-file",
            str(server.cert),
            "--tls-key-file",
            str(server.key),
            "--tls-client-ca-file",
            str(ca.cert),
        ],
        ready_url=f"http://127.0.0.1:{probe_port}/readyz",
    )
    return {"url": f"https://127.0.0.1:{port}", "dir": tmp_path, "ca": ca}


def _bind(served: dict[str, Any], client: tls.Pair | None, namespace: str, pod: Any) -> Any:
    context = ssl.create_default_context(cafile=str(served["ca"].cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    body = {
        "PodName": pod.metadata.name,
        "PodNamespace": namespace,
        "PodUID": pod.metadata.uid,
        "Node": "anywhere",
    }
    with httpx.Client(verify=context, timeout=5) as http:
        return http.post(f"{served['url']}/bind", json=body)


@pytest.mark.parametrize("attack", ["unauthenticated", "certificate-from-another-ca"])
def test_only_kube_schedulers_certificate_reaches_the_verbs(
    attack: str, mtls_extender: dict[str, Any], k8s: Any, namespace: str
) -> None:
    pod = k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("victim", 1))
    client = None
    if attack == "certificate-from-another-ca":
        other = tls.authority(mtls_extender["dir"], "other-ca")
        client = tls.issue(mtls_extender["dir"], other, "intruder", server=False)
    with pytest.raises(httpx.TransportError):
        _bind(mtls_extender, client, namespace, pod)
    # kube-scheduler's own certificate gets an answer (an Error: no such node), so the
    # refusals above are the certificate's doing, not a dead server.
    scheduler_cert = tls.issue(
        mtls_extender["dir"], mtls_extender["ca"], "kube-scheduler", server=False
    )
    answer = _bind(mtls_extender, scheduler_cert, namespace, pod)
    assert answer.status_code == 200
    assert answer.json()["Error"]
    assert not scenario.read_pod(k8s, namespace, "victim")["spec"].get("nodeName")
