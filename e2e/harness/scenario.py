"""Building blocks of the scenario tests (``e2e/test_scenario_*.py``).

One stand-in serves the session; each scenario module starts one ``gpufair operator`` and one
``gpufair extender`` (:func:`start_stack`, from a module-scoped fixture) and every test brings
its own nodes, pools, quotas and namespaces with unique names. Quotas and pools are applied as
an admin would (``kubectl apply -f``); outcomes are read through the API (statuses, pods,
events) and the components' ``/metrics``.

The operator runs with its admission webhook over HTTPS with a self-signed certificate made by
``openssl`` for ``127.0.0.1``. As on a real install (the Helm chart, ``operator/webhook.yaml``),
the operator does not register the webhook itself: the harness applies the
``MutatingWebhookConfiguration`` of ``operator/webhook.yaml`` as the admin, pointed at the
operator with the certificate as ``caBundle``, so the stand-in verifies the webhook like a real
API server would, and the operator needs no permission on webhook configurations.

Each component calls the stand-in with its own identity
(``gpufair.standin.apiserver.identity``): the operator and the extender with their kubeconfigs,
the scheduler driver with the scheduler's token, so the RBAC proof
(``e2e/test_rbac_least_privilege.py``) sees who did what.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

import httpx
import pytest
import yaml
from prometheus_client import parser as prometheus_parser

from e2e.harness import processes, waiting
from gpufair.api import names
from gpufair.standin import scheduler
from gpufair.standin import webhook as demo_webhook
from gpufair.standin.apiserver import identity as standin_identity

POOL_LABEL = "gpufair.test/scenario-pool"
WEBHOOK_CONFIGURATION = demo_webhook.CONFIGURATION
"""The operator's MutatingWebhookConfiguration (``operator/webhook.yaml``, registered by
:func:`register_webhook`)."""
WEBHOOK_MANIFEST = processes.REPO_ROOT / "operator" / "webhook.yaml"

Json = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


def missing_tool(tool: str, consequence: str) -> NoReturn:
    """Skip on a developer's machine without ``tool``; fail in CI, where
    ``scripts/ensure-tools.sh`` must have installed it (a skip there would hide the gap)."""
    message = f"{tool} is not installed ({consequence}); scripts/ensure-tools.sh installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------------------------
# components


def self_signed_certificate(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A certificate and key for ``127.0.0.1`` (the webhook's HTTPS), made with ``openssl``
    (:func:`gpufair.standin.webhook.self_signed_certificate`; skipped or failed without it)."""
    if demo_webhook.openssl() is None:
        missing_tool("openssl", "no certificate for the operator's webhook")
    return demo_webhook.self_signed_certificate(directory)


@dataclasses.dataclass
class Stack:
    """The operator and the extender of one scenario module."""

    api_url: str
    extender: processes.Component
    extender_url: str
    operator: processes.Component | None = None
    operator_metrics_url: str | None = None
    operator_webhook: Webhook | None = None

    def components(self) -> list[processes.Component]:
        return [c for c in (self.operator, self.extender) if c is not None]

    def driver(self, namespaces: Iterable[str]) -> scheduler.SchedulerDriver:
        """A kube-scheduler stand-in for these namespaces (close it, or use ``with``)."""
        return scheduler.SchedulerDriver(
            api_url=self.api_url,
            extender_url=self.extender_url,
            namespaces=list(namespaces),
            api_headers=standin_identity.bearer("scheduler"),
        )

    def operator_metrics(self) -> Metrics:
        assert self.operator_metrics_url is not None, "this stack runs no operator"
        return Metrics.fetch(self.operator_metrics_url)

    def extender_metrics(self) -> Metrics:
        return Metrics.fetch(f"{self.extender_url}/metrics")


@dataclasses.dataclass(frozen=True)
class Webhook:
    """Where the operator serves its admission webhook, and the certificate it serves."""

    port: int
    certificate: pathlib.Path


