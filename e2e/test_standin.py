"""The stand-in API server fills every gap of kmock 0.8 that gpufair depends on (issue 7).

Each test drives the stand-in the way a component will: through kubectl, the official client,
raw HTTP (where the client would hide the status code or the content type) or kopf itself.
"""

from __future__ import annotations

import base64
import json
import pathlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import fastapi
import httpx
import kmock
import kubernetes
import pytest
import yaml

from e2e.harness import apiserver as apiserver_mod
from e2e.harness import apps, processes
from e2e.harness import kubectl as kubectl_mod
from e2e.harness.waiting import wait_for
from gpufair.standin.apiserver import server as standin_server

pytestmark = pytest.mark.e2e

Clients = Any  # e2e.conftest.Clients
Json = dict[str, Any]
ApiException = kubernetes.client.ApiException

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.gpufair.dev
spec:
  group: e2e.gpufair.dev
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def _gpufair_crd(plural: str, kind: str, short: str) -> str:
    """A stand-in for the generated CRD, used until ``crds/*.yaml`` exists."""
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.gpufair.dev
spec:
  group: gpufair.dev
  scope: Cluster
  names: {{plural: {plural}, singular: {kind.lower()}, kind: {kind}, shortNames: [{short}]}}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def pod_body(
    name: str,
    *,
    gpus: int = 1,
    labels: dict[str, str] | None = None,
    scheduler: str = "gpufair-scheduler",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            **spec,
        },
    }


def raw(k8s: Clients, obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = k8s.api_client.sanitize_for_serialization(obj)
    return result


@pytest.fixture
def widgets(kubectl: kubectl_mod.Kubectl) -> Iterator[None]:
    kubectl.apply(WIDGET_CRD)
    yield
    kubectl("delete", "crd", "widgets.e2e.gpufair.dev", check=False)


@pytest.fixture
def gpufair_crds(kubectl: kubectl_mod.Kubectl, apply_crds: Any) -> Iterator[str]:
    """The project's CRDs from ``crds/``, or equivalent stand-ins until they are generated."""
    try:
        apply_crds()
        yield "crds/"
    except FileNotFoundError:
        kubectl.apply(_gpufair_crd("tenantquotas", "TenantQuota", "tq"))
        kubectl.apply(_gpufair_crd("gpupools", "GPUPool", "gp"))
        yield "inline"
        kubectl("delete", "crd", "tenantquotas.gpufair.dev", "gpupools.gpufair.dev", check=False)


# ------------------------------------------------------------------ create, identity, versions


def test_create_answers_201_with_identity_from_the_server(k8s: Clients, namespace: str) -> None:
    body = pod_body("p")  # no namespace in the body: it comes from the URL
    created, status, _ = k8s.core.create_namespaced_pod_with_http_info(namespace, body)
    assert status == 201
    meta = created.metadata
    assert meta.namespace == namespace
    assert meta.uid
    assert len(meta.uid) == 36
    assert int(meta.resource_version) > 0
    assert meta.creation_timestamp is not None
    assert created.status.phase == "Pending"
    other = k8s.core.create_namespaced_pod(namespace, pod_body("q"))
    assert other.metadata.uid != meta.uid
    assert int(other.metadata.resource_version) > int(meta.resource_version)


def test_generate_name_and_duplicate_names(k8s: Clients, namespace: str) -> None:
    body = {"metadata": {"generateName": "cm-"}, "data": {"a": "1"}}
    first = k8s.core.create_namespaced_config_map(namespace, body)
    assert first.metadata.name.startswith("cm-")
    assert len(first.metadata.name) == len("cm-") + 5
    with pytest.raises(ApiException) as exc:
        k8s.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": first.metadata.name}}
        )
    assert exc.value.status == 409
    assert json.loads(str(exc.value.body))["reason"] == "AlreadyExists"


def test_create_in_a_missing_namespace_is_404(k8s: Clients) -> None:
    with pytest.raises(ApiException) as exc:
        k8s.core.create_namespaced_config_map("no-such-namespace", {"metadata": {"name": "x"}})
    assert exc.value.status == 404


def test_every_kind_of_patch_bumps_the_resource_version(k8s: Clients, namespace: str) -> None:
    versions = [
        int(
            k8s.core.create_namespaced_config_map(
                namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}}
            ).metadata.resource_version
        )
    ]
    for content_type, patch in (
        ("application/merge-patch+json", {"data": {"b": "2"}}),
        ("application/json-patch+json", [{"op": "add", "path": "/data/c", "value": "3"}]),
        ("application/strategic-merge-patch+json", {"data": {"d": "4"}}),
    ):
        patched = k8s.core.patch_namespaced_config_map(
            "cm", namespace, patch, _content_type=content_type
        )
        versions.append(int(patched.metadata.resource_version))
    assert versions == sorted(set(versions)), "every patch gets a new, higher resourceVersion"
    final = k8s.core.read_namespaced_config_map("cm", namespace)
    assert final.data == {"a": "1", "b": "2", "c": "3", "d": "4"}
    unchanged = k8s.core.patch_namespaced_config_map("cm", namespace, {"data": {"a": "1"}})
    assert int(unchanged.metadata.resource_version) == versions[-1], "a no-op patch writes nothing"


