"""``POST /filter``: which candidate nodes can take the pod, and why each other cannot."""

from __future__ import annotations

import fastapi

from gpufair.api import extender_wire
from gpufair.extender import verbs
from gpufair.extender.routes import wire
from gpufair.extender.runtime import RuntimeDep

router = fastapi.APIRouter(tags=["verbs"])

VERB = "filter"


def _pass_all(args: extender_wire.ExtenderArgs) -> extender_wire.ExtenderFilterResult:
    return extender_wire.ExtenderFilterResult(
        nodes=args.nodes,
        node_names=args.node_names,
        failed_nodes={},
        failed_and_unresolvable_nodes={},
    )


@router.post("/filter")
async def filter_nodes(request: fastapi.Request, rt: RuntimeDep) -> fastapi.Response:
    with rt.timed(VERB):
        args = await wire.decode(request, extender_wire.ExtenderArgs, verb=VERB, rt=rt)
        return wire.answer(extender_wire.encode(_filter(args, rt)))


def _filter(args: extender_wire.ExtenderArgs, rt: RuntimeDep) -> extender_wire.ExtenderFilterResult:
    try:
        ask = verbs.read_pod(args.pod)
    except verbs.CannotJudgeError as exc:
        rt.metrics.errors.labels(VERB, "cannot_judge").inc()
        return extender_wire.ExtenderFilterResult(error=str(exc))
    if not ask.requests:
        return _pass_all(args)
    snapshot = rt.cache.snapshot()
    if not snapshot.synced:
        rt.metrics.errors.labels(VERB, "not_synced").inc()
        return extender_wire.ExtenderFilterResult(error=verbs.NOT_SYNCED)
    if not verbs.wants_gpus(ask, snapshot):
        return _pass_all(args)
    judge = verbs.Judge(snapshot, ask, rt.placer)
    outcome = verbs.filter_nodes(judge, args.candidate_names())
    rt.metrics.node_verdicts.labels("passed").inc(len(outcome.passed))
    rt.metrics.node_verdicts.labels("failed").inc(len(outcome.failed))
    rt.metrics.node_verdicts.labels("unresolvable").inc(len(outcome.unresolvable))
    if args.names_only or args.nodes is None:
        return extender_wire.ExtenderFilterResult(
            node_names=outcome.passed,
            failed_nodes=outcome.failed,
            failed_and_unresolvable_nodes=outcome.unresolvable,
        )
    passed = set(outcome.passed)
    return extender_wire.ExtenderFilterResult(
        nodes=args.nodes.with_items(
            [node for node in args.nodes.nodes if node["metadata"]["name"] in passed]
        ),
        failed_nodes=outcome.failed,
        failed_and_unresolvable_nodes=outcome.unresolvable,
    )
