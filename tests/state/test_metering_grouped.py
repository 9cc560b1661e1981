"""Metering from grouped spans (``metering.grouped``) gives exactly the figures of metering
every pod's span (issue 16: the pass keeps each (tenant, pool)'s spans grouped from its
persisted ``asOf``, so a pass meters one term per stretch instead of one per pod)."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st

from gpufair.core import policy, usage
from gpufair.state import metering, model

# Instants on a coarse grid, so that starts, ends, ``asOf`` and ``now`` often coincide.
instants = st.integers(0, 40).map(lambda n: 1_000.0 + 25.0 * n)
spans = st.lists(
    st.tuples(instants, st.none() | instants, st.integers(0, 8)), min_size=0, max_size=30
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    held=spans,
    as_of=st.none() | instants,
    created=instants,
    now=instants,
    half_life=st.sampled_from([600.0, 7 * 24 * 3600.0, float("inf")]),
    period=st.none() | st.sampled_from([100.0, 400.0]),
)
def test_grouped_spans_meter_to_the_same_figures(
    held: list[usage.Span],
    as_of: float | None,
    created: float,
    now: float,
    half_life: float,
    period: float | None,
) -> None:
    tenant = model.Tenant(
        name="a",
        created_at=created,
        budget=None
        if period is None
        else model.Budget(
            gpu_hours=1.0, period_seconds=period, enforcement=policy.BudgetEnforcement.HARD
        ),
    )
    previous = (
        None if as_of is None else usage.Usage(cumulative_milli=5, decayed_milli=7, as_of=as_of)
    )
    since = metering.since(previous, tenant=tenant, now=now)
    each = metering.advance_spans(previous, held, tenant=tenant, now=now, half_life=half_life)
    together = metering.advance_spans(
        previous, metering.grouped(held, since=since), tenant=tenant, now=now, half_life=half_life
    )
    assert together == each