def test_stale_resource_version_conflicts(k8s: Clients, namespace: str) -> None:
    cm = k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm"}, "data": {"v": "0"}}
    )
    stale = cm.metadata.resource_version
    cm.data = {"v": "1"}
    updated = k8s.core.replace_namespaced_config_map("cm", namespace, cm)  # PUT with a fresh rv
    assert updated.data == {"v": "1"}
    cm.data = {"v": "2"}
    cm.metadata.resource_version = stale
    with pytest.raises(ApiException) as put:
        k8s.core.replace_namespaced_config_map("cm", namespace, cm)
    assert put.value.status == 409
    assert json.loads(str(put.value.body))["reason"] == "Conflict"
    with pytest.raises(ApiException) as merge:
        k8s.core.patch_namespaced_config_map(
            "cm", namespace, {"metadata": {"resourceVersion": stale}, "data": {"v": "3"}}
        )
    assert merge.value.status == 409
    with pytest.raises(ApiException) as test_op:  # kopf's optimistic JSON patch
        k8s.core.patch_namespaced_config_map(
            "cm",
            namespace,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                {"op": "replace", "path": "/data/v", "value": "4"},
            ],
            _content_type="application/json-patch+json",
        )
    assert test_op.value.status == 422
    assert k8s.core.read_namespaced_config_map("cm", namespace).data == {"v": "1"}


def test_pods_get_api_defaults(k8s: Clients, namespace: str) -> None:
    body = pod_body("p", gpus=2)
    del body["spec"]["schedulerName"]
    created = k8s.core.create_namespaced_pod(namespace, body)
    assert created.spec.scheduler_name == "default-scheduler"
    assert created.spec.containers[0].resources.requests == {"nvidia.com/gpu": "2"}, (
        "requests default to limits"
    )


# ------------------------------------------------------------------ lists and selectors


def test_lists_are_typed_and_versioned(
    k8s: Clients, apiserver: apiserver_mod.StandInServer, namespace: str
) -> None:
    k8s.core.create_namespaced_pod(namespace, pod_body("p"))
    listing = httpx.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods").json()
    assert listing["kind"] == "PodList"
    assert listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) >= int(
        listing["items"][0]["metadata"]["resourceVersion"]
    )
    namespaces = k8s.core.list_namespace()  # GET /api/v1/namespaces
    assert namespace in {ns.metadata.name for ns in namespaces.items}
    assert {"default", "kube-system"} <= {ns.metadata.name for ns in namespaces.items}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("tenant=a", {"a1", "a2"}, id="equals"),
        pytest.param("tenant==a", {"a1", "a2"}, id="double-equals"),
        pytest.param("tenant!=a", {"b1", "none"}, id="not-equals-includes-unlabelled"),
        pytest.param("tenant in (a,b)", {"a1", "a2", "b1"}, id="in"),
        pytest.param("tenant notin (a)", {"b1", "none"}, id="notin"),
        pytest.param("tenant", {"a1", "a2", "b1"}, id="exists"),
        pytest.param("!tenant", {"none"}, id="does-not-exist"),
        pytest.param("tenant=a,size=big", {"a2"}, id="and"),
    ],
)
def test_label_selectors(k8s: Clients, namespace: str, selector: str, expected: set[str]) -> None:
    for name, labels in (
        ("a1", {"tenant": "a"}),
        ("a2", {"tenant": "a", "size": "big"}),
        ("b1", {"tenant": "b"}),
        ("none", {}),
    ):
        k8s.core.create_namespaced_pod(namespace, pod_body(name, labels=labels))
    found = k8s.core.list_namespaced_pod(namespace, label_selector=selector)
    assert {p.metadata.name for p in found.items} == expected


def test_field_selectors(k8s: Clients, kubectl: kubectl_mod.Kubectl, namespace: str) -> None:
    k8s.core.create_namespaced_pod(namespace, pod_body("gpu-pending"))
    k8s.core.create_namespaced_pod(namespace, pod_body("other", scheduler="default-scheduler"))
    k8s.core.create_namespaced_pod(namespace, pod_body("placed", nodeName="node-x"))

    def names(selector: str) -> set[str]:
        found = k8s.core.list_namespaced_pod(namespace, field_selector=selector)
        return {p.metadata.name for p in found.items}

    assert names("spec.nodeName=") == {"gpu-pending", "other"}
    assert names("spec.nodeName=node-x") == {"placed"}
    assert names("spec.schedulerName=gpufair-scheduler,spec.nodeName=") == {"gpu-pending"}
    assert names("metadata.name=other") == {"other"}
    assert names("status.phase=Pending") == {"gpu-pending", "other"}
    assert names("status.phase!=Pending") == {"placed"}  # NodeNotFound: the kubelet failed it
    via_kubectl = kubectl.json(
        "get", "pods", "-n", namespace, "--field-selector", "spec.schedulerName=gpufair-scheduler"
    )
    assert {p["metadata"]["name"] for p in via_kubectl["items"]} == {"gpu-pending", "placed"}


