"""``POST /prioritize``: a 0..10 score per node for the pod's best GPU set there.

kube-scheduler ignores a failing prioritize, so a pod gpufair cannot judge gets 0 everywhere
rather than an error; a malformed body is still HTTP 400.
"""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender import verbs
from gpufair.extender.routes import wire
from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["verbs"])

VERB = "prioritize"


@router.post("/prioritize")
async def prioritize(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed(VERB):
        args = await wire.decode(request, extender_wire.ExtenderArgs, verb=VERB, rt=rt)
        candidates = args.candidate_names()
        try:
            ask = verbs.read_pod(args.pod)
        except verbs.CannotJudgeError:
            rt.metrics.errors.labels(VERB, "cannot_judge").inc()
            return wire.answer(extender_wire.encode_priorities((n, 0) for n in candidates))
        snapshot = rt.cache.snapshot()
        if not ask.requests or not snapshot.synced or not verbs.wants_gpus(ask, snapshot):
            return wire.answer(extender_wire.encode_priorities((n, 0) for n in candidates))
        judge = verbs.Judge(snapshot, ask, rt.placer)
        return wire.answer(extender_wire.encode_priorities(verbs.prioritize(judge, candidates)))
