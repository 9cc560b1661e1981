"""Usage accounting: exact milli-GPU-seconds, decay by half-life, no double counting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpufair.core import usage

HOUR = 3600.0
T0 = 1_700_000_000.0  # a realistic epoch time: precision must hold there


@pytest.mark.parametrize(
    ("value", "elapsed", "half_life", "want"),
    [
        pytest.param(100.0, 0.0, HOUR, 100.0, id="no-time-no-decay"),
        pytest.param(100.0, HOUR, HOUR, 50.0, id="one-half-life-halves"),
        pytest.param(100.0, 2 * HOUR, HOUR, 25.0, id="two-half-lives-quarter"),
        pytest.param(100.0, 1e9, math.inf, 100.0, id="infinite-half-life-keeps"),
    ],
)
def test_decay(value: float, elapsed: float, half_life: float, want: float) -> None:
    assert usage.decay(value, elapsed=elapsed, half_life=half_life) == pytest.approx(want)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: usage.decay(1.0, elapsed=-1.0, half_life=HOUR), id="negative-elapsed"),
        pytest.param(lambda: usage.decay(1.0, elapsed=1.0, half_life=0.0), id="zero-half-life"),
        pytest.param(
            lambda: usage.accrue(usage.Usage(as_of=T0), gpus=-1, now=T0 + 1, half_life=HOUR),
            id="negative-gpus",
        ),
        pytest.param(lambda: usage.period_start(T0, period=0), id="zero-period"),
    ],
)
def test_bad_arguments_are_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="must be"):
        call()


def test_first_accrual_only_starts_the_clock() -> None:
    fresh = usage.Usage()
    started = usage.accrue(fresh, gpus=8, now=T0, half_life=HOUR)
    assert started == usage.Usage(as_of=T0)
    assert fresh == usage.Usage()


def test_accrue_counts_the_interval_after_as_of() -> None:
    result = usage.accrue(usage.Usage(as_of=T0), gpus=2, now=T0 + 100, half_life=math.inf)
    assert result.cumulative_milli == 200_000
    assert result.gpu_seconds == 200.0
    assert result.decayed_milli == 200_000
    assert result.as_of == T0 + 100


def test_decayed_usage_integrates_the_decay_exactly() -> None:
    # one GPU for one half-life: integral of 2**(-age/h) over [0, h] = h / (2 ln 2)
    result = usage.accrue(usage.Usage(as_of=T0), gpus=1, now=T0 + HOUR, half_life=HOUR)
    assert result.cumulative_milli == 3_600_000
    assert result.decayed_gpu_seconds == pytest.approx(HOUR / (2 * math.log(2)), abs=1e-3)
    later = usage.decayed_at(result, now=T0 + 2 * HOUR, half_life=HOUR)
    assert later == pytest.approx(result.decayed_gpu_seconds / 2)


@pytest.mark.parametrize(
    "replay_at",
    [pytest.param(T0 + 100, id="same-instant"), pytest.param(T0 + 50, id="earlier-instant")],
)
def test_replaying_an_accrual_never_counts_twice(replay_at: float) -> None:
    once = usage.accrue(usage.Usage(as_of=T0), gpus=4, now=T0 + 100, half_life=HOUR)
    assert usage.accrue(once, gpus=4, now=replay_at, half_life=HOUR) == once


@pytest.mark.parametrize(
    ("interval", "want_gpu_seconds"),
    [
        pytest.param(usage.Interval(T0 - 500, T0 - 10, 4), 0.0, id="ended-before-as-of"),
        pytest.param(usage.Interval(T0 - 500, T0 + 10, 4), 40.0, id="counted-from-as-of"),
        pytest.param(usage.Interval(T0 + 20, T0 + 30, 2), 20.0, id="inside"),
        pytest.param(usage.Interval(T0 + 90, None, 1), 10.0, id="still-running"),
        pytest.param(usage.Interval(T0 + 90, T0 + 500, 1), 10.0, id="end-after-now-clipped"),
    ],
)
def test_accrue_intervals_clips_to_the_unmetered_window(
    interval: usage.Interval, want_gpu_seconds: float
) -> None:
    result = usage.accrue_intervals(
        usage.Usage(as_of=T0), intervals=[interval], now=T0 + 100, half_life=math.inf
    )
    assert result.gpu_seconds == want_gpu_seconds


def test_budget_period_restarts_at_the_period_boundary() -> None:
    period = 720 * HOUR
    boundary = usage.period_start(T0, period=period) + period
    before = usage.accrue(
        usage.Usage(as_of=boundary - 2 * HOUR),
        gpus=1,
        now=boundary - HOUR,
        half_life=HOUR,
        period=period,
    )
    assert before.period_milli == 3_600_000
    after = usage.accrue(before, gpus=1, now=boundary + HOUR, half_life=HOUR, period=period)
    assert after.period_start == boundary
    assert after.period_milli == 3_600_000  # only the hour after the boundary
    assert after.gpu_hours == pytest.approx(3.0)
    assert usage.period_gpu_hours([before, after], now=boundary + HOUR, period=period) == 1.0
    assert usage.period_gpu_hours([after], now=boundary + period, period=period) == 0.0


# --- properties -------------------------------------------------------------------------

steps = st.lists(st.floats(0.0, 10 * HOUR, allow_nan=False), min_size=1, max_size=8)
half_lives = st.sampled_from([60.0, HOUR, 24 * HOUR, 7 * 24 * HOUR, math.inf])


@given(gpus=st.integers(0, 64), gaps=steps, half_life=half_lives)
def test_metering_often_or_rarely_gives_the_same_usage(
    gpus: int, gaps: list[float], half_life: float
) -> None:
    now = T0
    often = usage.Usage(as_of=T0)
    for gap in gaps:
        now += gap
        often = usage.accrue(often, gpus=gpus, now=now, half_life=half_life)
    rarely = usage.accrue(usage.Usage(as_of=T0), gpus=gpus, now=now, half_life=half_life)
    assert abs(often.cumulative_milli - rarely.cumulative_milli) <= len(gaps)
    assert abs(often.decayed_milli - rarely.decayed_milli) <= 2 * len(gaps)


@given(gpus=st.integers(0, 64), gaps=steps, half_life=half_lives)
def test_decayed_never_exceeds_cumulative_and_cumulative_never_shrinks(
    gpus: int, gaps: list[float], half_life: float
) -> None:
    now = T0
    current = usage.Usage(as_of=T0, cumulative_milli=5_000, decayed_milli=5_000)
    for gap in gaps:
        now += gap
        following = usage.accrue(current, gpus=gpus, now=now, half_life=half_life)
        assert following.cumulative_milli >= current.cumulative_milli
        assert following.decayed_milli <= following.cumulative_milli + 1
        current = following


def test_spans_accrue_as_the_intervals_they_are() -> None:
    before = usage.Usage(as_of=T0)
    held = [(T0 - HOUR, None, 2), (T0 + 60.0, T0 + 600.0, 1), (T0 + 900.0, None, 4)]
    intervals = [usage.Interval(start=a, end=b, gpus=n) for a, b, n in held]
    now = T0 + HOUR
    assert usage.accrue_spans(before, spans=held, now=now, half_life=HOUR) == (
        usage.accrue_intervals(before, intervals=intervals, now=now, half_life=HOUR)
    )


def test_a_span_of_negative_gpus_is_refused() -> None:
    with pytest.raises(ValueError, match="span gpus must be >= 0, got -1"):
        usage.accrue_spans(
            usage.Usage(as_of=T0), spans=[(T0, None, -1)], now=T0 + 1, half_life=HOUR
        )