def test_list_pagination(k8s: Clients, namespace: str) -> None:
    for i in range(5):
        k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm{i}"}})
    seen, token = [], None
    while True:
        page = k8s.core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        assert len(page.items) <= 2
        seen += [cm.metadata.name for cm in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"cm{i}" for i in range(5)]


def test_bad_selector_is_400(apiserver: apiserver_mod.StandInServer) -> None:
    answer = httpx.get(f"{apiserver.url}/api/v1/pods", params={"labelSelector": "a in b"})
    assert answer.status_code == 400


# ------------------------------------------------------------------ watches


def _stream(url: str, params: dict[str, str], *, count: int) -> tuple[str, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, params={**params, "timeoutSeconds": "5"}, timeout=10) as answer:
        content_type = answer.headers["content-type"]
        for line in answer.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return content_type, events


@pytest.mark.parametrize("flag", ["true", "True", "1"])
def test_watch_resumes_from_a_resource_version(
    k8s: Clients, apiserver: apiserver_mod.StandInServer, namespace: str, flag: str
) -> None:
    created = k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    since = created.metadata.resource_version
    for value in ("1", "2"):
        k8s.core.patch_namespaced_config_map("cm", namespace, {"data": {"v": value}})
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps"
    content_type, events = _stream(url, {"watch": flag, "resourceVersion": since}, count=2)
    assert content_type.startswith("application/json")
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]
    assert [e["object"]["data"]["v"] for e in events] == ["1", "2"]
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(since)


def test_watch_with_the_official_client(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    seen: list[tuple[str, str]] = []

    def watch() -> None:
        stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
            k8s.core.list_namespaced_config_map, namespace, timeout_seconds=3
        )
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                break

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_for(lambda: seen, what="the initial ADDED event")
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
    k8s.core.delete_namespaced_config_map("before", namespace)
    watcher.join(timeout=10)
    assert seen == [("ADDED", "before"), ("ADDED", "after"), ("DELETED", "before")]


def test_watch_selectors_follow_objects_in_and_out(
    k8s: Clients, apiserver: apiserver_mod.StandInServer, namespace: str
) -> None:
    created = k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm", "labels": {"tenant": "a"}}}
    )
    k8s.core.patch_namespaced_config_map("cm", namespace, {"metadata": {"labels": {"tenant": "b"}}})
    k8s.core.patch_namespaced_config_map("cm", namespace, {"metadata": {"labels": {"tenant": "a"}}})
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps"
    params = {
        "watch": "true",
        "labelSelector": "tenant=a",
        "resourceVersion": created.metadata.resource_version,
    }
    _, events = _stream(url, params, count=2)
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


async def test_watch_from_a_compacted_version_is_410() -> None:
    """In-process, as kmock is usually used, with a tiny event log."""
    async with standin_server.StandIn(watch_events=2) as standin, kmock.Server(standin) as srv:
        url = "/api/v1/namespaces/default/configmaps"
        for i in range(4):
            answer = await srv.client.post(url, json={"metadata": {"name": f"cm{i}"}})
            assert answer.status == 201
        answer = await srv.client.get(url, params={"watch": "1", "resourceVersion": "1"})
        first = json.loads((await answer.content.readline()).decode())
        assert first["type"] == "ERROR"
        assert first["object"]["code"] == 410
        standin.stop_watches()


