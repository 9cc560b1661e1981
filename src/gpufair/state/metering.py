"""GPU-seconds per tenant and pool: charge every pod for exactly the time it held GPUs.

Called by the scheduling pass (:mod:`gpufair.state.scheduling`) once per pass; the arithmetic
is :mod:`gpufair.core.usage`.
A (tenant, pool) pair carries a persisted usage valid at ``as_of``; a pass charges each pod of
the pair for the part of ``[started_at, finished_at or now]`` after ``as_of`` and moves
``as_of`` to ``now``. Because every charge starts at the persisted ``as_of`` and the amounts and
``as_of`` are written in one status update, no second is counted twice, whichever process
writes next. The only seconds never charged are those of a pod that started and vanished
while no operator was running (docs/operator.md states the precision).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gpufair.core import usage
from gpufair.state import model


def intervals(pods: Iterable[model.GpuPod]) -> list[usage.Interval]:
    """When each pod held its GPUs (pods that never held any are left out)."""
    return [
        usage.Interval(start=pod.started_at, end=pod.finished_at, gpus=pod.gpus)
        for pod in pods
        if pod.started_at is not None
    ]


def advance(
    previous: usage.Usage | None,
    pods: Iterable[model.GpuPod],
    *,
    tenant: model.Tenant,
    now: float,
    half_life: float,
) -> usage.Usage:
    """The usage of one (tenant, pool) pair at ``now``.

    Without a persisted record, metering starts when the quota was created (pods that ran
    before the quota existed are not the tenant's yet).
    """
    return advance_spans(previous, spans(pods), tenant=tenant, now=now, half_life=half_life)


def spans(pods: Iterable[model.GpuPod]) -> tuple[usage.Span, ...]:
    """:func:`intervals` as ``(start, end, gpus)`` tuples (:func:`advance_spans`)."""
    return tuple(
        (pod.started_at, pod.finished_at, pod.gpus) for pod in pods if pod.started_at is not None
    )


def since(previous: usage.Usage | None, *, tenant: model.Tenant, now: float) -> float:
    """The instant :func:`advance_spans` charges from: the persisted ``as_of`` (without a
    record, the quota's creation; ``now`` when neither says)."""
    start = previous if previous is not None else usage.Usage(as_of=min(tenant.created_at, now))
    return now if start.as_of is None else start.as_of


def grouped(held: Sequence[usage.Span], *, since: float) -> tuple[usage.Span, ...]:
    """``held`` with every span starting at ``since`` at the earliest, and spans alike (same
    start and end) made one, in order of first appearance: :func:`advance_spans` from
    ``since`` gives the very same figures from these (core adds spans over the same stretch
    in that order, and whole GPUs add exactly), at a cost of one term per distinct stretch.
    Once a status is written, every pod bound before its ``asOf`` shares one stretch."""
    if any(gpus < 0 for _, _, gpus in held):
        return tuple(held)  # core refuses them, with its own message
    merged: dict[tuple[float, float | None], int] = {}
    for start, stop, gpus in held:
        key = (max(start, since), stop)
        merged[key] = merged.get(key, 0) + gpus
    return tuple((start, stop, gpus) for (start, stop), gpus in merged.items())


def advance_spans(
    previous: usage.Usage | None,
    held: Sequence[usage.Span],
    *,
    tenant: model.Tenant,
    now: float,
    half_life: float,
) -> usage.Usage:
    """:func:`advance` from the pods' :func:`spans` (kept between passes by
    :class:`gpufair.state.passcache.PassCache` while the pods do not change)."""
    start = previous if previous is not None else usage.Usage(as_of=min(tenant.created_at, now))
    period = tenant.budget.period_seconds if tenant.budget is not None else None
    return usage.accrue_spans(start, spans=held, now=now, half_life=half_life, period=period)


def charged(before: usage.Usage | None, after: usage.Usage) -> float:
    """GPU-seconds added between two records of the same pair."""
    return (after.cumulative_milli - (before.cumulative_milli if before else 0)) / usage.MILLI
