"""GPU-seconds per tenant and pool: cumulative (chargeback, budgets) and decayed (queue order).

The operator meters every tenant in every pool with :func:`accrue` (or, from pod start and end
times, :func:`accrue_intervals`) and persists the resulting :class:`Usage` in the TenantQuota
status; admission orders waiting pods by :func:`decayed_at`; budgets read
:func:`period_gpu_hours`; the simulator does the same on a replayed clock.

Representation, chosen so that a status can be persisted and re-read without drift or double
counting:

* amounts are integers in **milli-GPU-seconds** (a 1-GPU pod for 1 ms is 1): exact to add,
  JSON- and int64-safe for millions of GPU-years, and no float error piles up over months;
* ``as_of`` (seconds since the epoch, as every core time) is the instant the amounts are
  valid at. Accrual only ever counts the part of an interval *after* ``as_of`` and moves
  ``as_of`` forward; accruing again up to the same or an earlier instant changes nothing.
  An operator that restarts from a persisted status, or retries a status write, can therefore
  replay accruals freely: usage is never counted twice (at worst, time between the last
  persisted ``as_of`` and a restart is counted from the pods that still exist);
* decayed usage is an exponentially weighted integral with a half-life ``h``: one GPU busy for
  ``dt`` seconds ending ``age`` seconds ago contributes ``dt * 2**(-age/h)`` (integrated exactly
  over the interval, so how often the operator meters does not change the result beyond
  rounding of 1 milli-GPU-second per accrual). ``h = math.inf`` means no decay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

MILLI = 1000
"""Milli-GPU-seconds per GPU-second."""
SECONDS_PER_HOUR = 3600
_LN2 = math.log(2)


@dataclasses.dataclass(frozen=True)
class Usage:
    """Metered usage of one tenant in one pool, valid at ``as_of``.

    ``as_of`` ``None`` means never metered: the first accrual only starts the clock.
    ``period_milli`` is the usage since ``period_start``, the start of the current budget
    period (see :func:`period_start`); both are ``None``/0 when no budget period applies.
    """

    cumulative_milli: int = 0
    decayed_milli: int = 0
    as_of: float | None = None
    period_milli: int = 0
    period_start: float | None = None

    @property
    def gpu_seconds(self) -> float:
        """Cumulative GPU-seconds (the status field ``gpuSeconds``)."""
        return self.cumulative_milli / MILLI

    @property
    def gpu_hours(self) -> float:
        return self.cumulative_milli / (MILLI * SECONDS_PER_HOUR)

    @property
    def decayed_gpu_seconds(self) -> float:
        """Decayed GPU-seconds as of ``as_of`` (use :func:`decayed_at` for another instant)."""
        return self.decayed_milli / MILLI


@dataclasses.dataclass(frozen=True)
class Interval:
    """``gpus`` GPUs held from ``start`` until ``end`` (``None``: still held)."""

    start: float
    end: float | None
    gpus: int


def decay(value: float, *, elapsed: float, half_life: float) -> float:
    """``value`` after ``elapsed`` seconds of exponential decay with ``half_life`` seconds."""
    _check_half_life(half_life)
    if elapsed < 0:
        raise ValueError(f"elapsed must be >= 0, got {elapsed}")
    return _decay(value, elapsed=elapsed, half_life=half_life)


def _decay(value: float, *, elapsed: float, half_life: float) -> float:
    """:func:`decay` with its arguments already checked."""
    if math.isinf(half_life):
        return value
    return value * math.exp(-elapsed * _LN2 / half_life)


def decayed_at(usage: Usage, *, now: float, half_life: float) -> float:
    """Decayed GPU-seconds at ``now`` with no new accrual (``now`` before ``as_of``: as of then)."""
    if usage.as_of is None:
        return usage.decayed_gpu_seconds
    elapsed = max(0.0, now - usage.as_of)
    return decay(usage.decayed_gpu_seconds, elapsed=elapsed, half_life=half_life)


def accrue(
    usage: Usage,
    *,
    gpus: int,
    now: float,
    half_life: float,
    period: float | None = None,
) -> Usage:
    """Add ``gpus`` GPUs held over ``(usage.as_of, now]`` and move ``as_of`` to ``now``.

    The caller accrues whenever a tenant's allocation in the pool changes (and periodically),
    passing the GPUs held since the previous accrual. ``now`` at or before ``as_of`` returns
    ``usage`` unchanged.
    """
    if gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus}")
    start = now if usage.as_of is None else usage.as_of
    return _accrue(usage, spans=((start, now, gpus),), now=now, half_life=half_life, period=period)


def accrue_intervals(
    usage: Usage,
    *,
    intervals: Iterable[Interval],
    now: float,
    half_life: float,
    period: float | None = None,
) -> Usage:
    """Add the parts of ``intervals`` that fall in ``(usage.as_of, now]``; ``as_of`` becomes now.

    Intervals are typically the tenant's pods in the pool (bind time to end time, or ``None``
    while running), so usage is exact however rarely the operator meters. With ``period``
    (seconds), ``period_milli`` counts only the current budget period and restarts at zero
    when ``now`` has moved into a new one.
    """
    _check_half_life(half_life)
    if usage.as_of is not None and now <= usage.as_of:
        return usage
    spans = []
    for interval in intervals:
        if interval.gpus < 0:
            raise ValueError(f"interval gpus must be >= 0, got {interval.gpus}")
        spans.append((interval.start, interval.end, interval.gpus))
    return _accrue(usage, spans=spans, now=now, half_life=half_life, period=period)


Span = tuple[float, float | None, int]
"""``(start, end, gpus)``: an :class:`Interval` as a plain tuple."""


def accrue_spans(
    usage: Usage,
    *,
    spans: Sequence[Span],
    now: float,
    half_life: float,
    period: float | None = None,
) -> Usage:
    """:func:`accrue_intervals` of ``(start, end, gpus)`` tuples (the operator meters every
    pod of every tenant on each pass, and keeps each tenant's spans while its pods do not
    change)."""
    if any(span[2] < 0 for span in spans):
        raise ValueError(f"span gpus must be >= 0, got {min(span[2] for span in spans)}")
    return _accrue(usage, spans=spans, now=now, half_life=half_life, period=period)


def _accrue(
    usage: Usage,
    *,
    spans: Iterable[tuple[float, float | None, int]],
    now: float,
    half_life: float,
    period: float | None,
) -> Usage:
    """:func:`accrue_intervals` on ``(start, end, gpus)`` spans already checked (the metering
    of every tenant on every pass goes through here: no interval objects built)."""
    _check_half_life(half_life)
    if usage.as_of is not None and now <= usage.as_of:
        return usage
    since = now if usage.as_of is None else usage.as_of
    window = None if period is None else period_start(now, period=period)

    # Pods held over the same stretch (most: from before ``since`` until now) share one
    # integral: a pass meters every pod of every tenant.
    stretches: dict[tuple[float, float], int] = {}
    for start, stop, gpus in spans:
        begin = max(start, since)
        end = now if stop is None else min(stop, now)
        if end > begin:
            stretches[begin, end] = stretches.get((begin, end), 0) + gpus
    added = 0.0
    weighted = 0.0
    in_period = 0.0
    for (begin, end), gpus in stretches.items():
        added += gpus * (end - begin)
        weighted += gpus * _decayed_integral(begin, end, now=now, half_life=half_life)
        if window is not None and end > window:
            in_period += gpus * (end - max(begin, window))

    kept = _decay(usage.decayed_milli, elapsed=now - since, half_life=half_life)
    if window is None:
        period_milli, start_of_period = usage.period_milli, usage.period_start
    elif usage.period_start == window:
        period_milli, start_of_period = usage.period_milli + _milli(in_period), window
    else:
        period_milli, start_of_period = _milli(in_period), window
    return Usage(
        cumulative_milli=usage.cumulative_milli + _milli(added),
        decayed_milli=round(kept + weighted * MILLI),
        as_of=now,
        period_milli=period_milli,
        period_start=start_of_period,
    )


def period_start(now: float, *, period: float) -> float:
    """Start of the budget period containing ``now``: periods are consecutive ``period``-long
    windows counted from the Unix epoch (a 720h budget resets every 30 days at 00:00 UTC)."""
    if not period > 0:
        raise ValueError(f"period must be > 0 seconds, got {period}")
    return math.floor(now / period) * period


def period_gpu_hours(usages: Iterable[Usage], *, now: float, period: float) -> float:
    """GPU-hours used in the budget period containing ``now``, summed over ``usages`` (a
    tenant's pools); a usage last metered in an earlier period contributes nothing."""
    current = period_start(now, period=period)
    milli = sum(u.period_milli for u in usages if u.period_start == current)
    return milli / (MILLI * SECONDS_PER_HOUR)


def _decayed_integral(begin: float, end: float, *, now: float, half_life: float) -> float:
    """Integral of ``2**(-(now - t)/half_life)`` over ``[begin, end]``, in seconds."""
    if math.isinf(half_life):
        return end - begin
    rate = _LN2 / half_life
    # exp(-rate*(now-end)) - exp(-rate*(now-begin)), written to stay exact for tiny intervals
    return math.exp(-rate * (now - end)) * -math.expm1(-rate * (end - begin)) / rate


def _milli(gpu_seconds: float) -> int:
    return round(gpu_seconds * MILLI)


def _check_half_life(half_life: float) -> None:
    if not half_life > 0:
        raise ValueError(f"half_life must be > 0 seconds (math.inf: no decay), got {half_life}")
