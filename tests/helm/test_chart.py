"""The Helm chart, as Helm renders it (:mod:`tests.helm.render`), against the code it deploys.

Values against the schema; the rendered objects' cross-references (ports, volumes, labels); the
CRDs against ``crds/``; the second scheduler's configuration against ``extender/``; RBAC against
the Kubernetes calls the code makes; the containers' arguments and ``GPUFAIR_*`` variables
against the CLI and the settings models. Whether each object is valid Kubernetes at all is
``tests/helm/test_render.py``'s job.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import pathlib
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes
import pytest
import yaml
from tests.helm import render

from gpufair import cli
from gpufair.api import names
from gpufair.extender import app as extender_app
from gpufair.extender import settings as extender_settings
from gpufair.operator import owners, webhook
from gpufair.operator import settings as operator_settings

SRC = render.REPO_ROOT / "src" / "gpufair"
MONITORING = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
COMPONENT_LABEL = "app.kubernetes.io/component"


def chart_values() -> dict[str, Any]:
    """The chart's defaults (``values.yaml``)."""
    loaded: dict[str, Any] = yaml.safe_load((render.CHART / "values.yaml").read_text())
    return loaded


def default_objects() -> list[dict[str, Any]]:
    """Every object of the chart installed with its defaults."""
    return render.render_chart({})


def component_objects(
    kind: str, component: str, objects: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The objects of ``kind`` labelled as ``component``'s."""
    return [
        obj
        for obj in (default_objects() if objects is None else objects)
        if obj["kind"] == kind and obj["metadata"]["labels"].get(COMPONENT_LABEL) == component
    ]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """The container ``name`` of a rendered workload."""
    for item in workload["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no container {name!r} in {workload['metadata']['name']}")


# -- values and schema -----------------------------------------------------------------------


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((render.CHART / "values.schema.json").read_text())
    return loaded


def schema_errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema())
    return [
        f"{'.'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(values)
    ]


def test_schema_is_valid_draft7() -> None:
    """Helm validates values with a draft-07 validator; the schema must be one."""
    jsonschema.Draft7Validator.check_schema(schema())
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_default_values_match_the_schema() -> None:
    assert schema_errors(chart_values()) == []


def _with(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(chart_values())
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[leaf] = value
    return values


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        pytest.param("extender.replicas", 2, "greater than the maximum", id="two-extenders"),
        pytest.param("webhook.failurePolicy", "Sometimes", "is not one of", id="failure-policy"),
        pytest.param("scheduler.percentageOfNodesToScore", 101, "greater than", id="score-101"),
        pytest.param("scheduler.extender.httpTimeout", "5 sec", "does not match", id="timeout"),
        pytest.param("scheduler.extender.managedResources", [], "should be non-empty", id="no-gpu"),
        pytest.param("agent.source", "dcgm", "is not one of", id="agent-source"),
        pytest.param("operator.tickSeconds", 0, "less than or equal to the minimum", id="tick-0"),
        pytest.param("operator.replicas", "2", "is not of type", id="replicas-string"),
        pytest.param("operator.metric", {"port": 1}, "Additional properties", id="typo-key"),
        pytest.param("webhook.path", "gpufair-admission", "does not match", id="path-no-slash"),
    ],
)
def test_schema_rejects(path: str, value: Any, complaint: str) -> None:
    errors = schema_errors(_with(path, value))
    assert any(complaint in error for error in errors), errors


def test_without_cert_manager_the_tls_secret_and_ca_are_required() -> None:
    values = _with("webhook.certManager.enabled", False)
    assert any("tls" in error for error in schema_errors(values))
    values["webhook"]["tls"] = {"secretName": "gpufair-webhook-tls", "caBundle": "LS0tLS1CRUdJTg=="}
    assert schema_errors(values) == []


# -- rendered objects ------------------------------------------------------------------------

CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ClusterKopfPeering",
}
CHART_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "helm.sh/chart")


