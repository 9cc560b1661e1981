"""What the routes share: the cache, the memoised placer, the API writer, the metrics.

One :class:`Runtime` per app, kept in ``app.state.runtime`` and handed to routes by the
:func:`get_runtime` dependency (``RuntimeDep``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Annotated

import fastapi

from gpufair.extender import binder, metrics, verbs
from gpufair.state import cache, watch


@dataclasses.dataclass
class Runtime:
    cache: cache.ClusterCache
    placer: verbs.Placer
    metrics: metrics.Metrics
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