def operator_component(
    *,
    apiserver: Any,
    log_dir: pathlib.Path,
    webhook: bool,
    tick: float = 1.0,
) -> tuple[processes.Component, str, Webhook | None]:
    """``gpufair operator`` (not started yet), its metrics URL and its webhook (if it serves
    one, which :func:`register_webhook` registers)."""
    metrics_port = processes.free_port()
    argv = [
        *processes.gpufair_command(),
        "operator",
        "--metrics-port",
        str(metrics_port),
        "--metrics-host",
        "127.0.0.1",
        "--tick",
        str(tick),
    ]
    served: Webhook | None = None
    if webhook:
        cert, key = self_signed_certificate(log_dir / "tls")
        served = Webhook(port=processes.free_port(), certificate=cert)
        argv += demo_webhook.operator_arguments(cert=cert, key=key, port=served.port, managed=False)
    else:
        argv.append("--dev")
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    component = processes.Component(
        name="gpufair-operator",
        argv=tuple(argv),
        log_path=log_dir / "gpufair-operator.log",
        env=_env(
            apiserver,
            {
                "GPUFAIR_STATUS_INTERVAL_SECONDS": "1",
                "GPUFAIR_TRUSTED_NAMESPACE": standin_identity.RELEASE_NAMESPACE,
            },
            identity="operator",
        ),
        cwd=processes.REPO_ROOT,
        ready_url=url,
        ready_timeout=60.0,
    )
    return component, url, served


def extender_component(*, apiserver: Any, log_dir: pathlib.Path) -> tuple[processes.Component, str]:
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    component = processes.Component(
        name="gpufair-extender",
        argv=(
            *processes.gpufair_command(),
            "extender",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ),
        log_path=log_dir / "gpufair-extender.log",
        env=_env(apiserver, {}, identity="extender"),
        cwd=processes.REPO_ROOT,
        ready_url=f"{url}/readyz",
        ready_timeout=60.0,
    )
    return component, url


def _env(apiserver: Any, extra: Mapping[str, str], *, identity: str) -> dict[str, str]:
    """The environment of a component that calls the stand-in as ``identity`` (its own
    kubeconfig, so the stand-in records its calls under the chart's ServiceAccount)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **apiserver.env(identity), **extra}


@contextlib.contextmanager
def start_stack(
    *,
    apiserver: Any,
    kubectl: Any,
    log_dir: pathlib.Path,
    operator: bool = True,
    webhook: bool = True,
) -> Iterator[Stack]:
    """Start the extender (and the operator, with its webhook unless ``webhook=False``), both
    at once; stopped (and the webhook configuration removed) when the block ends."""
    with contextlib.ExitStack() as stack:
        extender, extender_url = extender_component(apiserver=apiserver, log_dir=log_dir)
        stack.callback(extender.stop)
        result = Stack(api_url=apiserver.url, extender=extender, extender_url=extender_url)
        if operator:
            component, metrics_url, served = operator_component(
                apiserver=apiserver, log_dir=log_dir, webhook=webhook
            )
            if served is not None:  # registered as an installer would, removed at the end
                register_webhook(kubectl, served)
                stack.callback(
                    kubectl,
                    "delete",
                    "mutatingwebhookconfiguration",
                    WEBHOOK_CONFIGURATION,
                    "--ignore-not-found",
                    check=False,
                )
            stack.callback(component.stop)
            result.operator, result.operator_metrics_url = component, metrics_url
            result.operator_webhook = served
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as starting:
            started = [starting.submit(c.start) for c in result.components()]
        for future in started:
            future.result()  # a component that did not become ready fails here
        if operator and webhook:
            wait_for_webhook(kubectl)
        yield result


def register_webhook(kubectl: Any, webhook: Webhook) -> None:
    """Apply the MutatingWebhookConfiguration of ``operator/webhook.yaml`` (the one the Helm
    chart renders too) as the admin, each hook pointed at the local operator
    (``https://127.0.0.1:PORT/<path of its service>``) with its certificate as ``caBundle``."""
    documents = yaml.safe_load_all(WEBHOOK_MANIFEST.read_text())
    configuration = next(
        doc for doc in documents if doc and doc.get("kind") == "MutatingWebhookConfiguration"
    )
    configuration["metadata"].pop("annotations", None)  # no cert-manager here
    bundle = base64.b64encode(webhook.certificate.read_bytes()).decode()
    for hook in configuration["webhooks"]:
        path = hook["clientConfig"].get("service", {}).get("path", "/")
        hook["clientConfig"] = {
            "url": f"https://{demo_webhook.HOST}:{webhook.port}{path}",
            "caBundle": bundle,
        }
    kubectl.apply(yaml.safe_dump(configuration, sort_keys=False))


def wait_for_webhook(kubectl: Any, *, timeout: float = 30.0) -> None:
    """Until the registered webhook is served: every hook's URL answers over HTTPS (any HTTP
    status; a pod created before would pass ungated, ``failurePolicy: Ignore``)."""

    def fetch() -> Json | None:
        found = kubectl(
            "get", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "-o", "json", check=False
        )
        if found.returncode != 0:
            return None
        configuration: Json = json.loads(found.stdout)
        return configuration

    demo_webhook.wait_registered(fetch, timeout=timeout, interval=0.2)
    urls = [hook["clientConfig"]["url"] for hook in (fetch() or {}).get("webhooks") or []]
    waiting.wait_for(
        lambda: all(_answers(url) for url in urls),
        timeout=timeout,
        what=f"the operator's webhook serving at {', '.join(urls)}",
    )


def _answers(url: str) -> bool:
    try:
        httpx.get(url, verify=False, timeout=2.0)  # only "is it up": no trust needed
    except httpx.TransportError:
        return False
    return True


def attach_logs(request: pytest.FixtureRequest, stack: Stack) -> None:
    """Show the module's component logs when this test fails (as ``run_component`` does)."""
    conftest = sys.modules.get("e2e.conftest")
    register = getattr(conftest, "_register_log", None)
    if register is None:
        return
    for component in stack.components():
        register(request.node, component.name, component.log_path)


# ---------------------------------------------------------------------------------------------
# manifests (kubectl apply -f)


def pool_manifest(
    name: str, *, mode: str = "Pack", topology: str = "Preferred", label: str = POOL_LABEL
) -> str:
    """A GPUPool selecting the nodes labelled ``label=name``."""
    return json.dumps(
        {
            "apiVersion": names.API_VERSION,
            "kind": names.GPU_POOL_KIND,
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"matchLabels": {label: name}},
                "placement": {"mode": mode, "topology": topology},
            },
        }
    )


