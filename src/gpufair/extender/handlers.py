"""The verbs from decoded request to answer, on one cache snapshot; no HTTP in sight.

The routes call these between decoding and encoding, and the benchmark calls them directly to
measure the extender without the HTTP stack. Each handler is the whole policy of its verb for
pods gpufair does not manage, a cache that has not synced, and pods it cannot judge.
"""

from __future__ import annotations

import logging

from gpufair.api import extender_wire as wire
from gpufair.extender import binder, runtime, verbs
from gpufair.extender.runtime import Runtime
from gpufair.state import groups

log = logging.getLogger(__name__)


def _pass_all(args: wire.ExtenderArgs) -> wire.ExtenderFilterResult:
    return wire.ExtenderFilterResult(
        nodes=args.nodes,
        node_names=args.node_names,
        failed_nodes={},
        failed_and_unresolvable_nodes={},
    )


def filter_nodes(rt: Runtime, args: wire.ExtenderArgs) -> wire.ExtenderFilterResult:
    """Keep the nodes that can take the pod; a reason for every other one. Pods without GPUs
    pass untouched; a pod that cannot be judged, or an unsynced cache, gives ``Error``."""
    try:
        ask = verbs.read_pod(args.pod)
    except verbs.CannotJudgeError as exc:
        rt.metrics.errors.labels("filter", "cannot_judge").inc()
        return wire.ExtenderFilterResult(error=str(exc))
    if not ask.requests:
        return _pass_all(args)
    snapshot = rt.cache.snapshot()
    if not snapshot.synced:
        rt.metrics.errors.labels("filter", "not_synced").inc()
        return wire.ExtenderFilterResult(error=snapshot.not_ready or verbs.NOT_SYNCED)
    if not verbs.wants_gpus(ask, snapshot):
        return _pass_all(args)
    outcome = verbs.filter_nodes(rt.placer.judge(snapshot, ask), args.candidate_names())
    if outcome.plan is groups.PlanStep.FALL_BACK:
        rt.metrics.group_plan.labels("fell_back").inc()
        log.warning("group member %s off its plan: %s", ask.ref, outcome.plan_note)
    counted = rt.metrics.filtered
    counted.passed.inc(len(outcome.passed))
    if outcome.failed:
        counted.failed.inc(len(outcome.failed))
    if outcome.unresolvable:
        counted.unresolvable.inc(len(outcome.unresolvable))
    if args.names_only or args.nodes is None:
        # Built without validation: the names are the decoded candidates (or some of them)
        # and the reasons strings; validating would copy and check thousands of names.
        return wire.ExtenderFilterResult.model_construct(
            nodes=None,
            node_names=outcome.passed,
            failed_nodes=outcome.failed,
            failed_and_unresolvable_nodes=outcome.unresolvable,
            error="",
        )
    passed = set(outcome.passed)
    return wire.ExtenderFilterResult(
        nodes=args.nodes.with_items(
            [node for node in args.nodes.nodes if node["metadata"]["name"] in passed]
        ),
        failed_nodes=outcome.failed,
        failed_and_unresolvable_nodes=outcome.unresolvable,
    )


def prioritize(rt: Runtime, args: wire.ExtenderArgs) -> wire.Scores:
    """A 0..10 score for each candidate. kube-scheduler ignores a failed prioritize, so a pod
    gpufair cannot judge (or does not manage) scores 0 everywhere instead of an error."""
    candidates = args.candidate_names()
    try:
        ask = verbs.read_pod(args.pod)
    except verbs.CannotJudgeError:
        rt.metrics.errors.labels("prioritize", "cannot_judge").inc()
        return wire.Scores.grouped({0: candidates})
    snapshot = rt.cache.snapshot()
    if not ask.requests or not snapshot.synced or not verbs.wants_gpus(ask, snapshot):
        return wire.Scores.grouped({0: candidates})
    return verbs.prioritize(rt.placer.judge(snapshot, ask), candidates)


def preempt(rt: Runtime, args: wire.ExtenderPreemptionArgs) -> wire.ExtenderPreemptionResult:
    """Only the victims the fair-share policy allows, always by UID, never more than proposed.

    A pod gpufair does not manage gets the proposal back unchanged; while the cache has not
    synced nothing is allowed (an empty map), since protected pods cannot be told apart yet.
    """
    proposals = args.proposals()
    unchanged = wire.ExtenderPreemptionResult(node_name_to_meta_victims=proposals)
    try:
        ask = verbs.read_pod(args.pod)
    except verbs.CannotJudgeError:
        rt.metrics.errors.labels("preempt", "cannot_judge").inc()
        return unchanged
    snapshot = rt.cache.snapshot()
    if not ask.requests or (snapshot.synced and not verbs.wants_gpus(ask, snapshot)):
        return unchanged
    if not snapshot.synced:
        rt.metrics.errors.labels("preempt", "not_synced").inc()
        return wire.ExtenderPreemptionResult(node_name_to_meta_victims={})
    outcome = verbs.preempt(
        verbs.Judge(snapshot, ask, rt.placer),
        {node: victims.uids for node, victims in proposals.items()},
        now=rt.wall_clock(),
    )
    rt.metrics.victims_removed.inc(len(outcome.removed))
    return wire.ExtenderPreemptionResult(
        node_name_to_meta_victims={
            node: wire.MetaVictims(
                pods=[wire.MetaPod(uid=uid) for uid in uids],
                num_pdb_violations=proposals[node].num_pdb_violations,
            )
            for node, uids in outcome.kept.items()
        }
    )


def bind(rt: Runtime, args: wire.ExtenderBindingArgs) -> wire.ExtenderBindingResult:
    """Choose the GPUs, record them on the pod, create the binding (blocking API calls)."""
    rt.placer.release(args.pod_uid)
    if rt.writer is None:
        rt.metrics.errors.labels("bind", "no_client").inc()
        return wire.ExtenderBindingResult(error="gpufair extender has no API client")
    try:
        bound = binder.bind(args, state=rt.cache, placer=rt.placer, writer=rt.writer)
    except binder.BindError as exc:
        rt.metrics.errors.labels("bind", "bind_failed").inc()
        log.warning("%s", exc)
        return wire.ExtenderBindingResult(error=str(exc))
    if bound.pool is not None and bound.level is not None:
        rt.metrics.placements.labels(bound.pool, bound.level.name).inc()
    if bound.planned is not None:
        on_plan = bound.planned == bound.node
        rt.metrics.group_plan.labels("bound_on_plan" if on_plan else "bound_off_plan").inc()
        if not on_plan:
            log.warning(
                "group member %s/%s bound to %s, not to its planned node %s",
                args.pod_namespace,
                args.pod_name,
                bound.node,
                bound.planned,
            )
    log.info(
        "bound %s/%s to %s gpus=%s numa=%s",
        args.pod_namespace,
        args.pod_name,
        bound.node,
        list(bound.gpus),
        bound.numa,
    )
    return wire.ExtenderBindingResult(error="")


VERBS = runtime.Verbs(filter_nodes=filter_nodes, prioritize=prioritize, preempt=preempt, bind=bind)
"""The extender's answers (the routes call them through ``Runtime.verbs``)."""
