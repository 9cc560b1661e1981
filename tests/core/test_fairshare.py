"""Weighted fair share: guarantees first, reserved idle guarantee, then water-filling by weight."""

from __future__ import annotations

import copy
import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.quota import TenantBuilder, shares, tenant

from gpufair.core import fairshare


@dataclasses.dataclass(frozen=True)
class Case:
    capacity: int
    tenants: tuple[TenantBuilder, ...]
    want: dict[str, float]
    overcommitted: bool = False
    rationed: bool = False
    reserved: dict[str, float] = dataclasses.field(default_factory=dict)


CASES = [
    pytest.param(Case(8, (tenant("a").demand(5),), {"a": 5.0}), id="alone-gets-its-demand"),
    pytest.param(
        Case(64, (tenant("a").guaranteed(32), tenant("b").demand(64)), {"a": 0.0, "b": 64.0}),
        id="idle-guarantee-is-lent",
    ),
    pytest.param(
        Case(12, (tenant("a").weight(2).demand(12), tenant("b").demand(12)), {"a": 8, "b": 4}),
        id="rest-split-by-weight",
    ),
    pytest.param(
        Case(
            64,
            (
                tenant("a").weight(2).guaranteed(16).limit(32).demand(40),
                tenant("b").guaranteed(16).demand(40),
                tenant("c").demand(10),
            ),
            {"a": 32.0, "b": 24.0, "c": 8.0},
        ),
        id="guarantees-first-then-weights",
    ),
    pytest.param(
        Case(20, (tenant("a").limit(5).demand(20), tenant("b").demand(20)), {"a": 5, "b": 15}),
        id="limit-caps-borrowing",
    ),
    pytest.param(
        Case(10, (tenant("a").guaranteed(6).demand(4), tenant("b").demand(10)), {"a": 4, "b": 6}),
        id="demand-within-guarantee-met",
    ),
    pytest.param(
        Case(10, (tenant("a").demand(2), tenant("b").demand(20)), {"a": 2, "b": 8}),
        id="small-demand-frees-rest-for-others",
    ),
    pytest.param(
        Case(
            10,
            (tenant("a").guaranteed(8).lendable(2), tenant("b").demand(10)),
            {"a": 0.0, "b": 4.0},
            reserved={"a": 6.0},
        ),
        id="non-lendable-idle-guarantee-reserved",
    ),
    pytest.param(
        Case(
            10,
            (tenant("a").guaranteed(8).lendable(2).demand(3), tenant("b").demand(10)),
            {"a": 3.0, "b": 4.0},
            reserved={"a": 3.0},
        ),
        id="non-lendable-reserved-beyond-demand-only",
    ),
    pytest.param(
        Case(
            10,
            (tenant("a").guaranteed(8).demand(8), tenant("b").weight(3).guaranteed(8).demand(8)),
            {"a": 2.5, "b": 7.5},
            overcommitted=True,
            rationed=True,
        ),
        id="guarantees-in-demand-rationed-by-weight",
    ),
    pytest.param(
        Case(
            10,
            (tenant("a").guaranteed(2).demand(2), tenant("b").guaranteed(10).demand(10)),
            {"a": 2.0, "b": 8.0},
            overcommitted=True,
            rationed=True,
        ),
        id="rationing-caps-each-at-its-guarantee",
    ),
    pytest.param(
        Case(
            10,
            (tenant("a").guaranteed(8).demand(2), tenant("b").guaranteed(8).demand(20)),
            {"a": 2.0, "b": 8.0},
            overcommitted=True,
        ),
        id="overcommitted-but-idle-is-not-rationed",
    ),
    pytest.param(
        Case(10, tuple(tenant(n).demand(10) for n in "abc"), dict.fromkeys("abc", 3.333333333)),
        id="shares-are-real-numbers",
    ),
    pytest.param(
        Case(0, (tenant("a").guaranteed(4).demand(4),), {"a": 0.0}, True, True),
        id="empty-pool",
    ),
    pytest.param(Case(8, (), {}), id="no-tenants"),
]