async def test_a_watch_that_allows_bookmarks_gets_them_while_quiet() -> None:
    """As the real server's watch cache does (about once a minute there): a quiet watch sends
    BOOKMARK events at the version it has reached, so a client can tell it from a dead one;
    a watch that did not ask gets none."""
    async with (
        standin_server.StandIn(bookmark_seconds=0.2) as standin,
        kmock.Server(standin) as srv,
    ):
        url = "/api/v1/namespaces/default/configmaps"
        answer = await srv.client.post(url, json={"metadata": {"name": "cm"}})
        version = (await answer.json())["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "1"}
        answer = await srv.client.get(url, params={**params, "allowWatchBookmarks": "true"})
        lines = [json.loads(line) for line in (await answer.read()).splitlines() if line]
        assert len(lines) >= 2
        assert {event["type"] for event in lines} == {"BOOKMARK"}
        assert {e["object"]["metadata"]["resourceVersion"] for e in lines} == {version}
        assert lines[0]["object"]["kind"] == "ConfigMap"
        answer = await srv.client.get(url, params=params)
        assert (await answer.read()).strip() == b""
        standin.stop_watches()


# ------------------------------------------------------------------ discovery and kubectl


def test_discovery(apiserver: apiserver_mod.StandInServer) -> None:
    core = httpx.get(f"{apiserver.url}/api/v1").json()
    assert core["groupVersion"] == "v1"
    pods = {r["name"]: r for r in core["resources"]}
    assert pods["pods"]["kind"] == "Pod"
    assert {"pods/binding", "pods/eviction", "pods/status"} <= set(pods)
    groups = {g["name"] for g in httpx.get(f"{apiserver.url}/apis").json()["groups"]}
    assert {
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "policy",
        "apiextensions.k8s.io",
    } <= groups


def test_kubectl_apply_twice_is_idempotent(kubectl: kubectl_mod.Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump(pod_body("p", labels={"app": "one"}))
    assert "created" in kubectl.apply(manifest, "-n", namespace)
    before = kubectl.json("get", "pod", "p", "-n", namespace)["metadata"]["resourceVersion"]
    assert "unchanged" in kubectl.apply(manifest, "-n", namespace)
    after = kubectl.json("get", "pod", "p", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == before
    changed = yaml.safe_dump(pod_body("p", labels={"app": "two"}))
    assert "configured" in kubectl.apply(changed, "-n", namespace)
    assert kubectl.json("get", "pod", "p", "-n", namespace)["metadata"]["labels"] == {"app": "two"}
    assert "p" in kubectl("get", "pods", "-n", namespace).stdout


def test_kubectl_server_side_apply(kubectl: kubectl_mod.Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    kubectl.apply(manifest, "-n", namespace, "--server-side")
    kubectl.apply(manifest.replace("'1'", "'2'"), "-n", namespace, "--server-side")
    assert kubectl.json("get", "cm", "cm", "-n", namespace)["data"] == {"a": "2"}


# ------------------------------------------------------------------ custom resources


def test_gpufair_crds_are_served_with_a_status_subresource(
    k8s: Clients,
    kubectl: kubectl_mod.Kubectl,
    apiserver: apiserver_mod.StandInServer,
    gpufair_crds: str,
) -> None:
    version = httpx.get(f"{apiserver.url}/apis/gpufair.dev/v1alpha1").json()
    served = {r["name"]: r for r in version["resources"]}
    assert version["groupVersion"] == "gpufair.dev/v1alpha1"
    for plural in ("tenantquotas", "gpupools"):
        assert served[plural]["namespaced"] is False
        assert f"{plural}/status" in served

    name = "e2e-subresource"
    body = {
        "apiVersion": "gpufair.dev/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": name},
        "spec": {"weight": 1},
        "status": {"ignored": True},
    }
    created = k8s.custom.create_cluster_custom_object(
        "gpufair.dev", "v1alpha1", "tenantquotas", body
    )
    assert "status" not in created, "status is not settable on create"
    assert created["metadata"]["generation"] == 1

    status = k8s.custom.patch_cluster_custom_object_status(
        "gpufair.dev",
        "v1alpha1",
        "tenantquotas",
        name,
        {"status": {"used": 3}, "spec": {"weight": 99}},
    )
    assert status["status"] == {"used": 3}
    assert status["spec"] == {"weight": 1}, "PATCH on /status changes only status"
    assert status["metadata"]["generation"] == 1

    main = k8s.custom.patch_cluster_custom_object(
        "gpufair.dev",
        "v1alpha1",
        "tenantquotas",
        name,
        {"status": {"used": 0}, "spec": {"weight": 2}},
    )
    assert main["status"] == {"used": 3}, "the main resource ignores status"
    assert main["spec"] == {"weight": 2}
    assert main["metadata"]["generation"] == 2, "a spec change bumps generation"

    main["status"] = {"used": 5}
    replaced = k8s.custom.replace_cluster_custom_object_status(
        "gpufair.dev", "v1alpha1", "tenantquotas", name, main
    )
    assert replaced["status"] == {"used": 5}
    assert replaced["metadata"]["generation"] == 2
    header, *rows = kubectl("get", "tq").stdout.splitlines()
    assert header.split()[:3] == ["NAME", "USED", "GUARANTEED"] or gpufair_crds == "inline"
    assert any(row.split()[0] == name for row in rows)
    k8s.custom.delete_cluster_custom_object("gpufair.dev", "v1alpha1", "tenantquotas", name)


@pytest.mark.parametrize(
    ("short_name", "plural"),
    [pytest.param("tq", "tenantquotas", id="tq"), pytest.param("gpool", "gpupools", id="gpool")],
)
def test_kubectl_get_shows_the_ready_condition_column(
    k8s: Clients, kubectl: kubectl_mod.Kubectl, gpufair_crds: str, short_name: str, plural: str
) -> None:
    # The printer column is .status.conditions[?(@.type=="Ready")].status: a JSONPath filter.
    if gpufair_crds == "inline":
        pytest.skip("needs the generated CRDs (their printer columns) in crds/")
    kind = {"tenantquotas": "TenantQuota", "gpupools": "GPUPool"}[plural]
    name = f"e2e-ready-{short_name}"
    k8s.custom.create_cluster_custom_object(
        "gpufair.dev",
        "v1alpha1",
        plural,
        {"apiVersion": "gpufair.dev/v1alpha1", "kind": kind, "metadata": {"name": name}},
    )
    try:
        conditions = [
            {"type": "Overcommitted", "status": "False", "reason": "Fits", "message": ""},
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": ""},
        ]
        k8s.custom.patch_cluster_custom_object_status(
            "gpufair.dev", "v1alpha1", plural, name, {"status": {"conditions": conditions}}
        )
        for args in ((short_name,), (short_name, name)):  # the list, and the one object
            header, *rows = kubectl("get", *args).stdout.splitlines()
            row = next(row for row in rows if row.split()[0] == name)
            ready = header.index("READY")  # kubectl aligns every column under its header
            assert row[ready:].split()[0] == "True", f"kubectl get {args}:\n{header}\n{row}"
    finally:
        k8s.custom.delete_cluster_custom_object("gpufair.dev", "v1alpha1", plural, name)


def test_kubectl_apply_of_the_examples_is_idempotent(
    kubectl: kubectl_mod.Kubectl, gpufair_crds: str
) -> None:
    examples = processes.REPO_ROOT / "crds" / "examples"
    if gpufair_crds == "inline" or not list(examples.glob("*.yaml")):
        pytest.skip("needs the generated CRDs and their examples in crds/")
    try:
        first = kubectl.apply(examples)
        assert "created" in first
        second = kubectl.apply(examples).splitlines()
        assert second, "kubectl apply printed nothing"
        assert all(line.endswith(" unchanged") for line in second), second
        assert len(kubectl.json("get", "tenantquotas")["items"]) >= 1
        assert len(kubectl.json("get", "gpupools")["items"]) >= 1
    finally:
        kubectl("delete", "-f", str(examples), "--ignore-not-found", check=False)


def test_custom_resources_through_kubectl(kubectl: kubectl_mod.Kubectl, widgets: None) -> None:
    manifest = yaml.safe_dump(
        {
            "apiVersion": "e2e.gpufair.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        }
    )
    assert "created" in kubectl.apply(manifest)
    assert "unchanged" in kubectl.apply(manifest)
    assert "configured" in kubectl.apply(manifest.replace("size: 3", "size: 4"))
    obj = kubectl.json("get", "wdg", "w1")
    assert obj["spec"] == {"size": 4}
    assert obj["metadata"]["generation"] == 2
    kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Ready"}}',
    )
    table = kubectl("get", "widgets").stdout.split("\n")
    assert table[0].split() == ["NAME", "SIZE", "PHASE"]
    assert table[1].split() == ["w1", "4", "Ready"]
    kubectl("delete", "widget", "w1")
    assert kubectl("get", "widgets", "-o", "name").stdout.strip() == ""


def test_finalizers_delay_deletion(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm", "finalizers": ["e2e.gpufair.dev/hold"]}}
    )
    k8s.core.delete_namespaced_config_map("cm", namespace)
    held = k8s.core.read_namespaced_config_map("cm", namespace)
    assert held.metadata.deletion_timestamp is not None
    k8s.core.patch_namespaced_config_map("cm", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        k8s.core.read_namespaced_config_map("cm", namespace)
    assert exc.value.status == 404


def test_namespace_deletion_removes_its_objects(k8s: Clients) -> None:
    k8s.core.create_namespace({"metadata": {"name": "e2e-doomed"}})
    k8s.core.create_namespaced_config_map("e2e-doomed", {"metadata": {"name": "cm"}})
    k8s.core.delete_namespace("e2e-doomed")
    assert k8s.core.list_namespaced_config_map("e2e-doomed").items == []


# ------------------------------------------------------------ pods: binding, kubelet, eviction


def test_binding_sets_the_node_name(
    k8s: Clients, apiserver: apiserver_mod.StandInServer, namespace: str, make_gpu_node: Any
) -> None:
    make_gpu_node("e2e-bind-node", "dgx-a100-8gpu-nv12-12nic-4numa.txt")
    pod = k8s.core.create_namespaced_pod(namespace, pod_body("p", gpus=4))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {
            "name": "p",
            "uid": pod.metadata.uid,
            "annotations": {"gpufair.dev/gpus": "0,1,2,3"},
        },
        "target": {"apiVersion": "v1", "kind": "Node", "name": "e2e-bind-node"},
    }
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/pods/p/binding"
    answer = httpx.post(url, json=binding)
    assert answer.status_code == 201
    assert answer.json()["status"] == "Success"
    bound = k8s.core.read_namespaced_pod("p", namespace)
    assert bound.spec.node_name == "e2e-bind-node"
    assert bound.metadata.annotations["gpufair.dev/gpus"] == "0,1,2,3"
    assert {c.type: c.status for c in bound.status.conditions}["PodScheduled"] == "True"
    assert bound.status.phase == "Running", "the stand-in's kubelet starts bound pods"
    again = httpx.post(url, json=binding)
    assert again.status_code == 409, "a bound pod cannot be bound again"


def test_binding_refuses_gated_pods(
    apiserver: apiserver_mod.StandInServer, k8s: Clients, namespace: str
) -> None:
    k8s.core.create_namespaced_pod(
        namespace, pod_body("gated", schedulingGates=[{"name": "gpufair.dev/admission"}])
    )
    answer = httpx.post(
        f"{apiserver.url}/api/v1/namespaces/{namespace}/pods/gated/binding",
        json={"metadata": {"name": "gated"}, "target": {"name": "n"}},
    )
    assert answer.status_code == 409


def test_kubelet_refuses_double_allocation(
    apiserver: apiserver_mod.StandInServer, k8s: Clients, namespace: str, make_gpu_node: Any
) -> None:
    make_gpu_node("e2e-small-node", "della-2x-a100-pcie-2numa-2nic.txt")  # 2 GPUs
    for name in ("first", "second"):
        k8s.core.create_namespaced_pod(namespace, pod_body(name, gpus=2))
        httpx.post(
            f"{apiserver.url}/api/v1/namespaces/{namespace}/pods/{name}/binding",
            json={"metadata": {"name": name}, "target": {"name": "e2e-small-node"}},
        )
    first = k8s.core.read_namespaced_pod("first", namespace).status
    second = k8s.core.read_namespaced_pod("second", namespace).status
    assert first.phase == "Running"
    assert (second.phase, second.reason) == ("Failed", "OutOfnvidia.com/gpu")


def test_deleting_a_node_collects_its_pods(
    k8s: Clients, namespace: str, make_gpu_node: Any
) -> None:
    make_gpu_node("e2e-doomed-node", "dgx1-v100-8gpu-mlx5.txt")
    k8s.core.create_namespaced_pod(namespace, pod_body("on-it", nodeName="e2e-doomed-node"))
    k8s.core.create_namespaced_pod(namespace, pod_body("pending"))
    k8s.core.delete_node("e2e-doomed-node")
    assert [p.metadata.name for p in k8s.core.list_namespaced_pod(namespace).items] == ["pending"]


def test_eviction_deletes_the_pod_unless_a_budget_forbids(
    k8s: Clients, namespace: str, make_gpu_node: Any
) -> None:
    make_gpu_node("e2e-evict-node", "hgx-h200-8gpu-nv18-10nic.txt")
    for name in ("a", "b"):
        k8s.core.create_namespaced_pod(
            namespace, pod_body(name, labels={"app": "train"}, nodeName="e2e-evict-node")
        )
    k8s.policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "keep-one"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "train"}}},
        },
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}}
    k8s.core.create_namespaced_pod_eviction("a", namespace, eviction, _preload_content=False)
    assert [p.metadata.name for p in k8s.core.list_namespaced_pod(namespace).items] == ["b"]
    with pytest.raises(ApiException) as exc:
        k8s.core.create_namespaced_pod_eviction(
            "b", namespace, {**eviction, "metadata": {"name": "b"}}, _preload_content=False
        )
    assert exc.value.status == 429


