"""A synced extender cache and a pod writer standing in for the API server, for extender tests.

state = cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[...])
writer = FakeWriter(state, pods)          # bind's API calls land here (and in the cache)
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import testclient
from tests.builders import kube

from gpufair.extender import app as extender_app
from gpufair.extender import settings
from gpufair.state import cache


def cluster(
    *,
    nodes: Iterable[Mapping[str, Any]] = (),
    pods: Iterable[Mapping[str, Any]] = (),
    quotas: Iterable[Mapping[str, Any]] | None = None,
    pools: Iterable[Mapping[str, Any]] | None = None,
    namespaces: Iterable[Mapping[str, Any]] = (),
    clock: Callable[[], float] | None = None,
    staleness_seconds: float | None = None,
) -> cache.ClusterCache:
    """A cache that has listed every kind once (as after start-up or a restart)."""
    state = cache.ClusterCache(
        staleness_seconds=staleness_seconds, **({"clock": clock} if clock else {})
    )
    state.replace(cache.Kind.GPU_POOL, pools if pools is not None else [kube.pool()])
    state.replace(
        cache.Kind.TENANT_QUOTA,
        quotas if quotas is not None else [kube.quota("team-a"), kube.quota("team-b")],
    )
    state.replace(cache.Kind.NAMESPACE, namespaces)
    state.replace(cache.Kind.NODE, nodes)
    state.replace(cache.Kind.POD, pods)
    return state


class FakeWriter:
    """Records bind's API calls; with ``confirm`` the cache sees the bound pod, as a watch would."""

    def __init__(
        self,
        state: cache.ClusterCache,
        pods: Iterable[Mapping[str, Any]] = (),
        *,
        confirm: bool = True,
        fail_bind: str | None = None,
    ) -> None:
        self.state = state
        self.pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): dict(p) for p in pods}
        self.confirm = confirm
        self.fail_bind = fail_bind
        self.annotations: dict[tuple[str, str], dict[str, str | None]] = {}
        self.bindings: list[tuple[str, str, str, str]] = []
        self.lock = threading.Lock()

    def add(self, pod: Mapping[str, Any]) -> None:
        self.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = dict(pod)

    def read_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.pods.get((namespace, name))

    def bind_pod(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None:
        if self.fail_bind is not None:
            raise RuntimeError(self.fail_bind)
        with self.lock:
            if annotations:
                self.annotations[(namespace, name)] = dict(annotations)
            self.bindings.append((namespace, name, uid, node))
            pod = self.pods.get((namespace, name))
            notes = self.annotations.get((namespace, name), {})
        if self.confirm and pod is not None:
            bound = kube.bound_copy(copy.deepcopy(pod), node=node, annotations=notes)
            self.pods[(namespace, name)] = bound
            self.state.upsert(cache.Kind.POD, bound)


def extender_client(state: cache.ClusterCache, writer: Any = None) -> testclient.TestClient:
    """The extender's app over ``state`` (no watch), binding through ``writer`` (default: a
    :class:`FakeWriter` over the same state), behind FastAPI's test client."""
    app = extender_app.create_app(
        settings.ExtenderSettings(watch=False), state=state, writer=writer or FakeWriter(state)
    )
    return testclient.TestClient(app)
