"""Kubernetes JSON in and out of the operator: objects to snapshot values, plans to statuses.

:mod:`.view` calls the readers on every watch event; :mod:`.reconciler` calls the writers to
build status patches. Reading a pod or node reuses :mod:`gpufair.k8s.pods` and
:mod:`gpufair.k8s.nodes` (the extender reads them the same way); custom resources are validated
with the :mod:`gpufair.api` models, and a spec that fails validation becomes an ``invalid``
value with the reason instead of an exception (the quota then gets ``Ready=False``).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from gpufair.api import common as api_common
from gpufair.api import names, pool, quota
from gpufair.core import topology, usage
from gpufair.k8s import nodes as k8s_nodes
from gpufair.k8s import pods as k8s_pods
from gpufair.k8s import scheduling
from gpufair.operator import intents
from gpufair.state import groups, model

Body = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# time


def parse_time(value: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (``None`` when absent or unreadable)."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def to_datetime(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def format_time(seconds: float) -> str:
    """RFC 3339 with microseconds, UTC (``2026-11-26T22:12:38.123456Z``)."""
    return to_datetime(seconds).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _meta(body: Body) -> Mapping[str, Any]:
    return body.get("metadata") or {}


# ---------------------------------------------------------------------------------------------
# pods, nodes, namespaces


def gpu_pod(
    body: Body,
    *,
    resources: Iterable[str],
    observed_at: float,
    previous: model.GpuPod | None = None,
) -> model.GpuPod | None:
    """The pod as the planner sees it, or ``None`` when it requests none of ``resources``.

    ``observed_at`` stands in for times the pod does not carry: when it was first seen bound
    (the binding leaves no timestamp on the pod) or first seen finished.
    """
    try:
        requested = k8s_pods.gpu_request_any(body, resources)
    except k8s_pods.PodError:
        return None
    if requested is None:
        return None
    _, gpus = requested
    meta = _meta(body)
    node = k8s_pods.node_name(body)
    gated = k8s_pods.is_gated(body)
    created = parse_time(meta.get("creationTimestamp"))
    created_at = created if created is not None else observed_at
    if k8s_pods.is_terminal(body):
        state = model.PodState.FINISHED
    elif k8s_pods.is_deleting(body):
        state = model.PodState.TERMINATING if node else model.PodState.FINISHED
    elif gated:
        state = model.PodState.GATED
    elif node:
        state = model.PodState.BOUND
    else:
        state = model.PodState.PENDING

    started_at: float | None = None
    if node:
        started_at = (
            previous.started_at
            if previous is not None and previous.started_at is not None
            else _bound_time(body) or observed_at
        )
    finished_at: float | None = None
    if state is model.PodState.FINISHED and started_at is not None:
        finished_at = (
            previous.finished_at
            if previous is not None and previous.finished_at is not None
            else _finish_time(body) or observed_at
        )
    try:
        indices = k8s_pods.bound_gpus(body)
    except k8s_pods.PodError:
        indices = None
    annotations = meta.get("annotations") or {}
    group, group_error, unsized = _group(body)
    return model.GpuPod(
        namespace=k8s_pods.namespace(body),
        name=k8s_pods.name(body),
        uid=k8s_pods.uid(body),
        gpus=gpus,
        state=state,
        created_at=created_at,
        node=node,
        pool_hint=k8s_pods.bound_pool(body),
        priority=k8s_pods.priority(body),
        started_at=started_at,
        finished_at=finished_at,
        admitted_at=parse_time(annotations.get(names.ADMITTED_AT_ANNOTATION)),
        checkpoint_at=parse_time(annotations.get(names.CHECKPOINT_ANNOTATION)),
        gpu_indices=indices,
        node_selector=k8s_pods.node_selector(body),
        required_terms=scheduling.required_terms(body),
        tolerations=_mappings((body.get("spec") or {}).get("tolerations")),
        deleting_at=parse_time(meta.get("deletionTimestamp")),
        admission_token=annotations.get(names.ADMISSION_TOKEN_ANNOTATION),
        unschedulable_since=None if node else _unschedulable_since(body),
        cpu_millis=_amount(body, "cpu", scale=1000),
        memory_bytes=_amount(body, "memory", scale=1),
        group=group,
        group_error=group_error,
        group_unsized=unsized,
    )


def _group(
    body: Body,
) -> tuple[groups.Membership | None, str | None, groups.GroupKey | None]:
    """The pod's group when its size is known from the pod itself (the gpufair pair, or a
    controller's group the pair sizes); why its group annotations cannot be read; and a
    controller's group whose size the pod does not state.

    A controller's group whose size the pod does not state is sized from its owner object at
    each pass (:mod:`gpufair.operator.owners`, the store's
    :meth:`~gpufair.operator.store.ClusterStore.take_snapshot`); one whose owner the operator
    has not seen (its API not served, or the object not listed yet) keeps no size, and its pods
    are admitted one by one, each told so (docs/pod-groups.md).
    """
    try:
        membership = groups.group_of(body)
    except groups.GroupError as error:
        return None, str(error), None
    if membership is None:
        return None, None, None
    if membership.size is None:
        return None, None, membership.key
    return membership, None, None


def holds_a_node(body: Body) -> bool:
    """Bound to a node and not finished: the pod's requests take room on the node."""
    return bool(k8s_pods.node_name(body)) and not k8s_pods.is_terminal(body)