@pytest.mark.parametrize("where", ["query", "body"])
def test_a_dry_run_eviction_answers_like_the_eviction_and_changes_nothing(
    k8s: Clients, namespace: str, make_gpu_node: Any, where: str
) -> None:
    make_gpu_node("e2e-dry-evict-node", "hgx-h200-8gpu-nv18-10nic.txt")
    for name in ("a", "b"):
        k8s.core.create_namespaced_pod(
            namespace, pod_body(name, labels={"app": "train"}, nodeName="e2e-dry-evict-node")
        )
    k8s.policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "keep-one"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "train"}}},
        },
    )

    def evict(name: str, *, dry: bool) -> None:
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name},
        }
        extra: dict[str, Any] = {}
        if dry and where == "body":
            body["deleteOptions"] = {"dryRun": ["All"]}
        elif dry:
            extra["dry_run"] = "All"
        k8s.core.create_namespaced_pod_eviction(
            name, namespace, body, _preload_content=False, **extra
        )

    def names() -> list[str]:
        return sorted(p.metadata.name for p in k8s.core.list_namespaced_pod(namespace).items)

    evict("a", dry=True)
    evict("b", dry=True)
    assert names() == ["a", "b"], "a dry run evicts nothing"
    evict("a", dry=False)
    with pytest.raises(ApiException) as exc:
        evict("b", dry=True)
    assert exc.value.status == 429, "the dry run is refused by the budget as the eviction is"
    assert names() == ["b"]


