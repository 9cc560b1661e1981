"""The extender's FastAPI app factory (``uvicorn --factory gpufair.extender.app:create_app``).

Without arguments it reads :class:`~gpufair.extender.settings.ExtenderSettings` from the
environment, connects to the API server and starts the watches when the app starts. Tests and
the benchmark pass their own cache (fed directly) and pod writer instead.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import fastapi

from gpufair.extender import binder, handlers, metrics, runtime, settings, verbs
from gpufair.extender.routes import ROUTERS, wire
from gpufair.state import cache, watch

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """After the first full list, move everything alive into the permanent GC generation.

    The cache holds hundreds of thousands of objects that live as long as the process; without
    this, every full collection walks them all (tens of milliseconds at 5,000 nodes, visible as
    p99 latency of the verbs). Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()
    log.info("cache synced; %d objects frozen out of garbage collection", gc.get_freeze_count())


def create_app(
    config: settings.ExtenderSettings | None = None,
    *,
    state: cache.ClusterCache | None = None,
    writer: binder.PodWriter | None = None,
    source: watch.Source | None = None,
    answers: runtime.Verbs = handlers.VERBS,
) -> fastapi.FastAPI:
    """The app; ``state``/``writer``/``source`` replace the API server connection when given,
    ``answers`` the verbs' answers (the benchmark's null extender)."""
    config = config or settings.get_settings()
    state = state or cache.ClusterCache(staleness_seconds=config.staleness_seconds)
    if source is None and writer is None and config.watch:
        from gpufair.state import kube  # the kubernetes client only where it is used

        client = kube.KubeClient(kube.load_config(config.kubeconfig))
        source, writer = client, client
    watcher = (
        watch.Watcher(
            state,
            source,
            timeout_seconds=config.watch_timeout_seconds,
            backoff_seconds=config.relist_backoff_seconds,
            on_synced=freeze_heap,
        )
        if source is not None
        else None
    )
    rt = runtime.Runtime(
        cache=state,
        placer=verbs.Placer(),
        metrics=metrics.Metrics(),
        verbs=answers,
        writer=writer,
        watcher=watcher,
    )
    rt.metrics.registry.register(metrics.CacheCollector(rt.cache_facts, rt.cache_silence))

    @contextlib.asynccontextmanager
    async def lifespan(_: fastapi.FastAPI) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = fastapi.FastAPI(
        title="gpufair scheduler extender",
        description="kube-scheduler extender verbs (k8s.io/kube-scheduler/extender/v1).",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.add_exception_handler(wire.BadRequestError, wire.bad_request_handler)
    for router in ROUTERS:
        app.include_router(router)
    return app


def create_probe_app(main: fastapi.FastAPI) -> fastapi.FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics`` of ``main``'s runtime, without the verbs: the
    app of the separate probe port (kubelet and Prometheus reach it; they never bind)."""
    from gpufair.extender.routes import health

    probes = fastapi.FastAPI(title="gpufair scheduler extender probes")
    probes.state.runtime = main.state.runtime
    probes.include_router(health.router)
    return probes