@pytest.mark.parametrize("case", CASES)
def test_compute(case: Case) -> None:
    claims = [t.claim() for t in case.tenants]
    before = copy.deepcopy(claims)

    result = fairshare.compute(case.capacity, claims)

    assert dict(result.shares) == pytest.approx(case.want)
    assert result.overcommitted == case.overcommitted
    assert result.rationed == case.rationed
    assert dict(result.reserved) == case.reserved
    assert result.capacity == case.capacity
    assert result.guaranteed_total == sum(c.guaranteed for c in claims)
    assert claims == before


def test_integer_shares_are_exact_floats() -> None:
    result = shares(3, tenant("a").weight(0.1).demand(9), tenant("b").weight(0.2).demand(9))
    assert result.share("a") == 1.0
    assert result.share("b") == 2.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: tenant("a").weight(0).claim(), "weight", id="zero-weight"),
        pytest.param(lambda: tenant("a").guaranteed(-1).claim(), "guaranteed", id="negative"),
        pytest.param(lambda: tenant("a").demand(-1).claim(), "demand", id="negative-demand"),
        pytest.param(lambda: tenant("a").guaranteed(4).limit(2).claim(), "limit", id="g>limit"),
        pytest.param(lambda: tenant("a").guaranteed(2).lendable(4).claim(), "lendable", id="l>g"),
        pytest.param(lambda: shares(-1), "capacity", id="negative-capacity"),
        pytest.param(lambda: shares(4, tenant("a"), tenant("a")), "more than once", id="twice"),
    ],
)
def test_invalid_input_is_refused(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("allocated", "borrowed", "deficit", "reclaimable"),
    [
        pytest.param(0, 0.0, 24.0, 0, id="idle"),
        pytest.param(16, 0.0, 8.0, 0, id="at-guarantee"),
        pytest.param(24, 8.0, 0.0, 0, id="at-share"),
        pytest.param(30, 14.0, 0.0, 6, id="above-share"),
    ],
)
def test_per_tenant_helpers(
    allocated: int, borrowed: float, deficit: float, reclaimable: int
) -> None:
    pool = shares(
        64,
        tenant("a").weight(2).guaranteed(16).limit(32).demand(40),
        tenant("b").guaranteed(16).demand(40),
        tenant("c").demand(10),
    )
    assert pool.share("b") == 24.0
    assert pool.borrowed("b", allocated) == borrowed
    assert pool.deficit("b", allocated) == deficit
    assert pool.reclaimable("b", allocated) == reclaimable


def test_a_rationed_pool_protects_only_the_share() -> None:
    """Guarantees in demand above the capacity cannot all be kept: each is cut to its rationed
    share, and a tenant holding its whole guarantee must give the excess back (issue 13 item 7:
    otherwise the rationed share of the other tenant is never restored)."""
    pool = shares(10, tenant("a").guaranteed(8).demand(8), tenant("b").guaranteed(8).demand(8))
    assert pool.rationed
    assert pool.share("a") == 5.0
    assert pool.protected("a") == 5.0
    assert pool.reclaimable("a", 8) == 3
    assert pool.share("nobody") == 0.0


def test_a_guarantee_protects_above_the_share_when_not_rationed() -> None:
    pool = shares(10, tenant("a").guaranteed(6).demand(4), tenant("b").demand(8))
    assert not pool.rationed
    assert pool.share("a") == 4.0
    assert pool.protected("a") == 6.0


# --- properties -------------------------------------------------------------------------


@st.composite
def claim_lists(draw: st.DrawFn) -> list[fairshare.TenantClaim]:
    count = draw(st.integers(0, 6))
    claims = []
    for index in range(count):
        guaranteed = draw(st.integers(0, 20))
        limit = draw(st.none() | st.integers(guaranteed, 40))
        lendable = draw(st.none() | st.integers(0, guaranteed))
        claims.append(
            fairshare.TenantClaim(
                tenant=f"t{index}",
                weight=draw(st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0])),
                guaranteed=guaranteed,
                limit=limit,
                lendable=lendable,
                demand=draw(st.integers(0, 40)),
            )
        )
    return claims


capacities = st.integers(0, 80)
EPS = 1e-6


@given(capacity=capacities, claims=claim_lists())
def test_shares_never_exceed_capacity_limit_or_demand(
    capacity: int, claims: list[fairshare.TenantClaim]
) -> None:
    result = fairshare.compute(capacity, claims)
    assert sum(result.shares.values()) + sum(result.reserved.values()) <= capacity + EPS
    for claim in claims:
        share = result.share(claim.tenant)
        assert 0 <= share <= claim.demand
        assert claim.limit is None or share <= claim.limit


