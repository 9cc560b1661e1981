"""``POST /prioritize``: a 0..10 score per node for the pod's best GPU set there."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender.routes import wire

router = fastapi.APIRouter(tags=["verbs"], route_class=wire.VerbRoute)


@router.post("/prioritize")
async def prioritize(request: fastapi.Request) -> fastapi.Response:
    rt = wire.runtime_of(request)
    with rt.timed("prioritize"):
        args = await wire.decode(request, extender_wire.ExtenderArgs, verb="prioritize", rt=rt)
        return wire.answer(extender_wire.encode_scores(rt.verbs.prioritize(rt, args)))
