"""The CRD models: defaults as documented, validation as the API server does it, wire round trip."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pydantic
import pytest
from tests.builders.manifests import gpu_pool, pool_entry, tenant_quota

from gpufair.api import common, manifests, pool, quota
from gpufair.core import policy


def problems(body: dict[str, Any]) -> list[str]:
    """What the loader says about one object, as ``path: message`` lines."""
    try:
        manifests.parse(body, origin="test.yaml")
    except manifests.InvalidManifestsError as invalid:
        return [f"{p.path}: {p.message}" for p in invalid.problems]
    return []


def test_quota_defaults_are_the_documented_ones() -> None:
    tq = quota.TenantQuota.model_validate(tenant_quota("team-a"))
    spec = tq.spec
    assert spec.weight == 1
    assert spec.preemption == quota.Preemption(reclaim=True, min_runtime_seconds=0)
    assert spec.admission.on_limit is policy.OnLimit.QUEUE
    assert spec.budget is None
    entry = spec.pools[0]
    assert (entry.guaranteed, entry.limit, entry.lendable) == (0, None, None)


def test_lendable_defaults_to_the_whole_guarantee() -> None:
    entry = quota.PoolQuota(name="h100", guaranteed=16)
    assert entry.effective_lendable == 16
    assert quota.PoolQuota(name="h100", guaranteed=16, lendable=4).effective_lendable == 4


def test_pool_defaults_are_the_documented_ones() -> None:
    gp = pool.GPUPool.model_validate(gpu_pool("h100"))
    assert gp.spec.resource_name == "nvidia.com/gpu"
    assert gp.spec.placement.mode is policy.PlacementMode.PACK
    assert gp.spec.placement.topology is policy.TopologyRule.PREFERRED
    assert gp.spec.placement.group_domain is pool.GroupDomain.ANY
    assert gp.spec.cost_per_gpu_hour is None


def test_a_pool_may_keep_each_pod_group_within_one_nvlink_domain() -> None:
    gp = pool.GPUPool.model_validate(gpu_pool("gb200", placement={"groupDomain": "Same"}))
    assert gp.spec.placement.group_domain is pool.GroupDomain.SAME
    assert gp.to_wire()["spec"]["placement"]["groupDomain"] == "Same"


def test_enums_are_the_core_policy_enums() -> None:
    gp = pool.GPUPool.model_validate(
        gpu_pool("h100", placement={"mode": "Spread", "topology": "Required"})
    )
    assert gp.spec.placement.mode is policy.PlacementMode.SPREAD
    assert gp.spec.placement.topology is policy.TopologyRule.REQUIRED
    tq = quota.TenantQuota.model_validate(
        tenant_quota(
            admission={"onLimit": "Reject"},
            budget={"gpuHours": 10, "period": "1h", "enforcement": "Soft"},
        )
    )
    assert tq.spec.admission.on_limit is policy.OnLimit.REJECT
    assert tq.spec.budget is not None
    assert tq.spec.budget.enforcement is policy.BudgetEnforcement.SOFT


def test_cost_is_a_decimal_string_on_the_wire() -> None:
    gp = pool.GPUPool.model_validate(gpu_pool("h100", costPerGPUHour="2.50"))
    assert gp.spec.cost_per_gpu_hour == decimal.Decimal("2.50")
    assert gp.to_wire()["spec"]["costPerGPUHour"] == "2.50"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("720h", 720 * 3600, id="hours"),
        pytest.param("1h30m", 5400, id="compound"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("1.5h", 5400, id="fraction"),
        pytest.param("1500ms", 1.5, id="milliseconds"),
        pytest.param("2m0.5s", 120.5, id="minutes-and-fraction"),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert common.parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("720", id="no-unit"),
        pytest.param("30d", id="days-are-not-go"),
        pytest.param("-1h", id="negative"),
        pytest.param("h", id="no-number"),
        pytest.param("1h ", id="trailing-space"),
    ],
)
def test_non_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        common.parse_go_duration(text)


def test_budget_period_in_seconds() -> None:
    budget = quota.Budget(gpu_hours=5000, period="720h", enforcement="Hard")
    assert budget.period_seconds == 30 * 24 * 3600


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            tenant_quota(pools=[pool_entry(guaranteed=40, limit=32)]),
            ["spec.pools[0].guaranteed: must be <= limit (32)"],
            id="guaranteed-above-limit",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(guaranteed=8, lendable=9)]),
            ["spec.pools[0].lendable: must be <= guaranteed (8)"],
            id="lendable-above-guaranteed",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(lendable=1)]),
            ["spec.pools[0].lendable: must be <= guaranteed (0)"],
            id="lendable-without-guarantee",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(guaranteed=-1)]),
            ["spec.pools[0].guaranteed: must be >= 0 (got -1)"],
            id="negative-guarantee",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(limit=-4)]),
            ["spec.pools[0].limit: must be >= 0 (got -4)"],
            id="negative-limit",
        ),
        pytest.param(
            tenant_quota(weight=0),
            ["spec.weight: must be > 0 (got 0)"],
            id="zero-weight",
        ),
        pytest.param(
            tenant_quota(weight="2"),
            ["spec.weight: must be a number (got '2')"],
            id="weight-as-string",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(guaranteed=1.5)]),
            ["spec.pools[0].guaranteed: must be an integer (got 1.5)"],
            id="fractional-gpus",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry("h100"), pool_entry("a100"), pool_entry("h100")]),
            ["spec.pools[2]: duplicate 'h100' (names must be unique)"],
            id="duplicate-pool",
        ),
        pytest.param(
            tenant_quota(namespaces=["a", "b", "a"]),
            ["spec.namespaces[2]: duplicate 'a' (names must be unique)"],
            id="duplicate-namespace",
        ),
        pytest.param(
            tenant_quota(namespaces=[]),
            ["spec.namespaces: set namespaces, namespaceSelector or both (the tenant is empty)"],
            id="no-namespaces",
        ),
        pytest.param(
            tenant_quota(namespaces=["Team_A"]),
            ["spec.namespaces[0]: must be a lowercase RFC 1123 label (a-z, 0-9 and '-')"],
            id="bad-namespace",
        ),
        pytest.param(
            tenant_quota(pools=[]),
            ["spec.pools: must have at least 1 item(s)"],
            id="no-pools",
        ),
        pytest.param(
            tenant_quota(pools=[pool_entry(gurantee=4)]),
            ["spec.pools[0].gurantee: unknown field (not in the gpufair.dev/v1alpha1 schema)"],
            id="typo-is-an-error",
        ),
        pytest.param(
            tenant_quota(admission={"onLimit": "Drop"}),
            ["spec.admission.onLimit: must be 'Queue' or 'Reject' (got 'Drop')"],
            id="unknown-enum",
        ),
        pytest.param(
            tenant_quota(budget={"gpuHours": 10, "period": "30d", "enforcement": "Hard"}),
            ["spec.budget.period: must be a duration such as 720h, 1h30m or 90s"],
            id="budget-period-days",
        ),
        pytest.param(
            tenant_quota(budget={"gpuHours": 10, "period": "0h", "enforcement": "Hard"}),
            ["spec.budget.period: must be longer than 0s"],
            id="budget-period-zero",
        ),
        pytest.param(
            tenant_quota(budget={"gpuHours": 10, "period": "720h"}),
            ["spec.budget.enforcement: required"],
            id="budget-enforcement-required",
        ),
        pytest.param(
            gpu_pool(placement={"mode": "Pack", "topology": "Strict"}),
            ["spec.placement.topology: must be 'Preferred' or 'Required' (got 'Strict')"],
            id="unknown-topology-rule",
        ),
        pytest.param(
            gpu_pool(placement={"groupDomain": "same"}),
            ["spec.placement.groupDomain: must be 'Any' or 'Same' (got 'same')"],
            id="unknown-group-domain",
        ),
        pytest.param(
            gpu_pool(costPerGPUHour=2.5),
            [
                'spec.costPerGPUHour: must be a decimal string such as "2.50" (quote the number'
                " in YAML)"
            ],
            id="unquoted-cost",
        ),
        pytest.param(
            gpu_pool(costPerGPUHour="$2"),
            ["spec.costPerGPUHour: '$2' is not a decimal such as \"2.50\""],
            id="cost-with-currency",
        ),
        pytest.param(
            gpu_pool(resourceName="gpu"),
            ["spec.resourceName: must be a resource name with a domain, such as nvidia.com/gpu"],
            id="resource-without-domain",
        ),
        pytest.param(
            gpu_pool(
                nodeSelector={
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            ),
            ["spec.nodeSelector.matchExpressions[0].values: must be empty for operator Exists"],
            id="exists-with-values",
        ),
        pytest.param(
            {**gpu_pool(), "spec": {}},
            ["spec.nodeSelector: required"],
            id="pool-without-selector",
        ),
        pytest.param(
            {**gpu_pool(), "apiVersion": "gpufair.dev/v1"},
            ["apiVersion: must be gpufair.dev/v1alpha1"],
            id="unknown-version",
        ),
        pytest.param(
            {**gpu_pool(), "kind": "GpuPool"},
            ["kind: must be GPUPool or TenantQuota"],
            id="unknown-kind",
        ),
        pytest.param(
            {**gpu_pool(), "metadata": {"name": "H100"}},
            ["metadata.name: must be a lowercase RFC 1123 name (a-z, 0-9, '-' and '.')"],
            id="bad-name",
        ),
    ],
)
def test_invalid_objects_are_reported_by_field(body: dict[str, Any], expected: list[str]) -> None:
    assert problems(body) == expected


def test_namespace_selector_alone_forms_a_tenant() -> None:
    body = tenant_quota(namespaces=[], namespaceSelector={"matchLabels": {"team": "a"}})
    assert problems(body) == []


def test_python_construction_checks_the_same_rules() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"guaranteed: must be <= limit \(4\)"):
        quota.PoolQuota(name="h100", guaranteed=8, limit=4)


def test_status_round_trips_with_wire_names() -> None:
    now = datetime.datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    status = quota.TenantQuotaStatus(
        observed_generation=3,
        conditions=[
            common.Condition(
                type="Ready", status="True", reason="Reconciled", last_transition_time=now
            )
        ],
        allocated=24,
        fair_share=28.5,
        pools=[
            quota.PoolQuotaStatus(
                name="h100",
                allocated=24,
                guaranteed=16,
                fair_share=28.5,
                borrowed=8,
                waiting=2,
                waiting_gpus=16,
                demand=40,
                usage=quota.Usage(gpu_seconds=1.5, decayed_gpu_seconds=1.25, as_of=now),
            )
        ],
        budget=quota.BudgetStatus(period_start=now, used_gpu_hours=12.5),
    )
    wire = status.to_wire()
    assert wire["pools"][0]["waitingGPUs"] == 16
    assert wire["pools"][0]["usage"]["decayedGPUSeconds"] == 1.25
    assert wire["pools"][0]["usage"]["asOf"] == "2026-11-26T12:00:00.123456Z"
    assert wire["budget"]["usedGPUHours"] == 12.5
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-11-26T12:00:00.123456Z"
    assert quota.TenantQuotaStatus.model_validate(wire) == status


def test_status_ignores_fields_of_a_newer_operator() -> None:
    status = pool.GPUPoolStatus.model_validate({"capacity": 64, "fragmentation": 0.2})
    assert status.capacity == 64


def test_spec_round_trips_through_the_wire_form() -> None:
    body = tenant_quota(
        "team-a",
        weight=2,
        pools=[pool_entry("h100", guaranteed=16, limit=32, lendable=8)],
        budget={"gpuHours": 5000, "period": "720h", "enforcement": "Hard"},
    )
    tq = quota.TenantQuota.model_validate(body)
    assert quota.TenantQuota.model_validate(tq.to_wire()) == tq
    assert tq.to_wire()["spec"]["pools"] == [
        {"name": "h100", "guaranteed": 16, "limit": 32, "lendable": 8}
    ]


@pytest.mark.parametrize(
    ("field", "wire"),
    [
        pytest.param("cost_per_gpu_hour", "costPerGPUHour", id="gpu-inside"),
        pytest.param("gpu_seconds", "gpuSeconds", id="gpu-first"),
        pytest.param("waiting_gpus", "waitingGPUs", id="gpus-last"),
        pytest.param("min_runtime_seconds", "minRuntimeSeconds", id="plain"),
    ],
)
def test_wire_names_follow_kubernetes_conventions(field: str, wire: str) -> None:
    assert common.wire_name(field) == wire