@given(capacity=capacities, claims=claim_lists())
def test_work_conserving(capacity: int, claims: list[fairshare.TenantClaim]) -> None:
    result = fairshare.compute(capacity, claims)
    handed_out = sum(result.shares.values())
    usable = capacity - sum(result.reserved.values())
    assert handed_out == pytest.approx(min(usable, sum(c.wanted for c in claims)), abs=EPS)


@given(
    capacity=capacities,
    claims=claim_lists().filter(bool),
    pick=st.integers(0, 5),
    factor=st.sampled_from([1.5, 2.0, 4.0, 10.0]),
)
def test_raising_a_weight_never_lowers_that_share(
    capacity: int, claims: list[fairshare.TenantClaim], pick: int, factor: float
) -> None:
    index = pick % len(claims)
    heavier = list(claims)
    heavier[index] = dataclasses.replace(claims[index], weight=claims[index].weight * factor)
    name = claims[index].tenant
    before = fairshare.compute(capacity, claims).share(name)
    after = fairshare.compute(capacity, heavier).share(name)
    assert after >= before - EPS


@given(capacity=capacities, claims=claim_lists())
def test_guarantees_that_fit_are_met(capacity: int, claims: list[fairshare.TenantClaim]) -> None:
    result = fairshare.compute(capacity, claims)
    if sum(c.guaranteed for c in claims) > capacity:
        assert result.overcommitted
        return
    assert not result.overcommitted
    assert not result.rationed
    for claim in claims:
        assert result.share(claim.tenant) >= min(claim.wanted, claim.guaranteed) - EPS
        if claim.demand <= claim.guaranteed:
            assert result.share(claim.tenant) == pytest.approx(claim.demand)


@given(capacity=capacities, claims=claim_lists(), data=st.data())
def test_order_of_claims_does_not_matter(
    capacity: int, claims: list[fairshare.TenantClaim], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(claims))
    assert fairshare.compute(capacity, shuffled) == fairshare.compute(capacity, claims)


def _exact_shares(capacity: int, claims: list[fairshare.TenantClaim]) -> dict[str, Fraction]:
    """The rule of the module docstring in exact rational arithmetic: the oracle the float
    implementation must agree with up to the documented rounding."""

    def fill(amount: Fraction, caps: dict[str, Fraction]) -> dict[str, Fraction]:
        given = dict.fromkeys(caps, Fraction(0))
        open_ = sorted((n for n in caps if caps[n] > 0), key=lambda n: caps[n] / weights[n])
        left, weight_left = max(amount, Fraction(0)), sum(weights[n] for n in open_)
        for index, name in enumerate(open_):
            level = left / weight_left
            if caps[name] / weights[name] > level:
                for rest in open_[index:]:
                    given[rest] = weights[rest] * level
                break
            given[name] = caps[name]
            left -= caps[name]
            weight_left -= weights[name]
        return given

    weights = {c.tenant: Fraction(c.weight) for c in claims}
    base = {c.tenant: Fraction(min(c.wanted, c.guaranteed)) for c in claims}
    base_total = sum(base.values(), Fraction(0))
    if base_total > capacity:
        return fill(Fraction(capacity), base)
    held = {c.tenant: Fraction(c.non_lendable - c.demand) for c in claims}
    left = Fraction(capacity) - base_total
    left -= sum(fill(left, {n: h for n, h in held.items() if h > 0}).values(), Fraction(0))
    unmet = {c.tenant: c.wanted - base[c.tenant] for c in claims}
    extra = fill(left, {n: Fraction(u) for n, u in unmet.items() if u > 0})
    return {n: base[n] + extra.get(n, Fraction(0)) for n in base}


@given(capacity=capacities, claims=claim_lists())
def test_float_shares_match_exact_arithmetic_up_to_rounding(
    capacity: int, claims: list[fairshare.TenantClaim]
) -> None:
    result = fairshare.compute(capacity, claims)
    for name, exact in _exact_shares(capacity, claims).items():
        assert abs(Fraction(result.share(name)) - exact) <= Fraction(1, 10**fairshare.PRECISION)
        if exact.denominator == 1:
            assert result.share(name) == float(exact)
