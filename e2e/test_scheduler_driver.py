"""The scheduler driver talks to an extender as kube-scheduler v1.36 does (ARCHITECTURE.md §6).

A fake extender (a FastAPI app on a free port, recording every request) stands in for the real
one, so these tests check the driver's side of the wire: payload shapes, which verbs are called
when, and what the driver writes back to the API (condition, events, binding, preemption).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fastapi
import httpx
import pytest

from e2e.harness import apps, processes
from e2e.harness.apiserver import StandInServer
from gpufair.standin import scheduler as sched

pytestmark = pytest.mark.e2e

Json = dict[str, Any]
NODE_CAPTURE = "dgx-a100-8gpu-nv12-12nic-4numa.txt"
SMALL_CAPTURE = "della-2x-a100-pcie-2numa-2nic.txt"  # 2 GPUs
AT_LIMIT = "tenant a at limit 12/12 GPUs in pool h100 (requested 1)"


class FakeExtender:
    """Records ``(verb, payload)``; each verb's answer comes from a replaceable function."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.calls: list[tuple[str, Json]] = []
        self.filter: Callable[[Json], Json] = lambda args: {
            "NodeNames": args["NodeNames"],
            "FailedNodes": {},
            "Error": "",
        }
        self.prioritize: Callable[[Json], list[Json]] = lambda args: [
            {"Host": n, "Score": 0} for n in args["NodeNames"]
        ]
        self.preempt: Callable[[Json], Json] = lambda args: {
            "NodeNameToMetaVictims": args["NodeNameToMetaVictims"]
        }
        self.bind: Callable[[Json], Json] = self._bind_through_the_api
        self.app = fastapi.FastAPI()
        for verb in ("filter", "prioritize", "preempt", "bind"):
            self.app.post(f"/{verb}")(self._route(verb))

    def _route(self, verb: str) -> Callable[[fastapi.Request], Any]:
        async def handle(request: fastapi.Request) -> Any:
            payload = await request.json()
            self.calls.append((verb, payload))
            return getattr(self, verb)(payload)

        return handle

    def _bind_through_the_api(self, args: Json) -> Json:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": args["PodName"], "uid": args["PodUID"]},
            "target": {"kind": "Node", "name": args["Node"]},
        }
        path = f"/api/v1/namespaces/{args['PodNamespace']}/pods/{args['PodName']}/binding"
        answer = httpx.post(self.api_url + path, json=binding)
        return {"Error": "" if answer.status_code == 201 else answer.text}

    def verbs(self) -> list[str]:
        return [verb for verb, _ in self.calls]


@pytest.fixture
def extender(apiserver: StandInServer) -> Iterator[tuple[FakeExtender, str]]:
    fake = FakeExtender(apiserver.url)
    with apps.serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def driver(
    apiserver: StandInServer, extender: tuple[FakeExtender, str], namespace: str
) -> Iterator[sched.SchedulerDriver]:
    """The driver, scoped to the test's namespace (other tests share the stand-in)."""
    with sched.SchedulerDriver(
        api_url=apiserver.url, extender_url=extender[1], namespaces=[namespace]
    ) as d:
        yield d


@pytest.fixture
def scoped(make_gpu_node: Any) -> tuple[str, Callable[..., Json]]:
    """Nodes labelled for this test only; pods made with ``pod()`` select them."""
    label = f"e2e-{uuid.uuid4().hex[:6]}"

    def node(name: str, capture: str = NODE_CAPTURE, **options: Any) -> Json:
        made: Json = make_gpu_node(
            f"{label}-{name}", capture, labels={"gpufair.test/scope": label}, **options
        )
        return made

    return label, node


def pod(name: str, *, scope: str, gpus: int = 1, priority: int = 0, **spec: Any) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": sched.SCHEDULER_NAME,
            "priority": priority,
            "nodeSelector": {"gpufair.test/scope": scope},
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


def create(apiserver: StandInServer, namespace: str, body: Json) -> Json:
    answer = httpx.post(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods", json=body)
    assert answer.status_code == 201, answer.text
    result: Json = answer.json()
    return result


def read(apiserver: StandInServer, namespace: str, name: str) -> Json:
    result: Json = httpx.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods/{name}").json()
    return result


def events(apiserver: StandInServer, namespace: str, reason: str) -> list[Json]:
    items: list[Json] = httpx.get(
        f"{apiserver.url}/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": f"reason={reason}"},
    ).json()["items"]
    return items


def others(apiserver: StandInServer, scope: str) -> int:
    nodes = httpx.get(f"{apiserver.url}/api/v1/nodes").json()["items"]
    return sum(1 for n in nodes if n["metadata"]["labels"].get("gpufair.test/scope") != scope)