def test_a_pod_under_two_budgets_cannot_be_evicted(
    k8s: Clients, namespace: str, make_gpu_node: Any
) -> None:
    make_gpu_node("e2e-two-pdb-node", "hgx-h200-8gpu-nv18-10nic.txt")
    k8s.core.create_namespaced_pod(
        namespace, pod_body("a", labels={"app": "train"}, nodeName="e2e-two-pdb-node")
    )
    for budget in ("one", "two"):
        k8s.policy.create_namespaced_pod_disruption_budget(
            namespace,
            {
                "metadata": {"name": budget},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "train"}}},
            },
        )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}}
    with pytest.raises(ApiException) as exc:
        k8s.core.create_namespaced_pod_eviction("a", namespace, eviction, _preload_content=False)
    assert exc.value.status == 500


def test_events_and_leases(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "p."},
            "reason": "FailedScheduling",
            "type": "Warning",
            "message": "0/3 nodes are available",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
        },
    )
    k8s.events.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "p."},
            "reason": "Scheduled",
            "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "action": "Binding",
            "reportingController": "gpufair-scheduler",
            "reportingInstance": "e2e",
            "regarding": {"kind": "Pod", "name": "p", "namespace": namespace},
        },
    )
    assert [e.reason for e in k8s.core.list_namespaced_event(namespace).items] == [
        "FailedScheduling"
    ]
    assert [e.reason for e in k8s.events.list_namespaced_event(namespace).items] == ["Scheduled"]
    lease = k8s.coordination.create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": "gpufair-extender"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    renewed = k8s.coordination.replace_namespaced_lease("gpufair-extender", namespace, lease)
    assert renewed.spec.holder_identity == "b"
    with pytest.raises(ApiException) as exc:  # a stale holder loses the race
        k8s.coordination.replace_namespaced_lease("gpufair-extender", namespace, lease)
    assert exc.value.status == 409


