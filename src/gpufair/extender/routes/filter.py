"""``POST /filter``: which candidate nodes can take the pod, and why each other cannot."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender.routes import wire

router = fastapi.APIRouter(tags=["verbs"], route_class=wire.VerbRoute)


@router.post("/filter")
async def filter_nodes(request: fastapi.Request) -> fastapi.Response:
    rt = wire.runtime_of(request)
    with rt.timed("filter"):
        args = await wire.decode(request, extender_wire.ExtenderArgs, verb="filter", rt=rt)
        return wire.answer_filter(rt.verbs.filter_nodes(rt, args))
