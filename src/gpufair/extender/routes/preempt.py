"""``POST /preempt``: keep only the victims the fair-share policy allows."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender import handlers
from gpufair.extender.routes import wire
from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["verbs"])


@router.post("/preempt")
async def preempt(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed("preempt"):
        args = await wire.decode(
            request, extender_wire.ExtenderPreemptionArgs, verb="preempt", rt=rt
        )
        return wire.answer(extender_wire.encode(handlers.preempt(rt, args)))
