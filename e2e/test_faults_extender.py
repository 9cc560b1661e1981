"""Issue 13 deliverable 2, extender side: faults between the extender and the API server.

Real processes: a stand-in API server of its own (bookmarks every 0.5 s, 30 events kept per
resource so a resumed watch can get 410 Gone) and the extender (``--staleness-bound 3``, watches
ending every 2 s), talking through a TCP proxy the tests break (:mod:`e2e.harness.proxy`). The
tests bind through the extender's ``/bind`` as kube-scheduler would, and bind other pods
directly at the API while the extender cannot see them, so a cache that did not converge would
hand their GPUs out again.

Bounds, each asserted by polling up to it:

- API server unreachable: ``/readyz`` is 503 within STALENESS + 3 s, and filter answers an
  ``Error`` naming the staleness within 2.5 s of being asked (kube-scheduler waits 5 s);
- API server back, watches dropped, or 410 on resume: within RECOVERY seconds, without a
  restart, ``/readyz`` is 200 again and the extender's free GPUs on the node are the API
  server's (filter: a pod asking one more GPU does not fit, one asking exactly that does);
  the next bind then takes no GPU another pod holds;
- extender restarted between filter and bind: bind after the restart takes free GPUs only.

Always: no GPU index is held by two pods on any node.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from e2e.harness import nodes, processes, proxy, scenario
from e2e.harness.waiting import wait_for
from gpufair.api import names
from gpufair.standin import launch
from gpufair.standin.apiserver import kubeconfig as standin_kubeconfig

STALENESS = 3.0
RECOVERY = 15.0
DGX1 = "dgx1-v100-8gpu-mlx5.txt"
POOL, TENANT, NAMESPACE = "faults", "faulty", "faulty"
Json = dict[str, Any]


class Cluster:
    """The stand-in, the proxy in front of it, the extender behind the proxy, an admin client."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = workdir
        self.server = launch.start(
            workdir=workdir / "standin", quiet=True, bookmark_seconds=0.5, watch_events=30
        )
        self.proxy = proxy.Proxy(int(self.server.url.rsplit(":", 1)[1])).start()
        proxied = standin_kubeconfig.write(workdir / "proxied" / "kubeconfig", self.proxy.url)
        api = kubernetes.config.new_client_from_config(config_file=str(self.server.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.crds = kubernetes.client.ApiextensionsV1Api(api)
        self.port = processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extender = processes.Component(
            name="gpufair-extender-faults",
            argv=(
                *processes.gpufair_command(),
                "extender",
                "--port",
                str(self.port),
                "--staleness-bound",
                str(STALENESS),
            ),
            log_path=workdir / "gpufair-extender-faults.log",
            env={
                "KUBECONFIG": str(standin_kubeconfig.path_of(proxied, "extender")),
                "GPUFAIR_WATCH_TIMEOUT_SECONDS": "2",
                "GPUFAIR_RELIST_BACKOFF_SECONDS": "0.2",
                "PYTHONUNBUFFERED": "1",
            },
            cwd=processes.REPO_ROOT,
            ready_url=f"{self.url}/readyz",
            ready_timeout=60.0,
        )

    def populate(self) -> None:
        for path in sorted((processes.REPO_ROOT / "crds").glob("gpufair.dev_*.yaml")):
            self.crds.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        for plural, manifest in (
            (names.GPU_POOL_PLURAL, scenario.pool_manifest(POOL)),
            (
                names.TENANT_QUOTA_PLURAL,
                scenario.quota_manifest(TENANT, namespaces=[NAMESPACE], pools=[{"name": POOL}]),
            ),
        ):
            wait_for(
                lambda plural=plural, manifest=manifest: self.custom.create_cluster_custom_object(
                    names.GROUP, names.VERSION, plural, json.loads(manifest)
                ),
                timeout=10,
                what=f"{plural} created (CRD served)",
            )

    def node(self, name: str) -> str:
        self.core.create_node(nodes.gpu_node(name, DGX1, labels={scenario.POOL_LABEL: POOL}))
        return name

    def pending(self, name: str, gpus: int) -> Json:
        pod = self.core.create_namespaced_pod(NAMESPACE, scenario.gpu_pod(name, gpus))
        result: Json = pod.to_dict()
        return result

    def bound_elsewhere(self, name: str, node: str, indices: list[int]) -> None:
        """A pod bound with its GPUs recorded, not through this extender."""
        self.core.create_namespaced_pod(
            NAMESPACE, scenario.gpu_pod(name, len(indices), node=node, indices=indices)
        )

    def held(self, node: str) -> dict[str, frozenset[int]]:
        found: dict[str, frozenset[int]] = {}
        for pod in self.core.list_namespaced_pod(NAMESPACE).items:
            notes = pod.metadata.annotations or {}
            if pod.spec.node_name == node and names.GPUS_ANNOTATION in notes:
                found[pod.metadata.name] = frozenset(
                    int(i) for i in notes[names.GPUS_ANNOTATION].split(",")
                )
        return found

    def free_for_us(self, node: str) -> list[int]:
        taken = frozenset().union(*self.held(node).values())
        return [i for i in range(8) if i not in taken]

    # -- the extender, as kube-scheduler calls it ----------------------------------------------

    def bind(self, pod: Json, node: str) -> str:
        meta = pod["metadata"]
        answer = httpx.post(
            f"{self.url}/bind",
            json={
                "PodName": meta["name"],
                "PodNamespace": meta["namespace"],
                "PodUID": meta["uid"],
                "Node": node,
            },
            timeout=10,
        )
        error: str = answer.json()["Error"]
        return error

    def filter(self, pod: str | Json, nodes_: list[str]) -> Json:
        """Filter the pod (its name, read from the API, or a body) on ``nodes_``."""
        if isinstance(pod, str):
            read = self.core.read_namespaced_pod(pod, NAMESPACE)
            pod = kubernetes.client.ApiClient().sanitize_for_serialization(read)
        answer = httpx.post(
            f"{self.url}/filter", json={"Pod": pod, "NodeNames": nodes_}, timeout=2.5
        )
        result: Json = answer.json()
        return result

    def agrees(self, node: str) -> bool:
        """The extender counts as many free GPUs on ``node`` as the API server's pods leave:
        a pod asking one more does not fit, one asking exactly that many does."""
        free = len(self.free_for_us(node))
        probe = scenario.gpu_pod("probe", free + 1)
        probe["metadata"].update(namespace=NAMESPACE, uid="probe")
        if node not in (self.filter(probe, [node]).get("FailedNodes") or {}):
            return False
        if free == 0:
            return True
        probe["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = str(free)
        return self.filter(probe, [node]).get("NodeNames") == [node]

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.url}/readyz", timeout=2.5)

    def stop(self) -> None:
        self.extender.stop()
        self.proxy.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(tmp_path_factory.mktemp("faults"))
    try:
        made.populate()
        made.extender.start()
        yield made
    finally:
        made.stop()


def assert_no_gpu_shared(cluster: Cluster, node: str) -> None:
    held = cluster.held(node)
    assert sum(map(len, held.values())) == len(frozenset().union(*held.values())), held


def wait_converged(cluster: Cluster, node: str, what: str) -> None:
    """Ready again, and its picture of ``node`` is the API server's, within RECOVERY."""
    wait_for(
        lambda: cluster.ready().status_code == 200 and cluster.agrees(node),
        timeout=RECOVERY,
        what=what,
    )


def test_api_server_unreachable_makes_the_extender_unready_and_it_recovers(
    cluster: Cluster,
) -> None:
    node = cluster.node("down-n1")
    first = cluster.pending("first", 2)
    wait_for(lambda: cluster.bind(first, node) == "", timeout=RECOVERY, what="node in cache")
    waiting = cluster.pending("waiting", 2)

    cluster.proxy.stop()  # the API server is down: watches drop, reconnects are refused
    unready = wait_for(
        lambda: (answer := cluster.ready()).status_code == 503 and answer.text,
        timeout=STALENESS + 3,
        what="/readyz 503 once the cache is stale",
    )
    assert "stale" in unready
    assert "stale" in cluster.filter("waiting", [node]).get("Error", "")
    assert "stale" in cluster.bind(waiting, node)
    # Meanwhile someone else binds four of the node's free GPUs; the extender cannot see it.
    cluster.bound_elsewhere("elsewhere", node, cluster.free_for_us(node)[:4])

    cluster.proxy.start()
    wait_converged(cluster, node, "ready and converged after the API server came back")
    assert cluster.bind(waiting, node) == ""
    assert_no_gpu_shared(cluster, node)
    assert sum(map(len, cluster.held(node).values())) == 8


def test_watches_dropped_mid_stream_converge_without_a_restart(cluster: Cluster) -> None:
    node = cluster.node("cut-n1")
    wait_converged(cluster, node, "node in cache")
    for round_ in range(3):
        cluster.proxy.cut()
        cluster.bound_elsewhere(f"cut-{round_}", node, cluster.free_for_us(node)[:2])
    wait_converged(cluster, node, "ready and converged after watches were dropped")
    late = cluster.pending("after-cuts", 2)
    wait_for(lambda: cluster.bind(late, node) == "", timeout=RECOVERY, what="bind after cuts")
    assert_no_gpu_shared(cluster, node)
    assert sum(map(len, cluster.held(node).values())) == 8


def test_a_watch_resumed_after_410_gone_relists_and_converges(cluster: Cluster) -> None:
    node = cluster.node("gone-n1")
    log_before = cluster.extender.logs().count("Pod watch expired")
    with cluster.proxy.frozen():
        # Every watch ends (server side) within its 2 s timeout; its end waits in the proxy,
        # so the extender resumes only after the pods' log has moved on by more than it keeps.
        time.sleep(3.0)  # staging the fault, not asserting anything
        cluster.bound_elsewhere("before-gone", node, [0, 1, 2, 3])
        for i in range(20):  # 40 pod events: more than the 30 a watch can resume from
            cluster.core.create_namespaced_pod(
                NAMESPACE,
                {
                    "metadata": {"name": f"churn-{i}"},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            )
            cluster.core.delete_namespaced_pod(f"churn-{i}", NAMESPACE)
    cluster.extender.wait_for_log(r"Pod watch expired", timeout=RECOVERY)
    assert cluster.extender.logs().count("Pod watch expired") > log_before
    wait_converged(cluster, node, "ready and converged after the re-list")
    late = cluster.pending("after-gone", 4)
    wait_for(lambda: cluster.bind(late, node) == "", timeout=RECOVERY, what="bind after 410")
    assert cluster.held(node)["after-gone"] == frozenset({4, 5, 6, 7})
    assert_no_gpu_shared(cluster, node)


def test_an_extender_restarted_between_filter_and_bind_binds_on_free_gpus(
    cluster: Cluster,
) -> None:
    node = cluster.node("restart-n1")
    cluster.bound_elsewhere("already", node, [0, 1])
    pod = cluster.pending("filtered", 4)
    wait_for(
        lambda: cluster.filter("filtered", [node]).get("NodeNames") == [node],
        timeout=RECOVERY,
        what="filter passes the node",
    )
    cluster.extender.restart()  # returns once /readyz is 200: the cache listed everything
    assert cluster.bind(pod, node) == ""
    assert not cluster.held(node)["filtered"] & {0, 1}
    assert_no_gpu_shared(cluster, node)
