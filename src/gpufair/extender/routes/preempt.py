"""``POST /preempt``: keep only the victims the fair-share policy allows.

The answer is always ``NodeNameToMetaVictims`` and never adds a node or a victim. A pod
gpufair does not manage gets the proposal back unchanged; while the cache has not synced,
nothing is allowed (an empty map), since protected pods cannot be told apart yet.
"""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender import verbs
from gpufair.extender.routes import wire
from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["verbs"])

VERB = "preempt"


@router.post("/preempt")
async def preempt(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed(VERB):
        args = await wire.decode(request, extender_wire.ExtenderPreemptionArgs, verb=VERB, rt=rt)
        proposals = args.proposals()
        result = extender_wire.ExtenderPreemptionResult(node_name_to_meta_victims=proposals)
        try:
            ask = verbs.read_pod(args.pod)
        except verbs.CannotJudgeError:
            rt.metrics.errors.labels(VERB, "cannot_judge").inc()
            return wire.answer(extender_wire.encode(result))
        snapshot = rt.cache.snapshot()
        if not ask.requests or (snapshot.synced and not verbs.wants_gpus(ask, snapshot)):
            return wire.answer(extender_wire.encode(result))
        if not snapshot.synced:
            rt.metrics.errors.labels(VERB, "not_synced").inc()
            empty = extender_wire.ExtenderPreemptionResult(node_name_to_meta_victims={})
            return wire.answer(extender_wire.encode(empty))
        judge = verbs.Judge(snapshot, ask, rt.placer)
        outcome = verbs.preempt(
            judge,
            {node: victims.uids for node, victims in proposals.items()},
            now=rt.wall_clock(),
        )
        rt.metrics.victims_removed.inc(len(outcome.removed))
        narrowed = {
            node: extender_wire.MetaVictims(
                pods=[extender_wire.MetaPod(uid=uid) for uid in uids],
                num_pdb_violations=proposals[node].num_pdb_violations,
            )
            for node, uids in outcome.kept.items()
        }
        return wire.answer(
            extender_wire.encode(
                extender_wire.ExtenderPreemptionResult(node_name_to_meta_victims=narrowed)
            )
        )