def quota_manifest(
    name: str,
    *,
    namespaces: Iterable[str],
    pools: Iterable[Mapping[str, Any]],
    weight: float = 1,
    on_limit: str = "Queue",
    budget: Mapping[str, Any] | None = None,
    min_runtime_seconds: int = 0,
) -> str:
    spec: Json = {
        "namespaces": list(namespaces),
        "weight": weight,
        "pools": [dict(p) for p in pools],
        "admission": {"onLimit": on_limit},
        "preemption": {"reclaim": True, "minRuntimeSeconds": min_runtime_seconds},
    }
    if budget is not None:
        spec["budget"] = dict(budget)
    return json.dumps(
        {
            "apiVersion": names.API_VERSION,
            "kind": names.TENANT_QUOTA_KIND,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


class Cleanup(contextlib.ExitStack):
    """Deletes what a test created (cluster-scoped objects, namespaces), newest first.

    Objects are applied with kubectl, as an admin would; deletions go through the client
    (a kubectl process per deletion would add seconds to every test)."""

    def __init__(self, kubectl: Any, k8s: Any) -> None:
        super().__init__()
        self.kubectl = kubectl
        self.k8s = k8s

    def apply(self, manifest: str) -> None:
        self.kubectl.apply(manifest)
        body = json.loads(manifest)
        plural = {
            names.GPU_POOL_KIND: names.GPU_POOL_PLURAL,
            names.TENANT_QUOTA_KIND: names.TENANT_QUOTA_PLURAL,
        }[body["kind"]]
        self.callback(
            self.quietly,
            self.k8s.custom.delete_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            plural,
            body["metadata"]["name"],
        )

    def namespace(self, prefix: str = "e2e") -> str:
        name = unique(prefix)
        self.kubectl("create", "namespace", name)
        self.callback(self.quietly, self.k8s.core.delete_namespace, name)
        return name

    @staticmethod
    def quietly(delete: Callable[..., Any], *args: str) -> None:
        """``delete(*args)``, ignoring a 404 (already gone)."""
        try:
            delete(*args)
        except Exception as error:  # already gone
            if getattr(error, "status", None) != 404:
                raise


# ---------------------------------------------------------------------------------------------
# pods


def owner_and_borrower(
    cleanup: Cleanup, pool: str, *, guarantee: int
) -> tuple[str, str, dict[str, str]]:
    """A GPUPool ``pool``, an owner tenant guaranteed ``guarantee`` GPUs in it and a borrower
    with none, each in a namespace of its own: (owner, borrower, namespace by tenant)."""
    owner, borrower = unique("owner"), unique("borrower")
    spaces = {tenant: cleanup.namespace() for tenant in (owner, borrower)}
    cleanup.apply(pool_manifest(pool))
    cleanup.apply(
        quota_manifest(
            owner, namespaces=[spaces[owner]], pools=[{"name": pool, "guaranteed": guarantee}]
        )
    )
    cleanup.apply(quota_manifest(borrower, namespaces=[spaces[borrower]], pools=[{"name": pool}]))
    return owner, borrower, spaces


def gpu_pod(
    name: str,
    gpus: int,
    *,
    gated: bool = False,
    node: str | None = None,
    indices: Iterable[int] | None = None,
    scheduler_name: str | None = names.SCHEDULER_NAME,
) -> Json:
    """A pod requesting ``gpus`` GPUs. ``node`` + ``indices``: already bound, as bind leaves it."""
    metadata: Json = {"name": name}
    spec: Json = {
        "containers": [
            {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
        ],
    }
    if scheduler_name is not None:
        spec["schedulerName"] = scheduler_name
    if gated:
        spec["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
    if node is not None:
        spec["nodeName"] = node
        if indices is not None:
            metadata["annotations"] = {names.GPUS_ANNOTATION: ",".join(map(str, indices))}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def read_pod(k8s: Any, namespace: str, name: str) -> Json:
    result: Json = k8s.api_client.sanitize_for_serialization(
        k8s.core.read_namespaced_pod(name, namespace)
    )
    return result


def submit(k8s: Any, namespace: str, name: str, gpus: int) -> Json:
    """Create a GPU pod as a user would (no scheduler name, no gate) in a tenant's namespace;
    the operator's webhook must send it to the gpufair scheduler behind the admission gate."""
    created = k8s.api_client.sanitize_for_serialization(
        k8s.core.create_namespaced_pod(namespace, gpu_pod(name, gpus, scheduler_name=None))
    )
    assert created["spec"].get("schedulerName") == names.SCHEDULER_NAME, "set by the webhook"
    assert is_gated(created), "gated by the webhook"
    result: Json = created
    return result


def pods(k8s: Any, namespace: str) -> list[Json]:
    items = k8s.core.list_namespaced_pod(namespace).items
    return [k8s.api_client.sanitize_for_serialization(p) for p in items]


def is_gated(pod: Mapping[str, Any]) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == names.ADMISSION_GATE for g in gates)


def gpu_indices(pod: Mapping[str, Any]) -> frozenset[int]:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(names.GPUS_ANNOTATION)
    return frozenset(int(i) for i in text.split(",")) if text else frozenset()


def running_on_nodes(k8s: Any, namespaces: Iterable[str]) -> list[Json]:
    """Bound, not terminated pods of these namespaces."""
    return [
        pod
        for ns in namespaces
        for pod in pods(k8s, ns)
        if (pod.get("spec") or {}).get("nodeName")
        and (pod.get("status") or {}).get("phase") not in TERMINAL
    ]


def shared_gpus(k8s: Any, nodes: Iterable[str]) -> dict[str, list[int]]:
    """GPU indices held by two or more non-terminal pods (of any namespace) on these nodes."""
    wanted = set(nodes)
    holders: dict[tuple[str, int], int] = collections.Counter()
    for item in k8s.core.list_pod_for_all_namespaces().items:
        pod = k8s.api_client.sanitize_for_serialization(item)
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in wanted or (pod.get("status") or {}).get("phase") in TERMINAL:
            continue
        for index in gpu_indices(pod):
            holders[(node, index)] += 1
    found: dict[str, list[int]] = {}
    for (node, index), count in sorted(holders.items()):
        if count > 1:
            found.setdefault(node, []).append(index)
    return found


def events_of(k8s: Any, namespace: str, name: str) -> list[Json]:
    """Events about the pod ``namespace/name`` (core/v1), oldest first."""
    items = k8s.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    ).items
    return [k8s.api_client.sanitize_for_serialization(e) for e in items]


def islands(node: Mapping[str, Any]) -> dict[str, frozenset[int]]:
    """NVLink islands of a node, from its gpufair topology labels (``gpu-N.nvlink=X``)."""
    found: dict[str, set[int]] = {}
    prefix = f"{names.GROUP}/gpu-"
    for key, value in ((node.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith(prefix) and key.endswith(".nvlink"):
            index = int(key[len(prefix) : -len(".nvlink")])
            found.setdefault(value, set()).add(index)
    return {island: frozenset(gpus) for island, gpus in found.items()}


# ---------------------------------------------------------------------------------------------
# custom resources and metrics


def status_of(k8s: Any, plural: str, name: str) -> Json:
    body: Json = k8s.custom.get_cluster_custom_object(names.GROUP, names.VERSION, plural, name)
    return body.get("status") or {}


def quota_status(k8s: Any, name: str) -> Json:
    return status_of(k8s, names.TENANT_QUOTA_PLURAL, name)


def pool_status(k8s: Any, name: str) -> Json:
    return status_of(k8s, names.GPU_POOL_PLURAL, name)


def pool_entry(status: Mapping[str, Any], pool: str) -> Json:
    """The per-pool part of a TenantQuota status (``{}`` before the first pass)."""
    return next((dict(e) for e in status.get("pools") or [] if e.get("name") == pool), {})


def condition(status: Mapping[str, Any], kind: str) -> Json | None:
    return next((dict(c) for c in status.get("conditions") or [] if c.get("type") == kind), None)


def seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclasses.dataclass(frozen=True)
class Metrics:
    """One scrape of a ``/metrics`` endpoint."""

    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def fetch(cls, url: str) -> Metrics:
        text = httpx.get(url, timeout=5.0).text
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in prometheus_parser.text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(samples)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when absent (counters not incremented yet)."""
        return self.get(name, **labels) or 0.0


def wait_known(k8s: Any, *tenants: str, timeout: float = 30.0) -> None:
    """Until the operator has reconciled these quotas (their status says ``Ready``): from then
    on its webhook knows which namespaces they own. (A pod created in the instant between
    ``kubectl apply`` of a quota and the operator's watch event is not gpufair's yet.)"""
    for tenant in tenants:
        waiting.wait_for(
            lambda tenant=tenant: (
                (condition(quota_status(k8s, tenant), "Ready") or {}).get("status") == "True"
            ),
            timeout=timeout,
            interval=0.1,
            what=f"TenantQuota {tenant} reconciled",
        )


def settle(
    probe: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    driver: scheduler.SchedulerDriver | None = None,
    interval: float = 0.25,
) -> Any:
    """``waiting.wait_for`` that runs a scheduling round before every probe (when a driver is
    given), as kube-scheduler would keep doing while the test waits."""

    def step() -> Any:
        if driver is not None:
            driver.schedule_pending()
        return probe()

    return waiting.wait_for(step, timeout=timeout, interval=interval, what=what)


def passes(stack: Stack) -> float:
    """Reconcile passes the operator has finished (the duration histogram's count)."""
    return stack.operator_metrics().value("gpufair_operator_reconcile_duration_seconds_count")


def wait_passes(stack: Stack, count: int, *, timeout: float = 30.0) -> None:
    """Until the operator has finished ``count`` more passes than now."""
    start = passes(stack)
    waiting.wait_for(
        lambda: passes(stack) >= start + count,
        timeout=timeout,
        interval=0.2,
        what=f"{count} more reconcile passes",
    )
