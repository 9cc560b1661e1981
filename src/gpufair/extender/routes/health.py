"""``/healthz`` (the process answers), ``/readyz`` (the cache has synced and is not stale) and
``/metrics``."""

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
    reason = rt.cache.not_ready()
    if reason is None:
        return fastapi.Response(content="ok\n", media_type="text/plain")
    return fastapi.Response(content=f"{reason}\n", status_code=503, media_type="text/plain")


@router.get("/metrics")
async def metrics(rt: RuntimeDep) -> fastapi.Response:
    return fastapi.Response(
        content=prometheus_client.generate_latest(rt.metrics.registry),
        media_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
