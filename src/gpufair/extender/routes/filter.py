"""``POST /filter``: which candidate nodes can take the pod, and why each other cannot."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender import handlers
from gpufair.extender.routes import wire
from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["verbs"])


@router.post("/filter")
async def filter_nodes(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed("filter"):
        args = await wire.decode(request, extender_wire.ExtenderArgs, verb="filter", rt=rt)
        return wire.answer(extender_wire.encode(handlers.filter_nodes(rt, args)))
