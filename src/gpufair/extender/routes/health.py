"""``/healthz`` (the process answers), ``/readyz`` (the cache has synced) and ``/metrics``."""

from __future__ import annotations

import fastapi
import prometheus_client

from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> fastapi.Response:
    return fastapi.Response(content="ok\n", media_type="text/plain")


@router.get("/readyz")
async def readyz(rt: RuntimeDep) -> fastapi.Response:
    if rt.cache.synced:
        return fastapi.Response(content="ok\n", media_type="text/plain")
    return fastapi.Response(
        content="cache has not synced with the API server yet\n",
        status_code=503,
        media_type="text/plain",
    )


@router.get("/metrics")
async def metrics(rt: RuntimeDep) -> fastapi.Response:
    return fastapi.Response(
        content=prometheus_client.generate_latest(rt.metrics.registry),
        media_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