def node_requests(body: Body) -> tuple[str, int, int]:
    """(node, CPU millicores, memory bytes) a bound pod requests."""
    return (
        k8s_pods.node_name(body) or "",
        _amount(body, "cpu", scale=1000),
        _amount(body, "memory", scale=1),
    )


def _mappings(value: object) -> tuple[Mapping[str, Any], ...]:
    """The mappings of a list field (tolerations, taints); anything else in it is skipped."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, Mapping))


def _amount(body: Body, resource: str, *, scale: int) -> int:
    """The pod's request of ``resource`` times ``scale``, rounded up (0 when unreadable)."""
    try:
        return max(0, math.ceil(k8s_pods.resource_request(body, resource) * scale))
    except k8s_pods.PodError:
        return 0


def _quantity(value: object, *, scale: int) -> int | None:
    """An allocatable quantity times ``scale``, rounded down (``None`` when absent or bad)."""
    if value is None:
        return None
    try:
        return max(0, math.floor(k8s_pods.parse_quantity(value) * scale))
    except k8s_pods.PodError:
        return None


def _unschedulable_since(body: Body) -> float | None:
    """When kube-scheduler last found no node for the pod (``PodScheduled`` ``False`` with
    reason ``Unschedulable``), or ``None``."""
    for condition in (body.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return parse_time(condition.get("lastTransitionTime")) or 0.0
    return None


def _bound_time(body: Body) -> float | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return parse_time(k8s_pods.start_time(body))


def _finish_time(body: Body) -> float | None:
    ends = [
        parse_time(((status.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for status in (body.get("status") or {}).get("containerStatuses") or []
    ]
    known = [end for end in ends if end is not None]
    return max(known) if known else None


def node(body: Body) -> model.Node:
    """The node with every whole-number allocatable resource and its topology labels."""
    allocatable: dict[str, int] = {}
    for resource, amount in ((body.get("status") or {}).get("allocatable") or {}).items():
        try:
            value = k8s_pods.parse_quantity(amount)
        except k8s_pods.PodError:
            continue
        if value.denominator == 1 and value >= 0:
            allocatable[str(resource)] = int(value)
    node_topology: topology.NodeTopology | None
    try:
        node_topology = k8s_nodes.gpu_topology(body)
    except k8s_nodes.NodeError:
        node_topology = None
    reported = (body.get("status") or {}).get("allocatable") or {}
    return model.Node(
        name=k8s_nodes.name(body),
        labels=dict(k8s_nodes.labels(body)),
        allocatable=allocatable,
        schedulable=k8s_nodes.is_schedulable(body),
        topology=node_topology,
        taints=_mappings((body.get("spec") or {}).get("taints")),
        reachable=k8s_nodes.is_reachable(body),
        cpu_millis=_quantity(reported.get("cpu"), scale=1000),
        memory_bytes=_quantity(reported.get("memory"), scale=1),
    )


def namespace(body: Body) -> model.Namespace:
    meta = _meta(body)
    return model.Namespace(name=str(meta.get("name", "")), labels=dict(meta.get("labels") or {}))


# ---------------------------------------------------------------------------------------------
# custom resources


def validation_message(error: pydantic.ValidationError) -> str:
    """One line per problem, located like ``spec.pools[0].guaranteed: must be <= limit (4)``."""
    lines = []
    for problem in error.errors():
        location = "spec"
        for part in problem["loc"]:
            location += f"[{part}]" if isinstance(part, int) else f".{part}"
        context = problem.get("ctx") or {}
        if problem["type"] == api_common.FIELD_ERROR and "field" in context:
            location += f".{context['field']}"
            message = str(context.get("detail", problem["msg"]))
        else:
            message = problem["msg"]
        lines.append(f"{location}: {message}")
    return "; ".join(lines)


def _whole(value: object, *, default: int) -> int:
    """A whole number written by someone else (a generation, a persisted condition's), or
    ``default`` when it is none: a hostile status must not stop the operator."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _conditions(status: Mapping[str, Any]) -> tuple[model.Condition, ...]:
    result = []
    for raw in status.get("conditions") or []:
        if not isinstance(raw, Mapping) or not raw.get("type"):
            continue
        result.append(
            model.Condition(
                type=str(raw["type"]),
                status=str(raw.get("status", "Unknown")),
                reason=str(raw.get("reason", "")),
                message=str(raw.get("message", "")),
                last_transition=parse_time(raw.get("lastTransitionTime")) or 0.0,
                observed_generation=_whole(raw.get("observedGeneration"), default=0),
            )
        )
    return tuple(result)


def tenant(body: Body) -> model.Tenant:
    """A TenantQuota; an invalid spec gives a tenant with ``invalid`` set and nothing else."""
    meta = _meta(body)
    name = str(meta.get("name", ""))
    status = body.get("status") or {}
    base = model.Tenant(
        name=name,
        generation=_whole(meta.get("generation"), default=1),
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        conditions=_conditions(status),
    )
    misnamed = _bad_name(name)
    if misnamed is not None:
        return dataclasses.replace(base, invalid=misnamed)
    try:
        spec = quota.TenantQuotaSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return dataclasses.replace(base, invalid=validation_message(error))
    absurd = _absurd_amount(spec)
    if absurd is not None:
        return dataclasses.replace(base, invalid=absurd)
    budget = (
        model.Budget(
            gpu_hours=spec.budget.gpu_hours,
            period_seconds=spec.budget.period_seconds,
            enforcement=spec.budget.enforcement,
        )
        if spec.budget is not None
        else None
    )
    return dataclasses.replace(
        base,
        weight=spec.weight,
        namespaces=frozenset(spec.namespaces),
        namespace_selector=(
            spec.namespace_selector.to_wire() if spec.namespace_selector is not None else None
        ),
        pools=tuple(
            model.TenantPool(
                pool=p.name, guaranteed=p.guaranteed, limit=p.limit, lendable=p.lendable
            )
            for p in spec.pools
        ),
        reclaim=spec.preemption.reclaim,
        min_runtime_seconds=float(spec.preemption.min_runtime_seconds),
        on_limit=spec.admission.on_limit,
        budget=budget,
        usage=persisted_usage(status),
    )


MAX_GPUS = 10**9
"""More GPUs than any cluster has: a larger guarantee, limit or lendable amount is a mistake."""
MAX_SECONDS = 10**12
"""About 30,000 years: a longer minimum runtime is a mistake."""


def _absurd_amount(spec: quota.TenantQuotaSpec) -> str | None:
    """Why a schema-valid spec still cannot be used: an amount beyond any real cluster (it
    would overflow the arithmetic of fair shares and usage), or ``None``."""
    for index, entry in enumerate(spec.pools):
        for field in ("guaranteed", "limit", "lendable"):
            amount = getattr(entry, field)
            if amount is not None and amount > MAX_GPUS:
                return (
                    f"spec.pools[{index}].{field}: {_short(amount)} GPUs is more than any"
                    f" cluster has (at most {MAX_GPUS})"
                )
    if spec.preemption.min_runtime_seconds > MAX_SECONDS:
        return (
            f"spec.preemption.minRuntimeSeconds: {_short(spec.preemption.min_runtime_seconds)}"
            f" is longer than {MAX_SECONDS} seconds"
        )
    return None


def _bad_name(name: str) -> str | None:
    """Why ``metadata.name`` cannot be used (statuses name tenants and pools by it), or
    ``None``. An API server allows only DNS subdomains; anything else came from elsewhere."""
    if len(name) <= 253 and re.fullmatch(api_common.DNS_SUBDOMAIN_PATTERN, name):
        return None
    return f"metadata.name {name[:64]!r} is not a DNS subdomain (lowercase a-z, 0-9, '-', '.')"


def _short(amount: int) -> str:
    text = str(amount)
    return text if len(text) <= 24 else f"{text[:6]}...({len(text)} digits)"


def persisted_usage(status: Mapping[str, Any]) -> dict[str, usage.Usage]:
    """The usage records of a TenantQuota status, exactly as :func:`tenant_status` wrote them
    (milli-GPU-second amounts, ``as_of`` to the microsecond)."""
    try:
        parsed = quota.TenantQuotaStatus.model_validate(status)
    except pydantic.ValidationError:
        return {}
    records: dict[str, usage.Usage] = {}
    for entry in parsed.pools:
        if entry.usage is None or entry.usage.as_of is None:
            continue
        records[entry.name] = usage.Usage(
            cumulative_milli=round(entry.usage.gpu_seconds * usage.MILLI),
            decayed_milli=round(entry.usage.decayed_gpu_seconds * usage.MILLI),
            as_of=entry.usage.as_of.timestamp(),
            period_milli=round(entry.usage.period_gpu_seconds * usage.MILLI),
            period_start=(
                entry.usage.period_start.timestamp()
                if entry.usage.period_start is not None
                else None
            ),
        )
    return records


def gpu_pool(body: Body) -> model.Pool:
    meta = _meta(body)
    base = model.Pool(
        name=str(meta.get("name", "")),
        generation=_whole(meta.get("generation"), default=1),
        conditions=_conditions(body.get("status") or {}),
    )
    misnamed = _bad_name(base.name)
    if misnamed is not None:
        return dataclasses.replace(base, invalid=misnamed)
    try:
        spec = pool.GPUPoolSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return dataclasses.replace(base, invalid=validation_message(error))
    return dataclasses.replace(
        base,
        selector=spec.node_selector.to_wire(),
        resource_name=spec.resource_name,
        mode=spec.placement.mode,
        rule=spec.placement.topology,
        one_domain=spec.placement.group_domain is pool.GroupDomain.SAME,
    )


# ---------------------------------------------------------------------------------------------
# statuses out


def _condition(condition: model.Condition) -> api_common.Condition:
    return api_common.Condition(
        type=condition.type,
        status=api_common.ConditionStatus(condition.status),
        reason=condition.reason,
        message=condition.message,
        last_transition_time=to_datetime(condition.last_transition),
        observed_generation=condition.observed_generation,
    )


def _usage(record: usage.Usage) -> quota.Usage:
    return quota.Usage(
        gpu_seconds=record.cumulative_milli / usage.MILLI,
        decayed_gpu_seconds=record.decayed_milli / usage.MILLI,
        as_of=to_datetime(record.as_of) if record.as_of is not None else None,
        period_gpu_seconds=record.period_milli / usage.MILLI,
        period_start=(
            to_datetime(record.period_start) if record.period_start is not None else None
        ),
    )


def tenant_status(status: intents.TenantStatus) -> dict[str, Any]:
    """The ``status`` of a TenantQuota, validated against the API model."""
    pools = [
        quota.PoolQuotaStatus(
            name=p.pool,
            allocated=p.allocated,
            guaranteed=p.guaranteed,
            fair_share=p.fair_share,
            borrowed=round(p.borrowed),
            waiting=p.waiting + p.pending,
            waiting_gpus=p.waiting_gpus + p.pending_gpus,
            demand=p.demand,
            usage=_usage(p.usage),
        )
        for p in status.pools
    ]
    as_of = [p.usage.as_of for p in status.pools if p.usage.as_of is not None]
    model = quota.TenantQuotaStatus(
        observed_generation=status.observed_generation,
        conditions=[_condition(c) for c in status.conditions],
        allocated=sum(p.allocated for p in pools),
        guaranteed=sum(p.guaranteed for p in pools),
        fair_share=round(sum(p.fair_share for p in pools), 9),
        borrowed=sum(p.borrowed for p in pools),
        waiting=sum(p.waiting for p in pools),
        pools=pools,
        usage=quota.Usage(
            gpu_seconds=sum(p.usage.cumulative_milli for p in status.pools) / usage.MILLI,
            decayed_gpu_seconds=sum(p.usage.decayed_milli for p in status.pools) / usage.MILLI,
            as_of=to_datetime(min(as_of)) if as_of else None,
        ),
        budget=(
            quota.BudgetStatus(
                period_start=to_datetime(status.period_start)
                if status.period_start is not None
                else None,
                used_gpu_hours=status.budget_used_gpu_hours,
            )
            if status.budget_gpu_hours is not None
            else None
        ),
    )
    return model.to_wire()


def pool_status(status: intents.PoolStatus) -> dict[str, Any]:
    """The ``status`` of a GPUPool, validated against the API model."""
    model = pool.GPUPoolStatus(
        observed_generation=status.observed_generation,
        conditions=[_condition(c) for c in status.conditions],
        nodes=status.schedulable_nodes,
        capacity=status.capacity,
        allocated=status.allocated,
        free=status.free,
        largest_free_island=status.largest_free_island,
        tenants=[
            pool.PoolTenantStatus(name=name, allocated=amount, fair_share=status.shares.get(name))
            for name, amount in sorted(status.tenants.items())
        ],
    )
    return model.to_wire()
