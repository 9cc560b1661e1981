"""A waiting pod's pool follows its required node affinity (issue 13 item 9).

The issue's case: a tenant with quota in ``a100`` (listed first, full) and ``h100`` (8 GPUs
free); a pod whose required affinity asks for ``h100`` nodes was queued for ``a100`` ("waiting
for 4 GPUs in pool a100: 0 free"). It must be admitted to ``h100``.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.builders import operator as b

from gpufair.operator import plan


def _terms(operator: str, values: list[str]) -> tuple[dict[str, Any], ...]:
    return ({"matchExpressions": [{"key": b.POOL_LABEL, "operator": operator, "values": values}]},)


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param(_terms("In", ["h100"]), id="in-h100"),
        pytest.param(_terms("NotIn", ["a100"]), id="not-in-a100"),
        pytest.param(
            (*_terms("In", ["l4"]), *_terms("In", ["h100"])), id="second-term-matches-h100"
        ),
    ],
)
def test_a_pod_is_queued_and_admitted_in_the_pool_its_affinity_allows(
    terms: tuple[dict[str, Any], ...],
) -> None:
    full = [b.pod(f"t/a{i}").bound("a1", indices=[i]).build() for i in range(8)]
    wanted = b.pod("t/w").gpus(4).spec(required_terms=terms).build()
    decided = plan.plan(
        b.snap(
            now=10.0,
            nodes=[b.node("a1", pool="a100"), b.node("h1", pool="h100")],
            tenants=[b.tenant("t").pool("a100").pool("h100").build()],
            pods=[*full, wanted],
            pools=[b.gpu_pool("a100"), b.gpu_pool("h100")],
        ),
        half_life=3600.0,
    )
    assert [(a.pod.key, a.pool) for a in decided.admissions] == [("t/w", "h100")]
    assert decided.pod_pools[wanted.uid] == ("t", "h100")
