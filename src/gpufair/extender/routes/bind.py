"""``POST /bind``: choose the pod's GPUs, record them on the pod and create the binding.

The API writes block, so the handler runs in a worker thread (the event loop's own executor:
a lighter hop than anyio's, which a bind pays once per pod); the answer's ``Error`` says what
went wrong (kube-scheduler then retries the pod).
"""

from __future__ import annotations

import asyncio

import fastapi

from gpufair.api import extender_wire
from gpufair.extender.routes import wire

router = fastapi.APIRouter(tags=["verbs"], route_class=wire.VerbRoute)


@router.post("/bind")
async def bind(request: fastapi.Request) -> fastapi.Response:
    rt = wire.runtime_of(request)
    with rt.timed("bind"):
        args = await wire.decode(request, extender_wire.ExtenderBindingArgs, verb="bind", rt=rt)
        result = await asyncio.get_running_loop().run_in_executor(None, rt.verbs.bind, rt, args)
        return wire.answer(extender_wire.encode(result))