def test_filter_prioritize_bind_payloads(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("a")
    node("b")
    fake.prioritize = lambda args: [
        {"Host": n, "Score": 7 if n.endswith("-b") else 3} for n in args["NodeNames"]
    ]
    created = create(apiserver, namespace, pod("train", scope=scope, gpus=4))
    create(
        apiserver,
        namespace,
        pod("gated", scope=scope, schedulingGates=[{"name": "gpufair.dev/admission"}]),
    )
    create(
        apiserver,
        namespace,
        {
            **pod("elsewhere", scope=scope),
            "spec": {**pod("x", scope=scope)["spec"], "schedulerName": "default-scheduler"},
        },
    )

    attempts = driver.schedule_pending()

    assert [a.name for a in attempts] == ["train"], "gated and foreign pods are not scheduled"
    assert attempts[0].node == f"{scope}-b"
    assert fake.verbs() == ["filter", "prioritize", "bind"]
    (_, filter_args), (_, prioritize_args), (_, bind_args) = fake.calls
    assert set(filter_args) == {"Pod", "Nodes", "NodeNames"}
    assert filter_args["Nodes"] is None, "nodeCacheCapable: names only"
    assert filter_args["NodeNames"] == [f"{scope}-a", f"{scope}-b"]
    assert filter_args["Pod"]["metadata"]["uid"] == created["metadata"]["uid"]
    assert filter_args["Pod"]["spec"]["schedulerName"] == "gpufair-scheduler", "camelCase pod"
    assert prioritize_args == filter_args
    assert bind_args == {
        "PodName": "train",
        "PodNamespace": namespace,
        "PodUID": created["metadata"]["uid"],
        "Node": f"{scope}-b",
    }
    assert read(apiserver, namespace, "train")["spec"]["nodeName"] == f"{scope}-b"
    scheduled = events(apiserver, namespace, "Scheduled")
    assert [e["message"] for e in scheduled] == [
        f"Successfully assigned {namespace}/train to {scope}-b"
    ]


def test_one_feasible_node_skips_prioritize(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("a")
    node("b")
    fake.filter = lambda args: {
        "NodeNames": args["NodeNames"][:1],
        "FailedNodes": {args["NodeNames"][1]: "no free NVLink island"},
    }
    create(apiserver, namespace, pod("p", scope=scope))
    [attempt] = driver.schedule_pending()
    assert attempt.node == f"{scope}-a"
    assert fake.verbs() == ["filter", "bind"]


def test_a_pod_without_managed_resources_never_reaches_the_extender(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    """kube-scheduler calls an extender with managedResources only for pods that request one
    (IsInterested) and binds the others itself; gpufair's bind refuses such pods."""
    fake, _ = extender
    scope, node = scoped
    node("a")
    create(apiserver, namespace, pod("web", scope=scope, containers=[{"name": "c", "image": "x"}]))
    [attempt] = driver.schedule_pending()
    assert attempt.node == f"{scope}-a"
    assert fake.verbs() == []
    assert read(apiserver, namespace, "web")["spec"]["nodeName"] == f"{scope}-a"


def test_filter_rejection_is_reported_like_kube_scheduler(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("a")
    node("b")
    node("tiny", SMALL_CAPTURE)
    fake.filter = lambda args: {
        "NodeNames": None,
        "FailedNodes": {args["NodeNames"][0]: AT_LIMIT},
        "FailedAndUnresolvableNodes": {args["NodeNames"][1]: AT_LIMIT},
    }
    create(apiserver, namespace, pod("p", scope=scope, gpus=4))

    [attempt] = driver.schedule_pending()

    extra = others(apiserver, scope)
    mismatch = [f"{extra} node(s) didn't match Pod's node affinity/selector"] if extra else []
    reasons = sorted(["1 Insufficient nvidia.com/gpu", f"2 {AT_LIMIT}", *mismatch])
    total = 3 + extra
    expected = (
        f"0/{total} nodes are available: {', '.join(reasons)}. preemption: 0/{total} "
        f"nodes are available: "
    )
    assert attempt.node is None
    assert attempt.message.startswith(expected)
    assert "preempt" not in fake.verbs(), "a pod rejected by the extender never triggers preempt"
    assert fake.verbs() == ["filter", "filter"], "the status update requeues: a second filter"
    condition = next(
        c
        for c in read(apiserver, namespace, "p")["status"]["conditions"]
        if c["type"] == "PodScheduled"
    )
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == attempt.message
    failed = events(apiserver, namespace, "FailedScheduling")
    assert [e["type"] for e in failed] == ["Warning"]
    assert failed[0]["message"] == attempt.message
    assert failed[0]["count"] == 2, "the repeated rejection bumps the event's count"


def test_extender_error_fails_the_cycle(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("a")
    fake.filter = lambda args: {"NodeNames": None, "Error": "cache not synced"}
    create(apiserver, namespace, pod("p", scope=scope))
    [attempt] = driver.schedule_pending()
    assert attempt.error
    assert "cache not synced" in attempt.message
    assert read(apiserver, namespace, "p")["spec"].get("nodeName") is None


def test_preemption_asks_the_extender_with_meta_victims(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("small", SMALL_CAPTURE)
    victim = create(
        apiserver, namespace, pod("low", scope=scope, gpus=2, nodeName=f"{scope}-small")
    )
    assert read(apiserver, namespace, "low")["status"]["phase"] == "Running"
    create(apiserver, namespace, pod("high", scope=scope, gpus=2, priority=100))

    [attempt] = driver.schedule_pending()

    assert attempt.node is None
    assert attempt.preemption == sched.Preemption(f"{scope}-small", (f"{namespace}/low",))
    assert fake.verbs() == ["preempt"], "no node passed kube-scheduler's own filters"
    _, args = fake.calls[0]
    assert args["NodeNameToVictims"] is None
    assert args["NodeNameToMetaVictims"] == {
        f"{scope}-small": {"Pods": [{"UID": victim["metadata"]["uid"]}], "NumPDBViolations": 0}
    }
    assert args["Pod"]["metadata"]["name"] == "high"
    assert httpx.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods/low").status_code == 404
    assert read(apiserver, namespace, "high")["status"]["nominatedNodeName"] == f"{scope}-small"

    [retry] = driver.schedule_pending()
    assert retry.node == f"{scope}-small"


def test_preempt_answer_may_only_narrow(
    apiserver: StandInServer,
    driver: sched.SchedulerDriver,
    extender: tuple[FakeExtender, str],
    scoped: tuple[str, Callable[..., Json]],
    namespace: str,
) -> None:
    fake, _ = extender
    scope, node = scoped
    node("small", SMALL_CAPTURE)
    create(apiserver, namespace, pod("low", scope=scope, gpus=2, nodeName=f"{scope}-small"))
    create(apiserver, namespace, pod("high", scope=scope, gpus=2, priority=100))
    fake.preempt = lambda args: {"NodeNameToMetaVictims": {}}  # the policy protects the victim

    [attempt] = driver.schedule_pending()

    assert attempt.preemption is None
    assert "1 No preemption victims found for incoming pod" in attempt.message
    assert read(apiserver, namespace, "low")["status"]["phase"] == "Running"


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        pytest.param(
            {"a": "x", "b": "x", "c": "y"},
            "0/3 nodes are available: 1 y, 2 x.",
            id="grouped-and-sorted",
        ),
        pytest.param(
            {"a": "Insufficient cpu, Insufficient nvidia.com/gpu"},
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu.",
            id="several-resources-per-node",
        ),
    ],
)
def test_fit_error_text(reasons: dict[str, str], expected: str) -> None:
    assert sched.fit_error(len(reasons), reasons) == expected


def test_driver_against_the_real_extender(
    apiserver: StandInServer,
    apply_crds: Any,
    kubectl: Any,
    scoped: tuple[str, Callable[..., Json]],
    run_component: Any,
    namespace: str,
) -> None:
    """Smoke: ``gpufair extender`` as a process, scheduled through by the driver."""
    apply_crds()
    scope, node = scoped
    node("dgx")
    pool, tenant = f"{scope}-pool", f"{scope}-tenant"
    kubectl.apply(f"""
apiVersion: gpufair.dev/v1alpha1
kind: GPUPool
metadata: {{name: {pool}}}
spec:
  nodeSelector: {{matchLabels: {{gpufair.test/scope: {scope}}}}}
---
apiVersion: gpufair.dev/v1alpha1
kind: TenantQuota
metadata: {{name: {tenant}}}
spec:
  namespaces: [{namespace}]
  pools: [{{name: {pool}, guaranteed: 8}}]
""")
    try:
        port = processes.free_port()
        run_component(
            ["extender", "--host", "127.0.0.1", "--port", str(port)],
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
        create(apiserver, namespace, pod("train", scope=scope, gpus=4))
        with sched.SchedulerDriver(
            api_url=apiserver.url, extender_url=f"http://127.0.0.1:{port}", namespaces=[namespace]
        ) as driver:
            [attempt] = driver.schedule_pending()
        assert attempt.node == f"{scope}-dgx", attempt.message
        placed = read(apiserver, namespace, "train")
        assert placed["spec"]["nodeName"] == f"{scope}-dgx"
        assert len(placed["metadata"]["annotations"]["gpufair.dev/gpus"].split(",")) == 4
    finally:
        kubectl("delete", "tenantquota", tenant, "--ignore-not-found", check=False)
        kubectl("delete", "gpupool", pool, "--ignore-not-found", check=False)
