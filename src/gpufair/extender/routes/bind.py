"""``POST /bind``: choose the pod's GPUs, record them on the pod and create the binding.

The API writes block, so the work runs in a worker thread; the answer's ``Error`` says what
went wrong (kube-scheduler then retries the pod).
"""

from __future__ import annotations

import logging

import fastapi
import starlette.concurrency

from gpufair.api import extender_wire
from gpufair.extender import binder
from gpufair.extender.routes import wire
from gpufair.extender.runtime import Runtime, RuntimeDep

log = logging.getLogger(__name__)

router = fastapi.APIRouter(tags=["verbs"])

VERB = "bind"


@router.post("/bind")
async def bind(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed(VERB):
        args = await wire.decode(request, extender_wire.ExtenderBindingArgs, verb=VERB, rt=rt)
        result = await starlette.concurrency.run_in_threadpool(run, args, rt)
        return wire.answer(extender_wire.encode(result))


def run(
    args: extender_wire.ExtenderBindingArgs, rt: Runtime
) -> extender_wire.ExtenderBindingResult:
    if rt.writer is None:
        rt.metrics.errors.labels(VERB, "no_client").inc()
        return extender_wire.ExtenderBindingResult(error="gpufair extender has no API client")
    try:
        bound = binder.bind(args, state=rt.cache, placer=rt.placer, writer=rt.writer)
    except binder.BindError as exc:
        rt.metrics.errors.labels(VERB, "bind_failed").inc()
        log.warning("%s", exc)
        return extender_wire.ExtenderBindingResult(error=str(exc))
    if bound.pool is not None and bound.level is not None:
        rt.metrics.placements.labels(bound.pool, bound.level.name).inc()
    log.info(
        "bound %s/%s to %s gpus=%s numa=%s",
        args.pod_namespace,
        args.pod_name,
        bound.node,
        list(bound.gpus),
        bound.numa,
    )
    return extender_wire.ExtenderBindingResult(error="")