# ------------------------------------------------------------------ admission webhooks


def _webhook_app(calls: list[Json]) -> fastapi.FastAPI:
    """Mutates pods (a label, the gpufair scheduler) and denies those labelled ``deny``."""
    app = fastapi.FastAPI()

    @app.post("/mutate")
    async def mutate(request: fastapi.Request) -> Json:
        review = await request.json()
        calls.append(review)
        pod = review["request"]["object"]
        labels = pod["metadata"].get("labels") or {}
        response: Json = {"uid": review["request"]["uid"], "allowed": "deny" not in labels}
        if "deny" in labels:
            response["status"] = {"code": 403, "message": "tenant a is over its limit 12/12"}
        else:
            ops = [
                {"op": "add", "path": "/metadata/labels", "value": {**labels, "seen": "yes"}},
                {"op": "replace", "path": "/spec/schedulerName", "value": "gpufair-scheduler"},
            ]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }

    return app


def _webhook_config(name: str, url: str, namespace: str, *, policy: str = "Fail") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": f"{name}.e2e.gpufair.dev",
                    "clientConfig": {"url": url},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                            "scope": "Namespaced",
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "failurePolicy": policy,
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 2,
                }
            ],
        }
    )


def test_mutating_webhooks_are_called(
    k8s: Clients, kubectl: kubectl_mod.Kubectl, namespace: str
) -> None:
    calls: list[Json] = []
    name = f"e2e-{namespace}"
    with apps.serve(_webhook_app(calls)) as url:
        kubectl.apply(_webhook_config(name, f"{url}/mutate", namespace))
        try:
            body = pod_body("p", scheduler="default-scheduler")
            created = k8s.core.create_namespaced_pod(namespace, body)
            assert created.metadata.labels == {"seen": "yes"}
            assert created.spec.scheduler_name == "gpufair-scheduler"
            request = calls[0]["request"]
            assert (request["operation"], request["namespace"]) == ("CREATE", namespace)
            assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
            denied = kubectl(
                "apply",
                "-n",
                namespace,
                "-f",
                "-",
                check=False,
                input=yaml.safe_dump(pod_body("q", labels={"deny": "1"})),
            )
            assert denied.returncode != 0
            assert (
                'admission webhook "' + name + '.e2e.gpufair.dev" denied the request: '
                "tenant a is over its limit 12/12"
            ) in denied.stderr
            other = k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
            assert other.metadata.labels is None, "rules select pods only"
        finally:
            kubectl("delete", "mutatingwebhookconfiguration", name, check=False)


def test_webhook_failure_policy(k8s: Clients, kubectl: kubectl_mod.Kubectl, namespace: str) -> None:
    dead = f"http://127.0.0.1:{processes.free_port()}/mutate"
    for policy, allowed in (("Ignore", True), ("Fail", False)):
        name = f"e2e-{policy.lower()}-{namespace}"
        kubectl.apply(_webhook_config(name, dead, namespace, policy=policy))
        try:
            if allowed:
                k8s.core.create_namespaced_pod(namespace, pod_body("ignored"))
            else:
                with pytest.raises(ApiException) as exc:
                    k8s.core.create_namespaced_pod(namespace, pod_body("refused"))
                assert exc.value.status == 500
                assert "failed calling webhook" in str(exc.value.body)
        finally:
            kubectl("delete", "mutatingwebhookconfiguration", name, check=False)