@pytest.mark.parametrize("values_set", [{}, MONITORING], ids=["defaults", "monitoring"])
def test_every_object_has_the_chart_labels_and_its_scope(values_set: dict[str, Any]) -> None:
    for obj in render.render_chart(values_set):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        assert all(label in labels for label in CHART_LABELS), where
        assert ("namespace" in obj["metadata"]) == (obj["kind"] not in CLUSTER_SCOPED), where


WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(component, workload) of every rendered Deployment, DaemonSet and StatefulSet."""
    for obj in default_objects():
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj["metadata"]["labels"][COMPONENT_LABEL], obj


def workload(component: str) -> dict[str, Any]:
    """The one workload of ``component`` (operator, extender, agent, scheduler)."""
    (found,) = [obj for name, obj in workloads() if name == component]
    return found


@pytest.mark.parametrize(("component", "workload"), list(workloads()))
def test_probes_name_container_ports_and_containers_are_locked_down(
    component: str, workload: dict[str, Any]
) -> None:
    for item in workload["spec"]["template"]["spec"]["containers"]:
        ports = {port["name"] for port in item.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            action = item.get(probe, {}).get("httpGet") or item.get(probe, {}).get("tcpSocket")
            if action:
                assert action["port"] in ports, f"{component}: {probe} port {action['port']}"
        context = item.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, component
        assert context.get("readOnlyRootFilesystem") is True, component
        assert context.get("capabilities", {}).get("drop") == ["ALL"], component


@pytest.mark.parametrize(("component", "workload_doc"), list(workloads()))
def test_volume_mounts_name_pod_volumes(component: str, workload_doc: dict[str, Any]) -> None:
    pod = workload_doc["spec"]["template"]["spec"]
    volumes = {volume["name"] for volume in pod.get("volumes", [])}
    for item in pod["containers"]:
        for mount in item.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{component}: {item['name']} mounts {mount['name']}"


@pytest.mark.parametrize(("component", "workload_doc"), list(workloads()))
def test_pod_selectors_match_pod_labels(component: str, workload_doc: dict[str, Any]) -> None:
    selector = workload_doc["spec"]["selector"]["matchLabels"]
    labels = workload_doc["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), component


def test_services_target_named_container_ports() -> None:
    container_ports = {
        port["name"]
        for _, workload in workloads()
        for item in workload["spec"]["template"]["spec"]["containers"]
        for port in item.get("ports", [])
    }
    services = render.find(default_objects(), "Service")
    assert services
    for service in services:
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, port


def test_service_monitor_scrapes_ports_the_services_have() -> None:
    objects = render.render_chart(MONITORING)
    (monitor,) = render.find(objects, "ServiceMonitor")
    services = render.find(objects, "Service")
    service_ports = {port["name"] for service in services for port in service["spec"]["ports"]}
    selector = monitor["spec"]["selector"]
    (expression,) = selector["matchExpressions"]
    selected = [
        service
        for service in services
        if selector["matchLabels"].items() <= service["metadata"]["labels"].items()
        and service["metadata"]["labels"].get(expression["key"]) in expression["values"]
    ]
    assert {service["metadata"]["name"] for service in selected} == {
        "gpufair-operator",
        "gpufair-extender",
    }
    endpoints = monitor["spec"]["endpoints"]
    assert {endpoint["port"] for endpoint in endpoints} <= service_ports
    assert {endpoint["path"] for endpoint in endpoints} == {"/metrics"}


# -- CRDs: one source of truth ---------------------------------------------------------------


def test_chart_crds_are_byte_identical_copies_of_the_generated_ones() -> None:
    """``crds/`` is generated by ``gpufair crds``; the chart ships copies. After ``make crds``:
    ``cp crds/*.yaml helm/gpufair/crds/``."""
    generated = {
        path.name: path.read_bytes() for path in (render.REPO_ROOT / "crds").glob("*.yaml")
    }
    shipped = {
        path.name: path.read_bytes() for path in (render.CHART / "crds").glob("gpufair.dev_*.yaml")
    }
    assert generated, "no generated CRDs in crds/"
    assert sorted(shipped) == sorted(generated)
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"stale chart CRDs {stale}: cp crds/*.yaml helm/gpufair/crds/"


def test_chart_kopf_peering_crd_is_the_operators() -> None:
    """``operator/peering.yaml`` (plain manifests) and the chart install the same kopf CRD."""
    chart_crd = yaml.safe_load(
        (render.CHART / "crds" / "kopf.dev_clusterkopfpeerings.yaml").read_text()
    )
    operator_docs = list(
        yaml.safe_load_all((render.REPO_ROOT / "operator" / "peering.yaml").read_text())
    )
    crds = [doc for doc in operator_docs if doc and doc["kind"] == "CustomResourceDefinition"]
    assert crds == [chart_crd]


# -- the second scheduler and the extender ---------------------------------------------------


def chart_scheduler_config() -> dict[str, Any]:
    (config_map,) = component_objects("ConfigMap", "scheduler")
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return loaded


def example_scheduler_configs() -> list[tuple[pathlib.Path, dict[str, Any]]]:
    found = []
    for path in sorted((render.REPO_ROOT / "extender").rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "KubeSchedulerConfiguration":
                found.append((path, doc))
            elif isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                for text in (doc.get("data") or {}).values():
                    inner = yaml.safe_load(text)
                    if (
                        isinstance(inner, dict)
                        and inner.get("kind") == "KubeSchedulerConfiguration"
                    ):
                        found.append((path, inner))
    return found


def extender_facts(config: dict[str, Any]) -> dict[str, Any]:
    (entry,) = config["extenders"]
    managed = entry["managedResources"]
    return {
        "verbs": {
            key: entry.get(key)
            for key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb")
        },
        "nodeCacheCapable": entry["nodeCacheCapable"],
        "managedResources": sorted((item["name"], item["ignoredByScheduler"]) for item in managed),
    }


def test_chart_scheduler_config_matches_the_design() -> None:
    config = chart_scheduler_config()
    values = chart_values()["scheduler"]
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert values["percentageOfNodesToScore"] == 100
    assert values["name"] == names.SCHEDULER_NAME, "the webhook sets names.SCHEDULER_NAME on pods"
    assert names.DEFAULT_GPU_RESOURCE in values["extender"]["managedResources"]
    facts = extender_facts(config)
    assert [name for name, _ in facts["managedResources"]] == values["extender"]["managedResources"]
    assert facts["nodeCacheCapable"] is True
    assert all(ignored is False for _, ignored in facts["managedResources"])


def extender_routes() -> dict[str, set[str]]:
    """Path -> HTTP methods the extender app serves (from its OpenAPI description)."""
    app = extender_app.create_app(extender_settings.ExtenderSettings(watch=False))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {path: {method.upper() for method in methods} for path, methods in paths.items()}


def test_chart_scheduler_verbs_are_extender_routes() -> None:
    routes = extender_routes()
    verbs = extender_facts(chart_scheduler_config())["verbs"]
    missing = {verb for verb in verbs.values() if "POST" not in routes.get(f"/{verb}", set())}
    assert not missing, f"kube-scheduler would POST {missing}, the extender serves {routes}"


def test_chart_and_extender_example_agree() -> None:
    """Verbs, managedResources and nodeCacheCapable, as the design asks."""
    examples = example_scheduler_configs()
    assert examples, "extender/ has no example KubeSchedulerConfiguration"
    chart = extender_facts(chart_scheduler_config())
    for path, example in examples:
        assert extender_facts(example) == chart, path


def tuning(config: dict[str, Any]) -> dict[str, Any]:
    """The rest of what kube-scheduler does with the extender, profile settings included."""
    (entry,) = config["extenders"]
    (profile,) = config["profiles"]
    return {
        "weight": entry["weight"],
        "httpTimeout": entry["httpTimeout"],
        "ignorable": entry.get("ignorable", False),
        "percentageOfNodesToScore": profile.get(
            "percentageOfNodesToScore", config.get("percentageOfNodesToScore")
        ),
        "schedulerName": profile["schedulerName"],
        "leaderElect": config["leaderElection"]["leaderElect"],
    }


def test_chart_defaults_tune_the_extender_like_the_example() -> None:
    values = chart_values()["scheduler"]
    defaults = {
        "weight": values["extender"]["weight"],
        "httpTimeout": values["extender"]["httpTimeout"],
        "ignorable": values["extender"]["ignorable"],
        "percentageOfNodesToScore": values["percentageOfNodesToScore"],
        "schedulerName": values["name"],
        "leaderElect": values["leaderElection"]["enabled"],
    }
    assert tuning(chart_scheduler_config()) == defaults
    for path, example in example_scheduler_configs():
        assert tuning(example) == defaults, path


def test_extender_probes_are_extender_routes() -> None:
    extender = component_container("extender")
    routes = extender_routes()
    assert extender["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert extender["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for path in ("/readyz", "/healthz", "/metrics"):
        assert "GET" in routes.get(path, set()), path


# -- containers against the CLI and the settings ---------------------------------------------


def subcommand_options(name: str) -> set[str]:
    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(name)
            assert sub is not None, f"`gpufair {name}` is not a registered subcommand"
            return {option for item in sub._actions for option in item.option_strings}
    raise AssertionError("gpufair has no subcommands")


COMPONENTS = [
    pytest.param("operator", operator_settings.OperatorSettings, id="operator"),
    pytest.param("extender", extender_settings.ExtenderSettings, id="extender"),
    pytest.param("agent", None, id="agent"),
]


def component_container(name: str) -> dict[str, Any]:
    """The container that runs ``gpufair <name>``; by default the extender runs in the
    gpufair-scheduler pod, beside kube-scheduler."""
    return container(workload("scheduler" if name == "extender" else name), name)


@pytest.mark.parametrize(("name", "settings_model"), COMPONENTS)
def test_container_arguments_are_cli_options(name: str, settings_model: Any) -> None:
    main = component_container(name)
    args = main["args"]
    assert args[0] == name
    options = subcommand_options(name)
    flags = {arg.split("=", 1)[0] for arg in args[1:] if arg.startswith("-")}
    assert flags <= options, f"`gpufair {name}` has no {flags - options}"


@pytest.mark.parametrize(("name", "settings_model"), COMPONENTS[:2])
def test_gpufair_variables_are_settings_fields(name: str, settings_model: Any) -> None:
    main = component_container(name)
    variables = {item["name"] for item in main["env"] if item["name"].startswith("GPUFAIR_")}
    fields = {f"GPUFAIR_{field.upper()}" for field in settings_model.model_fields}
    assert variables, f"{name} sets no GPUFAIR_ variable"
    assert variables <= fields, f"{settings_model.__name__} has no {variables - fields}"


def test_agent_gets_its_node_name_from_the_downward_api() -> None:
    env = {item["name"]: item for item in container(workload("agent"), "agent")["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_operator_replicas_have_distinct_peering_priorities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf pauses every replica when two live peers share a priority: none would act."""
    statefulset = workload("operator")
    assert statefulset["kind"] == "StatefulSet"
    env = {item["name"]: item for item in container(statefulset, "operator")["env"]}
    source = env["GPUFAIR_PRIORITY"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.labels['apps.kubernetes.io/pod-index']"
    monkeypatch.setenv("GPUFAIR_PRIORITY", "1")  # the label's value, a string
    assert operator_settings.OperatorSettings().priority == 1
    assert chart_values()["operator"]["replicas"] > 1


def test_operator_liveness_probe_is_the_kopf_endpoint() -> None:
    operator = container(workload("operator"), "operator")
    (liveness,) = [arg for arg in operator["args"] if arg.startswith("--liveness=")]
    url = urllib.parse.urlsplit(liveness.split("=", 1)[1])
    assert url.path == operator["livenessProbe"]["httpGet"]["path"]
    probe_port = operator["livenessProbe"]["httpGet"]["port"]
    (named,) = [port for port in operator["ports"] if port["name"] == probe_port]
    assert url.port == named["containerPort"]


# -- the webhook -----------------------------------------------------------------------------


def kopf_mutating_ids() -> list[str]:
    tree = ast.parse((SRC / "operator" / "webhook_handlers.py").read_text())
    return [
        _resolve(keyword.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "kopf.on.mutate"
        for keyword in node.keywords
        if keyword.arg == "id"
    ]


def test_webhook_path_is_the_kopf_handler_id() -> None:
    """kopf serves each admission handler at ``/<handler id>``."""
    assert [chart_values()["webhook"]["path"]] == [f"/{id_}" for id_ in kopf_mutating_ids()]


def test_webhook_honours_the_opt_out_label_and_ignores_failures() -> None:
    (config,) = render.find(default_objects(), "MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    expressions = hook["namespaceSelector"]["matchExpressions"]
    assert {
        "key": names.OPT_OUT_LABEL,
        "operator": "NotIn",
        "values": [webhook.OPT_OUT_VALUE],
    } in expressions
    assert chart_values()["webhook"]["failurePolicy"] == "Ignore"
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["sideEffects"] == "None"


def test_operator_serves_the_webhook_on_the_port_the_service_targets() -> None:
    operator = container(workload("operator"), "operator")
    env = {item["name"] for item in operator["env"]}
    assert {"GPUFAIR_WEBHOOK_PORT", "GPUFAIR_WEBHOOK_CERTFILE", "GPUFAIR_WEBHOOK_PKEYFILE"} <= env
    (service,) = component_objects("Service", "operator")
    assert {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"} in service[
        "spec"
    ]["ports"]


# -- RBAC covers what the code calls, and no more -------------------------------------------

Need = tuple[str, str, str]
"""(API group, resource, verb)."""

_PLURALS = (names.TENANT_QUOTA_PLURAL, names.GPU_POOL_PLURAL)

API_METHODS: dict[str, tuple[Need, ...]] = {
    "read_namespaced_pod": (("", "pods", "get"),),
    "patch_namespaced_pod": (("", "pods", "patch"),),
    "patch_namespace": (("", "namespaces", "patch"),),
    "list_pod_for_all_namespaces": (("", "pods", "list"),),
    "create_namespaced_pod_binding": (("", "pods/binding", "create"),),
    "create_namespaced_pod_eviction": (("", "pods/eviction", "create"),),
    "read_node": (("", "nodes", "get"),),
    "patch_node": (("", "nodes", "patch"),),
    "list_node": (("", "nodes", "list"),),
    "list_namespace": (("", "namespaces", "list"),),
    "create_namespaced_event": (("", "events", "create"),),
    # The plural is an argument: every gpufair resource.
    "list_cluster_custom_object": tuple((names.GROUP, plural, "list") for plural in _PLURALS),
    "patch_cluster_custom_object_status": tuple(
        (names.GROUP, f"{plural}/status", "patch") for plural in _PLURALS
    ),
}
"""What each Kubernetes client method needs; a method missing here fails the scan."""

KOPF_FRAMEWORK: tuple[Need, ...] = (
    ("kopf.dev", "clusterkopfpeerings", "list"),
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "events", "create"),
)
"""kopf itself: peering heartbeats, resource discovery, kopf.event (core/v1 Events)."""

KOPF_WRITING_HANDLERS = {"daemon", "timer", "on.create", "on.update", "on.delete", "on.resume"}
"""Handlers for which kopf keeps finalizers or progress annotations on the object (patch)."""

COMPONENT_SOURCES = {
    "operator": ("operator/*.py", "k8s/writes.py"),
    "extender": ("extender/**/*.py", "state/kube.py"),
    "agent": ("agent/*.py",),
}
READ_VERBS = {"get", "list", "watch"}

