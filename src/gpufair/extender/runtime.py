"""What the routes share: the cache, the memoised placer, the API writer, the metrics, and
the functions that answer the verbs.

One :class:`Runtime` per app, kept in ``app.state.runtime`` and handed to routes by the
:func:`get_runtime` dependency (``RuntimeDep``). The verb functions are part of it so that the
benchmark can serve a *null extender* (every node passes) through the very same routes,
decoding and encoding: the floor the wire format sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Annotated

import fastapi

from gpufair.api import extender_wire as wire
from gpufair.extender import binder, metrics, verbs
from gpufair.state import cache, watch


@dataclasses.dataclass(frozen=True)
class Verbs:
    """What answers each verb, from decoded request to answer
    (:data:`gpufair.extender.handlers.VERBS` in the extender)."""

    filter_nodes: Callable[[Runtime, wire.ExtenderArgs], wire.ExtenderFilterResult]
    prioritize: Callable[[Runtime, wire.ExtenderArgs], wire.Scores]
    preempt: Callable[[Runtime, wire.ExtenderPreemptionArgs], wire.ExtenderPreemptionResult]
    bind: Callable[[Runtime, wire.ExtenderBindingArgs], wire.ExtenderBindingResult]


@dataclasses.dataclass
class Runtime:
    cache: cache.ClusterCache
    placer: verbs.Placer
    metrics: metrics.Metrics
    verbs: Verbs
    writer: binder.PodWriter | None = None
    watcher: watch.Watcher | None = None
    wall_clock: Callable[[], float] = time.time
    """Seconds since the epoch (pod start times are compared against it in preempt)."""

    @contextlib.contextmanager
    def timed(self, verb: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.request_duration.labels(verb).observe(time.perf_counter() - started)

    def cache_facts(self) -> dict[str, float]:
        snapshot = self.cache.snapshot()
        return {
            "synced": 1.0 if self.cache.synced else 0.0,
            "stale": 1.0 if self.cache.stale() else 0.0,
            "nodes": float(len(snapshot.nodes)),
            "gpu_pods": float(self.cache.pod_count()),
            "assumed": float(len(snapshot.assumed)),
            "problems": float(len(self.cache.problems)),
        }

    def cache_silence(self) -> dict[str, float]:
        """Seconds since each kind last heard from the API server (never: a very large number,
        as Prometheus has no infinity in a gauge worth alerting on)."""
        return {str(kind): min(s, 1e9) for kind, s in self.cache.silence().items()}


async def get_runtime(request: fastapi.Request) -> Runtime:
    """The app's runtime. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its
    thread pool, which would cost every verb a thread hop."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, fastapi.Depends(get_runtime)]
