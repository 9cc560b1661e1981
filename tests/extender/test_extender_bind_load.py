"""Issue 13 deliverable 3: 10,000 concurrent binds over HTTP never hand a GPU out twice and
never pass a limit, and afterwards the cache counts exactly what the bound pods hold.

The real listener (uvicorn) serves the app; 24 client threads bind 10,000 pods of three
tenants to four 8-GPU nodes, while pods finish (are deleted) so that binds keep succeeding.
The writer standing in for the API server keeps a ledger of what is bound and checks every
Binding as it lands, under its own lock: its GPUs are held by no live pod, and its tenant stays
within its limit. The watch is simulated as the writer confirming each bind into the cache.

Pending pods are known to the writer only (bind reads the pod from the API, never from the
cache), which keeps the run to ~30 s on 2 busy CPUs. Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.extender import app as extender_app
from gpufair.extender import listener, settings
from gpufair.standin import processes
from gpufair.state import cache

REQUESTS = 10_000
CLIENTS = 24
NODES = [f"n{i}" for i in range(4)]
LIMITS = {"team-a": 12, "team-b": 10, "team-c": 16}
SIZES = (1, 2, 4)
KEEP = 1
"""Pods a client keeps bound across a request: before each request beyond it, it finishes
(deletes) its oldest, so GPUs stay scarce but binds keep succeeding."""


class Ledger(cluster.FakeWriter):
    """The API server's side: which pod holds which GPUs; every landing Binding is checked."""

    def __init__(self, state: cache.ClusterCache, pods: list[dict[str, Any]]) -> None:
        super().__init__(state, pods, confirm=True)
        self.held: dict[tuple[str, str], tuple[str, frozenset[int], str, int]] = {}
        self.violations: list[str] = []
        self.bound = 0

    def bind_pod(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None:
        gpus = frozenset(int(i) for i in annotations[names.GPUS_ANNOTATION].split(","))
        with self.lock:
            for other, (other_node, other_gpus, _, _) in self.held.items():
                if other_node == node and other_gpus & gpus:
                    self.violations.append(f"{namespace}/{name} got {other}'s GPUs on {node}")
            used = sum(size for _, _, tenant, size in self.held.values() if tenant == namespace)
            if used + len(gpus) > LIMITS[namespace]:
                self.violations.append(f"{namespace} holds {used + len(gpus)} > limit")
            self.held[(namespace, name)] = (node, gpus, namespace, len(gpus))
            self.bound += 1
            pod = self.pods[(namespace, name)]
        bound = kube.bound_copy(copy.deepcopy(pod), node=node, annotations=dict(annotations))
        self.pods[(namespace, name)] = bound
        self.state.upsert(cache.Kind.POD, bound)

    def finish(self, namespace: str, name: str) -> None:
        """The pod ends: the API server forgets it before the watch tells the cache."""
        with self.lock:
            self.held.pop((namespace, name), None)
            pod = self.pods.pop((namespace, name))
        self.state.delete(cache.Kind.POD, pod)


def new_cluster() -> tuple[cache.ClusterCache, Ledger, list[dict[str, Any]]]:
    tenants = list(LIMITS)
    pods = [
        kube.pod(f"p{i}", gpus=SIZES[i % len(SIZES)], namespace=tenants[i % len(tenants)])
        for i in range(REQUESTS)
    ]
    state = cluster.cluster(
        nodes=[kube.node(name, kube.dgx1()) for name in NODES],
        quotas=[kube.quota(t, pools={"h100": (4, limit)}) for t, limit in LIMITS.items()],
    )
    return state, Ledger(state, pods), pods


@pytest.fixture
def served() -> Iterator[tuple[str, cache.ClusterCache, Ledger, list[dict[str, Any]]]]:
    import asyncio

    state, ledger, pods = new_cluster()
    port = processes.free_port()
    config = settings.ExtenderSettings(watch=False, extender_port=port, log_level="error")
    app = extender_app.create_app(config, state=state, writer=ledger)
    serving = listener.Serving(config, app, None)
    thread = threading.Thread(target=asyncio.run, args=(serving.run(),), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield url, state, ledger, pods
    finally:
        serving.stop()
        thread.join(timeout=10)


def test_ten_thousand_concurrent_binds_over_http_keep_every_gpu_and_limit(
    served: tuple[str, cache.ClusterCache, Ledger, list[dict[str, Any]]],
) -> None:
    url, state, ledger, pods = served
    counter = itertools.count()
    errors: collections.Counter[str] = collections.Counter()
    errors_lock = threading.Lock()

    def client() -> int:
        sent = 0
        mine: collections.deque[tuple[str, str]] = collections.deque()
        with httpx.Client(base_url=url, timeout=30) as http:
            while (index := next(counter)) < REQUESTS:
                if len(mine) >= KEEP:
                    ledger.finish(*mine.popleft())
                pod = pods[index]
                meta = pod["metadata"]
                answer = http.post(
                    "/bind",
                    json={
                        "PodName": meta["name"],
                        "PodNamespace": meta["namespace"],
                        "PodUID": meta["uid"],
                        "Node": NODES[index % len(NODES)],
                    },
                )
                sent += 1
                assert answer.status_code == 200, answer.text
                error = answer.json()["Error"]
                if error:
                    with errors_lock:
                        errors[_kind_of(error)] += 1
                    continue
                mine.append((meta["namespace"], meta["name"]))
        return sent

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        sent = sum(pool.map(lambda _: client(), range(CLIENTS)))
    seconds = time.perf_counter() - started

    print(
        f"\nbind load: {sent} requests from {CLIENTS} threads in {seconds:.1f} s,"
        f" {ledger.bound} bound, refused {dict(errors)}, violations {len(ledger.violations)}"
    )
    assert sent == REQUESTS
    assert ledger.violations == []
    assert ledger.bound > REQUESTS // 10  # churn keeps binds succeeding, not only refusals
    assert set(errors) <= {"limit", "free GPUs"}
    snapshot = state.snapshot()
    assert snapshot.assumed == {}
    for tenant in LIMITS:
        held = sum(size for _, _, owner, size in ledger.held.values() if owner == tenant)
        assert snapshot.used(tenant, "h100") == held <= LIMITS[tenant]
    for node in NODES:
        held_gpus = [gpus for where, gpus, _, _ in ledger.held.values() if where == node]
        taken = frozenset().union(*held_gpus)
        assert sum(map(len, held_gpus)) == len(taken)
        assert snapshot.nodes[node].free == frozenset(range(8)) - taken


def _kind_of(error: str) -> str:
    if "limit" in error:
        return "limit"
    if "free GPUs" in error or "no free" in error:
        return "free GPUs"
    return error