_METHOD = re.compile(r"\.((?:create|patch|read|list|delete|replace)_\w+)\b")


def api_method_names() -> set[str]:
    apis = (kubernetes.client.CoreV1Api, kubernetes.client.CustomObjectsApi)
    return {name for api in apis for name in dir(api) if not name.startswith("_")}


def _resolve(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "names":
        return str(getattr(names, node.attr))
    raise AssertionError(f"cannot resolve kopf handler argument {ast.unparse(node)}")


def kopf_needs(text: str) -> set[Need]:
    needs: set[Need] = set()
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if not func.startswith("kopf.") or func in ("kopf.on.mutate", "kopf.on.validate"):
            continue
        kind = func.removeprefix("kopf.")
        if kind in (
            "on.startup",
            "on.cleanup",
            "on.login",
            "on.probe",
            "event",
            "configure",
            "run",
        ):
            continue
        if len(node.args) < 3:
            continue
        for group, plural in _kopf_resources(node.args[:3]):
            needs |= {(group, plural, "list"), (group, plural, "watch")}
            if kind in KOPF_WRITING_HANDLERS:
                needs.add((group, plural, "patch"))
    return needs


def _kopf_resources(args: list[ast.expr]) -> list[tuple[str, str]]:
    """(group, plural) a kopf handler's arguments name: literals or ``names`` constants, or
    ``kind.group, kind.version, kind.plural`` of ``handlers.watch_owners``, which registers
    handlers for each owner kind the API server serves (``owners.OPTIONAL`` at most)."""
    if [ast.unparse(arg) for arg in args] == ["kind.group", "kind.version", "kind.plural"]:
        return [(kind.group, kind.plural) for kind in owners.OPTIONAL]
    group, _, plural = (_resolve(arg) for arg in args)
    return [(group, plural)]


def code_needs(component: str) -> set[Need]:
    """What the component's source calls, from the client methods and kopf handlers in it."""
    known = api_method_names()
    needs: set[Need] = set()
    files = {path for pattern in COMPONENT_SOURCES[component] for path in SRC.glob(pattern)}
    assert files, component
    for path in sorted(files):
        text = path.read_text()
        methods = {name for name in _METHOD.findall(text) if name in known}
        unknown = methods - API_METHODS.keys()
        assert not unknown, f"{path}: teach API_METHODS (and the chart's RBAC) about {unknown}"
        for method in methods:
            found = set(API_METHODS[method])
            if method.startswith("list_") and "watch=True" in text:
                found |= {(group, resource, "watch") for group, resource, _ in found}
            needs |= found
        needs |= kopf_needs(text)
    if needs and component == "operator":
        needs |= set(KOPF_FRAMEWORK)
    return needs


EVERY_FEATURE = {"agent": {"allocation": {"confirm": True, "proxy": True}}}
"""Values that switch on every optional feature that needs more RBAC: the code is scanned whole."""


def granted(component: str) -> set[Need]:
    (role,) = component_objects("ClusterRole", component, render.render_chart(EVERY_FEATURE))
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("component", sorted(COMPONENT_SOURCES))
def test_rbac_covers_every_call(component: str) -> None:
    missing = code_needs(component) - granted(component)
    assert not missing, f"{component} calls what its ClusterRole does not allow: {sorted(missing)}"


@pytest.mark.parametrize("component", sorted(COMPONENT_SOURCES))
def test_rbac_grants_no_write_or_resource_the_code_does_not_use(component: str) -> None:
    needs = code_needs(component)
    used = {(group, resource) for group, resource, _ in needs}
    extra = {
        need
        for need in granted(component)
        if need not in needs and (need[2] not in READ_VERBS or need[:2] not in used)
    }
    assert not extra, f"{component}'s ClusterRole grants more than the code uses: {sorted(extra)}"
    assert all("*" not in part for need in granted(component) for part in need)


@pytest.mark.parametrize(
    ("component", "need"),
    [
        pytest.param("extender", ("", "pods/binding", "create"), id="bind"),
        pytest.param("operator", ("", "pods/eviction", "create"), id="evict"),
        pytest.param("operator", (names.GROUP, "tenantquotas/status", "patch"), id="quota-status"),
        pytest.param("operator", (names.GROUP, "gpupools/status", "patch"), id="pool-status"),
        pytest.param("operator", ("", "pods", "patch"), id="admit"),
        pytest.param("agent", ("", "nodes", "patch"), id="label"),
    ],
)
def test_the_scan_finds_the_calls_that_matter(component: str, need: Need) -> None:
    """The scan itself: the writes the design relies on are found in the code."""
    assert need in code_needs(component)
