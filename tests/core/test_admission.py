"""Admission: fair-share order, limits, budgets, capacity, and a reason for every waiting pod."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.quota import POOL, TenantBuilder, tenant, waiting_pod

from gpufair.core import admission, fairshare, policy

HARD = policy.BudgetEnforcement.HARD
SOFT = policy.BudgetEnforcement.SOFT


@dataclasses.dataclass(frozen=True)
class Case:
    tenants: tuple[TenantBuilder, ...]
    waiting: tuple[admission.WaitingPod, ...]
    free: int
    admit: tuple[str, ...]
    holds: dict[str, tuple[admission.HoldReason, str]] = dataclasses.field(default_factory=dict)
    capacity: int | None = None
    """With a capacity, fair shares of the pool are passed (demand = allocated + waiting)."""
    soft: tuple[str, ...] = ()


def pods(prefix: str, owner: str, count: int, gpus: int = 1) -> tuple[admission.WaitingPod, ...]:
    return tuple(
        waiting_pod(f"{prefix}{i}").tenant(owner).gpus(gpus).created(i).obj() for i in range(count)
    )


NO_CAPACITY = admission.HoldReason.NO_CAPACITY
AT_LIMIT = admission.HoldReason.AT_LIMIT

CASES = [
    pytest.param(
        Case(
            (tenant("a").usage(100), tenant("b").weight(2).usage(100)),
            (
                waiting_pod("a1").tenant("a").gpus(4).obj(),
                waiting_pod("b1").tenant("b").gpus(4).obj(),
            ),
            free=4,
            admit=("b1",),
            holds={"a1": (NO_CAPACITY, "waiting for 4 GPUs in pool h100: 0 free")},
        ),
        id="lowest-usage-per-weight-first",
    ),
    pytest.param(
        Case(
            (tenant("a"),),
            (
                waiting_pod("low").tenant("a").priority(0).obj(),
                waiting_pod("high").tenant("a").priority(10).created(5).obj(),
            ),
            free=1,
            admit=("high",),
            holds={"low": (NO_CAPACITY, "0 free")},
        ),
        id="then-higher-priority",
    ),
    pytest.param(
        Case(
            (tenant("a"),),
            (
                waiting_pod("young").tenant("a").created(5).obj(),
                waiting_pod("old").tenant("a").created(1).obj(),
            ),
            free=1,
            admit=("old",),
            holds={"young": (NO_CAPACITY, "0 free")},
        ),
        id="then-older",
    ),
    pytest.param(
        Case(
            (tenant("a").limit(32).allocated(32),),
            (waiting_pod("a1").tenant("a").obj(),),
            free=10,
            admit=(),
            holds={"a1": (AT_LIMIT, "tenant a at limit 32/32 GPUs in pool h100 (requested 1)")},
        ),
        id="at-limit",
    ),
    pytest.param(
        Case(
            (tenant("a").limit(32).allocated(30),),
            (
                waiting_pod("big").tenant("a").gpus(4).obj(),
                waiting_pod("small").tenant("a").gpus(2).created(1).obj(),
            ),
            free=10,
            admit=("small",),
            holds={"big": (AT_LIMIT, "tenant a at limit 32/32 GPUs in pool h100 (requested 4)")},
        ),
        id="limit-admits-what-fits",
    ),
    pytest.param(
        Case(
            (tenant("a").limit(8),),
            (waiting_pod("huge").tenant("a").gpus(16).obj(),),
            free=64,
            admit=(),
            holds={"huge": (AT_LIMIT, "requests 16 GPUs, above tenant a's limit 8 in pool h100")},
        ),
        id="larger-than-limit",
    ),
    pytest.param(
        Case(
            (tenant("a").budget(gpu_hours=5000, used=5000),),
            (waiting_pod("a1").tenant("a").obj(),),
            free=8,
            admit=(),
            holds={
                "a1": (
                    admission.HoldReason.BUDGET_EXHAUSTED,
                    "tenant a GPU-hour budget exhausted: 5000/5000 h this period",
                )
            },
        ),
        id="hard-budget-exhausted",
    ),
    pytest.param(
        Case(
            (tenant("a").budget(gpu_hours=10, used=12.5, enforcement=SOFT),),
            (waiting_pod("a1").tenant("a").obj(),),
            free=8,
            admit=("a1",),
            soft=("a",),
        ),
        id="soft-budget-only-reported",
    ),
    pytest.param(
        Case(
            (tenant("a"),),
            (
                waiting_pod("ghost").tenant("nobody").obj(),
                waiting_pod("elsewhere").tenant("a").pool("a100").obj(),
            ),
            free=8,
            admit=(),
            holds={
                "ghost": (admission.HoldReason.UNKNOWN_TENANT, "no TenantQuota named nobody"),
                "elsewhere": (admission.HoldReason.UNKNOWN_POOL, "no GPUPool named a100"),
            },
        ),
        id="unknown-tenant-and-pool",
    ),
    pytest.param(
        Case(
            (tenant("a").pool("a100"),),
            (waiting_pod("a1").tenant("a").obj(),),
            free=8,
            admit=(),
            holds={
                "a1": (
                    admission.HoldReason.NO_QUOTA_IN_POOL,
                    "tenant a has no quota in pool h100",
                )
            },
        ),
        id="no-quota-in-pool",
    ),
    pytest.param(
        Case(
            (tenant("a"), tenant("b").usage(50)),
            (
                waiting_pod("a-big").tenant("a").gpus(4).obj(),
                waiting_pod("b-small").tenant("b").gpus(2).obj(),
            ),
            free=3,
            admit=("b-small",),
            holds={"a-big": (NO_CAPACITY, "waiting for 4 GPUs in pool h100: 1 free")},
        ),
        id="smaller-pod-backfills",
    ),
    pytest.param(
        Case(
            (tenant("a"), tenant("b").usage(1000)),
            pods("a", "a", 8) + pods("b", "b", 8),
            free=8,
            capacity=8,
            admit=("a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"),
            holds={"a4": (NO_CAPACITY, "0 free"), "b7": (NO_CAPACITY, "0 free")},
        ),
        id="fair-share-pass-first",
    ),
    pytest.param(
        Case(
            (tenant("a"), tenant("b").usage(1000)),
            pods("a", "a", 8) + pods("b", "b", 8),
            free=8,
            admit=tuple(f"a{i}" for i in range(8)),
            holds={"b0": (NO_CAPACITY, "0 free")},
        ),
        id="without-shares-pure-order",
    ),
    pytest.param(
        Case(
            (tenant("a").usage(5), tenant("b"), tenant("c").usage(9)),
            pods("a", "a", 4) + pods("b", "b", 4) + pods("c", "c", 4),
            free=10,
            capacity=10,
            admit=("b0", "b1", "b2", "a0", "a1", "a2", "c0", "c1", "c2", "b3"),
            holds={"a3": (NO_CAPACITY, "0 free")},
        ),
        id="leftover-of-real-shares-goes-in-order",
    ),
    pytest.param(
        Case(
            (tenant("a").guaranteed(8).lendable(2), tenant("b")),
            pods("b", "b", 10),
            free=10,
            capacity=10,
            admit=("b0", "b1", "b2", "b3"),
            holds={
                "b4": (
                    NO_CAPACITY,
                    "waiting for 1 GPUs in pool h100: 6 free,"
                    " 6 of them reserved for other tenants' guarantees",
                )
            },
        ),
        id="non-lendable-guarantee-stays-free",
    ),
    pytest.param(
        Case(
            (tenant("a"),),
            (waiting_pod("a1").tenant("a").gpus(16).obj(),),
            free=8,
            capacity=8,
            admit=(),
            holds={"a1": (NO_CAPACITY, "requests 16 GPUs, pool h100 has 8")},
        ),
        id="larger-than-pool",
    ),
]


def pool_shares(case: Case) -> dict[str, fairshare.PoolShares]:
    if case.capacity is None:
        return {}
    claims = []
    for builder in case.tenants:
        waiting = sum(p.gpus for p in case.waiting if p.tenant == builder.name)
        allocated = builder.state().allocated.get(POOL, 0)
        claims.append(dataclasses.replace(builder.claim(), demand=allocated + waiting))
    return {POOL: fairshare.compute(case.capacity, claims)}


@pytest.mark.parametrize("case", CASES)
def test_decide(case: Case) -> None:
    tenants = {t.name: t.state() for t in case.tenants}
    waiting = list(case.waiting)
    free = {POOL: case.free}
    shares = pool_shares(case)
    before = copy.deepcopy((tenants, waiting, free, shares))

    decision = admission.decide(waiting=waiting, tenants=tenants, free=free, shares=shares)

    assert tuple(pod.uid for pod in decision.admit) == case.admit
    for uid, (reason, message) in case.holds.items():
        hold = decision.hold(uid)
        assert hold is not None, uid
        assert hold.reason == reason
        assert message in hold.message
    assert decision.soft_budget_exceeded == case.soft
    assert (tenants, waiting, free, shares) == before


@pytest.mark.parametrize(
    ("allocated", "requested", "limit", "want"),
    [
        pytest.param(0, 64, None, None, id="no-limit"),
        pytest.param(28, 4, 32, None, id="up-to-limit"),
        pytest.param(
            30, 4, 32, "tenant a near limit 30/32 GPUs in pool h100 (requested 4)", id="over"
        ),
        pytest.param(32, 1, 32, "tenant a at limit 32/32 GPUs in pool h100 (requested 1)", id="at"),
    ],
)
def test_check_limit(allocated: int, requested: int, limit: int | None, want: str | None) -> None:
    got = admission.check_limit(
        tenant="a", pool=POOL, allocated=allocated, requested=requested, limit=limit
    )
    assert got == want
    assert admission.would_exceed_limit(allocated=allocated, requested=requested, limit=limit) == (
        want is not None
    )


@pytest.mark.parametrize(
    ("builder", "want"),
    [
        pytest.param(tenant("a").limit(4).allocated(4), None, id="queue-policy-never-rejects"),
        pytest.param(
            tenant("a").limit(4).allocated(4).on_limit(policy.OnLimit.REJECT),
            admission.HoldReason.AT_LIMIT,
            id="reject-over-limit",
        ),
        pytest.param(
            tenant("a").limit(4).allocated(3).on_limit(policy.OnLimit.REJECT),
            None,
            id="reject-policy-within-limit",
        ),
        pytest.param(
            tenant("a").budget(gpu_hours=1, used=2).on_limit(policy.OnLimit.REJECT),
            admission.HoldReason.BUDGET_EXHAUSTED,
            id="reject-hard-budget",
        ),
        pytest.param(
            tenant("a")
            .budget(gpu_hours=1, used=2, enforcement=SOFT)
            .on_limit(policy.OnLimit.REJECT),
            None,
            id="soft-budget-never-rejects",
        ),
    ],
)
def test_reject_at_creation(builder: TenantBuilder, want: admission.HoldReason | None) -> None:
    verdict = admission.reject(pod=waiting_pod("p").tenant("a").obj(), tenant=builder.state())
    assert (verdict.reason if verdict else None) == want


# --- properties -------------------------------------------------------------------------


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[admission.WaitingPod], dict[str, admission.TenantState], int, int]:
    capacity = draw(st.integers(0, 32))
    names = ["a", "b", "c"][: draw(st.integers(1, 3))]
    tenants = {}
    allocated_total = 0
    for name in names:
        allocated = draw(st.integers(0, 8))
        allocated_total += allocated
        tenants[name] = (
            tenant(name)
            .weight(draw(st.sampled_from([0.5, 1.0, 2.0])))
            .usage(draw(st.floats(0, 1e6)))
            .allocated(allocated)
            .limit(draw(st.none() | st.integers(allocated, 24)))
            .state()
        )
    waiting = [
        waiting_pod(f"p{i}")
        .tenant(draw(st.sampled_from(names)))
        .gpus(draw(st.integers(1, 8)))
        .priority(draw(st.integers(0, 2)))
        .created(draw(st.integers(0, 100)))
        .obj()
        for i in range(draw(st.integers(0, 12)))
    ]
    free = max(0, capacity - allocated_total)
    return waiting, tenants, free, capacity


@given(scenario=scenarios(), with_shares=st.booleans())
def test_admission_respects_capacity_and_limits_and_explains_the_rest(
    scenario: tuple[list[admission.WaitingPod], dict[str, admission.TenantState], int, int],
    with_shares: bool,
) -> None:
    waiting, tenants, free, capacity = scenario
    shares = {}
    if with_shares:
        claims = [
            fairshare.TenantClaim(
                tenant=name,
                weight=state.weight,
                limit=state.limits[POOL],
                demand=state.allocated[POOL] + sum(p.gpus for p in waiting if p.tenant == name),
            )
            for name, state in tenants.items()
        ]
        shares = {POOL: fairshare.compute(capacity, claims)}
    before = copy.deepcopy((waiting, tenants))

    decision = admission.decide(waiting=waiting, tenants=tenants, free={POOL: free}, shares=shares)

    assert sum(pod.gpus for pod in decision.admit) <= free
    for name, state in tenants.items():
        taken = sum(pod.gpus for pod in decision.admit if pod.tenant == name)
        limit = state.limits[POOL]
        assert limit is None or state.allocated[POOL] + taken <= limit
    decided = [pod.uid for pod in decision.admit] + [hold.pod.uid for hold in decision.held]
    assert sorted(decided) == sorted(pod.uid for pod in waiting)
    assert all(hold.message for hold in decision.held)
    assert (waiting, tenants) == before