def test_kopf_managed_webhooks_are_called(
    k8s: Clients, kubectl: kubectl_mod.Kubectl, namespace: str, run_process: Any
) -> None:
    operator_file = pathlib.Path(__file__).parent / "operators" / "webhook_operator.py"
    port = processes.free_port()
    kopf = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        "--verbose",
        str(operator_file),
    ]
    operator = run_process(
        kopf,
        name="kopf-webhooks",
        env={"E2E_WEBHOOK_PORT": str(port)},
        ready_log=r"Starting the watch-stream",
    )
    try:
        wait_for(
            lambda: (
                kubectl(
                    "get", "mutatingwebhookconfiguration", "e2e.gpufair.dev", check=False
                ).returncode
                == 0
            ),
            what="kopf managed its webhooks",
        )
        mutated = k8s.core.create_namespaced_pod(
            namespace, pod_body("p", labels={"e2e-webhook": "mutate"})
        )
        assert mutated.metadata.labels == {"e2e-webhook": "mutate", "mutated-by": "kopf"}
        with pytest.raises(ApiException) as exc:
            k8s.core.create_namespaced_pod(namespace, pod_body("q", labels={"e2e-webhook": "deny"}))
        assert exc.value.status == 403
        assert "pods labelled e2e-webhook=deny are refused" in str(exc.value.body)
        plain = k8s.core.create_namespaced_pod(namespace, pod_body("r"))
        assert "mutated-by" not in (plain.metadata.labels or {}), "objectSelector respected"
    finally:
        operator.stop()
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            kubectl("delete", kind, "e2e.gpufair.dev", "--ignore-not-found", check=False)


# ------------------------------------------------------------------ kopf


def test_kopf_operator_reconciles_against_the_stand_in(
    k8s: Clients, kubectl: kubectl_mod.Kubectl, widgets: None, run_process: Any
) -> None:
    operator_file = pathlib.Path(__file__).parent / "operators" / "widget_operator.py"
    kopf = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        "--verbose",
        str(operator_file),
    ]
    operator = run_process(kopf, name="kopf-widgets", ready_log=r"Starting the watch-stream")
    kubectl.apply(
        yaml.safe_dump(
            {
                "apiVersion": "e2e.gpufair.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 3},
            }
        )
    )

    def widget() -> dict[str, Any]:
        obj: dict[str, Any] = k8s.custom.get_cluster_custom_object(
            "e2e.gpufair.dev", "v1", "widgets", "w1"
        )
        return obj

    def status_is(size: int, generation: int) -> bool:
        status = widget().get("status") or {}
        return status.get("size") == size and status.get("observedGeneration") == generation

    wait_for(lambda: status_is(3, 1), timeout=20, what="kopf reconciled widget w1")
    assert widget()["status"]["phase"] == "Ready"
    assert widget()["metadata"]["finalizers"], "kopf added its finalizer"
    k8s.custom.patch_cluster_custom_object(
        "e2e.gpufair.dev", "v1", "widgets", "w1", {"spec": {"size": 5}}
    )
    wait_for(lambda: status_is(5, 2), timeout=20, what="kopf reconciled the update")
    k8s.custom.delete_cluster_custom_object("e2e.gpufair.dev", "v1", "widgets", "w1")

    def gone() -> bool:
        try:
            widget()
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, timeout=20, what="kopf released its finalizer")
    operator.wait_for_log(r"widget w1 cleaned up", timeout=5)
    events = k8s.core.list_namespaced_event("default").items
    assert any(e.involved_object.name == "w1" for e in events), "kopf posted events"
    assert operator.stop() == 0, "kopf exits cleanly on SIGTERM"
    assert "Traceback" not in operator.logs()


KOPF_PEERING_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusterkopfpeerings.kopf.dev
spec:
  scope: Cluster
  group: kopf.dev
  names: {kind: ClusterKopfPeering, plural: clusterkopfpeerings, singular: clusterkopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_kopf_peering_works_against_the_stand_in(
    k8s: Clients, kubectl: kubectl_mod.Kubectl, widgets: None, run_process: Any
) -> None:
    kubectl.apply(KOPF_PEERING_CRD)
    kubectl.apply("apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {name: e2e}\n")
    operator_file = pathlib.Path(__file__).parent / "operators" / "widget_operator.py"
    kopf = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--peering=e2e",
        "--all-namespaces",
        "--verbose",
        str(operator_file),
    ]
    operator = run_process(kopf, name="kopf-peering", ready_log=r"Starting the watch-stream")
    try:

        def presence() -> dict[str, Any]:
            peering: dict[str, Any] = k8s.custom.get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", "e2e"
            )
            return dict(peering.get("status") or {})

        peers = wait_for(presence, timeout=15, what="kopf announced itself in the peering")
        assert all("lastseen" in peer for peer in peers.values())
        assert operator.stop() == 0
        assert presence() == {}, "kopf withdrew from the peering on exit"
    finally:
        operator.stop()
        kubectl("delete", "crd", "clusterkopfpeerings.kopf.dev", check=False)


def test_run_component_starts_the_gpufair_cli(run_component: Any) -> None:
    component = run_component(["--version"], ready_log=r"gpufair \d")
    assert component.process.wait(timeout=10) == 0
    assert processes.gpufair_command()[0].endswith("gpufair")
