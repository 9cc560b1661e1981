"""Hostile custom resources never crash the operator (issue 13, deliverable 4, operator part).

TenantQuotas and GPUPools with huge and negative numbers, wrong types, unicode and 10,000
pools go through the store (as kopf's handlers feed it), a whole pass and the status
serialisation: nothing raises, and every spec the operator cannot use is reported in its
``Ready`` condition (``InvalidSpec``, with the reason) and by a Warning event.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import operator as b

from gpufair.api import names
from gpufair.operator import objects, plan, store

NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**308, 10**400, -(10**400)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["8", "-1", "\uff11\uff12", "1e400", "NaN", "", None, [], {}]),
)
NAMES = st.one_of(
    st.sampled_from([b.POOL, "a100", "ünïcødé", "😀", "x" * 300, "", "UPPER", "a/b"]),
    st.text(max_size=20),
)


@st.composite
def tenant_bodies(draw: st.DrawFn, index: int) -> dict[str, Any]:
    pools = [
        {
            "name": draw(NAMES),
            "guaranteed": draw(NUMBERS),
            "limit": draw(NUMBERS),
            "lendable": draw(st.one_of(st.none(), NUMBERS)),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    spec: dict[str, Any] = {
        "namespaces": draw(st.one_of(st.just([f"ns{index}"]), st.lists(NAMES, max_size=3))),
        "weight": draw(NUMBERS),
        "pools": pools,
        "preemption": {"minRuntimeSeconds": draw(NUMBERS)},
        "budget": draw(
            st.one_of(st.none(), st.fixed_dictionaries({"gpuHours": NUMBERS, "period": NAMES}))
        ),
    }
    return {
        "metadata": {"name": f"t{index}-{draw(NAMES)}", "generation": 1},
        "spec": spec,
        "status": {
            "conditions": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"type": NAMES, "status": NAMES, "observedGeneration": NUMBERS}
                    ),
                    max_size=2,
                )
            ),
            "pools": draw(
                st.one_of(st.just([]), st.lists(st.fixed_dictionaries({"name": NAMES}), max_size=2))
            ),
        },
    }


@st.composite
def pool_bodies(draw: st.DrawFn, index: int) -> dict[str, Any]:
    return {
        "metadata": {"name": draw(st.one_of(st.just(b.POOL), NAMES)) + str(index)},
        "spec": {
            "nodeSelector": draw(
                st.one_of(
                    st.just({"matchLabels": {b.POOL_LABEL: b.POOL}}),
                    st.fixed_dictionaries(
                        {"matchLabels": st.dictionaries(NAMES, NAMES, max_size=2)}
                    ),
                    st.fixed_dictionaries(
                        {
                            "matchExpressions": st.lists(
                                st.dictionaries(NAMES, NAMES, max_size=3), max_size=2
                            )
                        }
                    ),
                )
            ),
            "resourceName": draw(st.one_of(st.just(names.DEFAULT_GPU_RESOURCE), NAMES)),
            "topology": draw(st.one_of(st.just({}), st.dictionaries(NAMES, NAMES, max_size=2))),
        },
    }


def _pass(cluster: store.ClusterStore) -> plan.Plan:
    decided = plan.plan(cluster.take_snapshot(now=1000.0), half_life=3600.0)
    for status in decided.tenants.values():
        objects.tenant_status(status)
    for pool_status in decided.pools.values():
        objects.pool_status(pool_status)
    return decided


def _loaded() -> store.ClusterStore:
    cluster = store.ClusterStore()
    cluster.nodes = {"n1": b.node("n1")}
    cluster.pods = {p.uid: p for p in (b.pod(f"ns{i}/p").gpus(2).build() for i in range(3))}
    return cluster


def _reported_invalid(decided: plan.Plan, name: str) -> bool:
    ready = [c for c in decided.tenants[name].conditions if c.type == "Ready"]
    warned = any(
        e.target.name == name and e.type.value == "Warning" and e.reason == "InvalidSpec"
        for e in decided.events
    )
    return (
        bool(ready) and ready[0].status == "False" and ready[0].reason == "InvalidSpec" and warned
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tenants=st.lists(st.integers(0, 2), min_size=1, max_size=3).flatmap(
        lambda ids: st.tuples(*(tenant_bodies(i) for i in range(len(ids))))
    ),
    pools=st.lists(st.integers(0, 2), max_size=3).flatmap(
        lambda ids: st.tuples(*(pool_bodies(i) for i in range(len(ids))))
    ),
)
def test_hostile_quotas_and_pools_never_crash_a_pass(
    tenants: tuple[dict[str, Any], ...], pools: tuple[dict[str, Any], ...]
) -> None:
    cluster = _loaded()
    cluster.apply_pool(
        {
            "metadata": {"name": b.POOL},
            "spec": {"nodeSelector": {"matchLabels": {b.POOL_LABEL: b.POOL}}},
        },
        deleted=False,
    )
    for body in pools:
        cluster.apply_pool(body, deleted=False)
    for body in tenants:
        cluster.apply_tenant(body, deleted=False)

    decided = _pass(cluster)

    for name, tenant in cluster.tenants.items():
        if tenant.invalid is not None:
            assert tenant.invalid, "the reason is said"
            assert _reported_invalid(decided, name)
        for entry in decided.tenants[name].pools:
            assert math.isfinite(entry.fair_share)


def test_ten_thousand_pools_are_a_pass_not_a_crash() -> None:
    cluster = _loaded()
    for i in range(10_000):
        cluster.apply_pool(
            {
                "metadata": {"name": f"pool-{i}"},
                "spec": {"nodeSelector": {"matchLabels": {"p": str(i)}}},
            },
            deleted=False,
        )
    cluster.apply_tenant(
        {
            "metadata": {"name": "t", "generation": 1},
            "spec": {
                "namespaces": ["ns0"],
                "pools": [{"name": f"pool-{i}"} for i in range(10_000)],
            },
        },
        deleted=False,
    )
    decided = _pass(cluster)
    assert len(decided.pools) == 10_000


def test_huge_but_well_formed_numbers_are_a_pass_not_a_crash() -> None:
    cluster = _loaded()
    cluster.apply_pool(
        {
            "metadata": {"name": b.POOL},
            "spec": {"nodeSelector": {"matchLabels": {b.POOL_LABEL: b.POOL}}},
        },
        deleted=False,
    )
    for index, amount in enumerate([10**400, 2**63, 10**6]):
        cluster.apply_tenant(
            {
                "metadata": {"name": f"t{index}", "generation": 1},
                "spec": {
                    "namespaces": [f"ns{index}"],
                    "weight": 1e308,
                    "pools": [{"name": b.POOL, "guaranteed": amount, "limit": amount}],
                    "preemption": {"minRuntimeSeconds": amount},
                    "budget": {"gpuHours": 1e308, "period": "720h", "enforcement": "Hard"},
                },
            },
            deleted=False,
        )
    decided = _pass(cluster)
    assert cluster.tenants["t0"].invalid is not None
    assert "more than any cluster has" in cluster.tenants["t0"].invalid
    assert cluster.tenants["t2"].invalid is None, "a million GPUs is odd, not absurd"
    for name in ("t0", "t1", "t2"):
        tenant = cluster.tenants[name]
        assert tenant.invalid is not None or all(
            math.isfinite(entry.fair_share) for entry in decided.tenants[name].pools
        )
        if tenant.invalid is not None:
            assert _reported_invalid(decided, name)
