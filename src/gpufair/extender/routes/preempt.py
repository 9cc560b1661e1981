"""``POST /preempt``: keep only the victims the fair-share policy allows."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender.routes import wire

router = fastapi.APIRouter(tags=["verbs"], route_class=wire.VerbRoute)


@router.post("/preempt")
async def preempt(request: fastapi.Request) -> fastapi.Response:
    rt = wire.runtime_of(request)
    with rt.timed("preempt"):
        args = await wire.decode(
            request, extender_wire.ExtenderPreemptionArgs, verb="preempt", rt=rt
        )
        return wire.answer(extender_wire.encode(rt.verbs.preempt(rt, args)))
