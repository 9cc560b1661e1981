"""The reconciler applies a plan: statuses first, then gates, evictions, events and metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from tests.builders import operator as b

from gpufair.api import names
from gpufair.k8s import writes
from gpufair.operator import intents, metrics, objects, reconciler, settings, store
from gpufair.state import model


@dataclasses.dataclass
class FakeWriter:
    eviction_answer: writes.EvictionOutcome = writes.EvictionOutcome.EVICTED
    refuse: frozenset[str] = frozenset()
    """Pods (``namespace/name``) whose eviction a disruption budget refuses."""
    fail_admit: bool = False
    fail_status: bool = False
    statuses: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    admitted: list[str] = dataclasses.field(default_factory=list)
    evicted: list[str] = dataclasses.field(default_factory=list)
    labels: dict[str, str | None] = dataclasses.field(default_factory=dict)
    nudged: list[str] = dataclasses.field(default_factory=list)
    notes: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Annotations written with each gate removal, by pod."""

    async def patch_status(self, *, plural: str, name: str, status: Any) -> None:
        if self.fail_status:
            raise RuntimeError("API server unavailable")
        self.statuses.append((plural, name, status))

    async def admit(
        self,
        *,
        namespace: str,
        name: str,
        admitted_at: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool:
        if self.fail_admit:
            raise RuntimeError("API server unavailable")
        self.admitted.append(f"{namespace}/{name}")
        self.notes[f"{namespace}/{name}"] = dict(annotations or {})
        return True

    async def evict(
        self, *, namespace: str, name: str, uid: str, dry_run: bool = False
    ) -> writes.EvictionOutcome:
        self.evicted.append(f"{namespace}/{name}{' (dry run)' if dry_run else ''}")
        if f"{namespace}/{name}" in self.refuse:
            return writes.EvictionOutcome.DISRUPTION_BUDGET
        return self.eviction_answer

    async def label_namespace(self, *, namespace: str, tenant: str | None) -> None:
        self.labels[namespace] = tenant

    async def nudge(self, *, namespace: str, name: str, at: str) -> None:
        self.nudged.append(f"{namespace}/{name}")


def loaded_view(
    *pods: model.GpuPod, tenants: list[model.Tenant] | None = None
) -> store.ClusterStore:
    cluster = store.ClusterStore()
    cluster.nodes = {"n1": b.node("n1")}
    cluster.pools = {b.POOL: b.gpu_pool()}
    cluster.tenants = {t.name: t for t in tenants or [b.tenant("a").build(), b.tenant("b").build()]}
    cluster.namespaces = {
        ns: model.Namespace(name=ns) for t in cluster.tenants.values() for ns in t.namespaces
    }
    cluster.pods = {p.uid: p for p in pods}
    return cluster


def make(
    cluster: store.ClusterStore, writer: FakeWriter
) -> tuple[reconciler.Reconciler, list[intents.Event]]:
    events: list[intents.Event] = []
    return (
        reconciler.Reconciler(
            cluster=cluster,
            writer=writer,
            events=events.append,
            config=settings.OperatorSettings(eviction_retry_seconds=30.0),
        ),
        events,
    )


async def test_a_pass_writes_statuses_admits_and_records_metrics() -> None:
    writer = FakeWriter()
    driver, events = make(loaded_view(b.pod("a/p").gpus(2).build()), writer)

    await driver.run_once(now=100.0)

    assert {(plural, name) for plural, name, _ in writer.statuses} == {
        (names.TENANT_QUOTA_PLURAL, "a"),
        (names.TENANT_QUOTA_PLURAL, "b"),
        (names.GPU_POOL_PLURAL, b.POOL),
    }
    assert writer.admitted == ["a/p"]
    assert any(e.reason == "Admitted" for e in events)
    sample = metrics.REGISTRY.get_sample_value("gpufair_pool_capacity_gpus", {"pool": b.POOL})
    assert sample == 8.0


async def test_a_group_member_gets_its_planned_node_in_the_write_that_lifts_its_gate() -> None:
    members = [
        b.pod(f"a/w{i}").gpus(2).group("train", 4).created(float(i)).build() for i in range(4)
    ]
    single = b.pod("b/s").gpus(1).created(9.0).build()
    cluster = loaded_view(*members, single)
    cluster.nodes = {"n1": b.node("n1"), "n2": b.node("n2")}
    cluster.pods["bound"] = b.pod("b/x").gpus(7).bound("n1", at=0.0, indices=range(7)).build()
    writer = FakeWriter()
    driver, events = make(cluster, writer)

    await driver.run_once(now=100.0)

    # n1 has 1 free GPU, n2 all 8: the plan puts the group on n2, on one machine.
    planned = {names.GROUP_PLAN_ANNOTATION: "n2"}
    assert {f"a/w{i}": writer.notes[f"a/w{i}"] for i in range(4)} == {
        f"a/w{i}": planned for i in range(4)
    }
    assert writer.notes["b/s"] == {}
    told = {e.target.name: e.message for e in events if e.reason == "Admitted"}
    assert all("plan places it on node n2" in told[f"w{i}"] for i in range(4))
    assert "plan" not in told["s"]


async def test_a_disruption_budget_refusal_parks_the_victim_and_says_so() -> None:
    pods = [b.pod(f"a/p{i}").bound("n1", at=0.0, indices=[i]).build() for i in range(8)]
    pods += [b.pod(f"b/q{i}").created(1.0).build() for i in range(4)]
    cluster = loaded_view(*pods)
    writer = FakeWriter(eviction_answer=writes.EvictionOutcome.DISRUPTION_BUDGET)
    driver, events = make(cluster, writer)

    decided = await driver.run_once(now=100.0)

    assert writer.evicted
    assert set(cluster.blocked) == {e.pod.uid for e in decided.evictions}
    assert all(until == 130.0 for until in cluster.blocked.values())
    assert any(e.reason == "EvictionRefused" for e in events)
    parked = set(cluster.blocked)
    again = await driver.run_once(now=101.0)
    assert not {e.pod.uid for e in again.evictions} & parked


async def test_departed_pods_are_forgotten_only_once_their_usage_is_written() -> None:
    gone = dataclasses.replace(
        b.pod("a/p").gpus(1).bound("n1", at=0.0, indices=[0]).build(),
        state=model.PodState.FINISHED,
        finished_at=50.0,
    )
    cluster = loaded_view()
    cluster.departed = {gone.uid: gone}
    writer = FakeWriter(fail_status=True)
    driver, _ = make(cluster, writer)

    await driver.run_once(now=100.0)
    assert gone.uid in cluster.departed, "the write failed: the pod's seconds are still owed"

    writer.fail_status = False
    decided = await driver.run_once(now=110.0)
    assert cluster.departed == {}
    assert decided.tenants["a"].pools[0].usage.gpu_seconds == 50.0


async def test_own_status_writes_do_not_wake_the_loop_but_spec_changes_do() -> None:
    cluster = store.ClusterStore()
    body = {
        "metadata": {"name": "a", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"namespaces": ["a"], "pools": [{"name": b.POOL}]},
    }
    cluster.apply_tenant(body, deleted=False)
    assert cluster.changed.is_set()
    cluster.changed.clear()
    cluster.apply_tenant({**body, "status": {"allocated": 1}}, deleted=False)
    assert not cluster.changed.is_set()
    cluster.apply_tenant({**body, "metadata": {**body["metadata"], "generation": 2}}, deleted=False)
    assert cluster.changed.is_set()


async def test_a_waiting_pod_is_told_why_once_per_reason() -> None:
    pods = [b.pod(f"a/p{i}").bound("n1", at=0.0, indices=[i]).build() for i in range(8)]
    pods.append(b.pod("a/big").gpus(4).build())
    writer = FakeWriter()
    driver, events = make(loaded_view(*pods), writer)

    await driver.run_once(now=10.0)
    await driver.run_once(now=20.0)

    waiting = [e for e in events if e.reason == "Waiting"]
    assert len(waiting) == 1
    assert waiting[0].target.name == "big"
    assert "waiting for 4 GPUs in pool h100: 0 free" in waiting[0].message


async def test_unchanged_statuses_are_written_at_the_status_interval_only() -> None:
    pods = [b.pod("a/p").gpus(2).bound("n1", at=0.0, indices=[0, 1]).build()]
    writer = FakeWriter()
    driver, _ = make(loaded_view(*pods), writer)  # status interval 30 s

    await driver.run_once(now=10.0)
    first = len(writer.statuses)
    quiet = await driver.run_once(now=20.0)
    assert len(writer.statuses) == first, "nothing but usage changed: no write"
    assert quiet.tenants["a"].pools[0].usage.gpu_seconds == 40.0, "still metered"

    await driver.run_once(now=45.0)
    written = [s for plural, name, s in writer.statuses[first:] if name == "a"]
    assert written[0]["pools"][0]["usage"]["gpuSeconds"] == 90.0


async def test_a_status_that_did_not_change_but_for_usage_is_not_even_serialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pods = [b.pod("a/p").gpus(2).bound("n1", at=0.0, indices=[0, 1]).build()]
    cluster = loaded_view(*pods)
    writer = FakeWriter()
    driver, _ = make(cluster, writer)
    await driver.run_once(now=10.0)
    serialized: list[str] = []
    real = objects.tenant_status

    def counting(status: intents.TenantStatus) -> dict[str, Any]:
        serialized.append(status.name)
        return real(status)

    monkeypatch.setattr(objects, "tenant_status", counting)
    await driver.run_once(now=20.0)
    assert serialized == [], "usage alone changed: nothing to compare on the wire"

    quota = cluster.tenants["b"]
    edited = (dataclasses.replace(quota.pools[0], guaranteed=quota.pools[0].guaranteed + 1),)
    cluster.tenants["b"] = dataclasses.replace(quota, pools=edited, generation=2)
    first = len(writer.statuses)
    await driver.run_once(now=21.0)
    assert serialized == ["b"]
    quotas = [
        name for plural, name, _ in writer.statuses[first:] if plural != names.GPU_POOL_PLURAL
    ]
    assert quotas == ["b"]


async def test_a_pod_gated_in_a_namespace_of_no_tenant_is_released_once_and_not_admitted() -> None:
    # The webhook gates every GPU pod while it knows no tenants (before the first pass, or on a
    # standby replica); a pass must take the gate off pods no tenant will ever admit.
    stray = b.pod("nobody/p").gpus(2).build()
    own = b.pod("a/q").gpus(1).build()
    cluster = loaded_view(stray, own)
    cluster.namespaces["nobody"] = model.Namespace(name="nobody")
    cluster.mark_synced()
    writer = FakeWriter()
    driver, events = make(cluster, writer)
    before = metrics.REGISTRY.get_sample_value(
        "gpufair_admissions_total", {"tenant": "a", "pool": b.POOL}
    )

    decided = await driver.run_once(now=10.0)

    assert sorted(writer.admitted) == ["a/q", "nobody/p"]
    assert [r.pod.key for r in decided.releases] == ["nobody/p"]
    assert stray.uid not in decided.pod_pools
    assert stray.uid not in decided.holds
    released = [e for e in events if e.reason == "Released"]
    assert [e.target.name for e in released] == ["p"]
    assert "namespace nobody belongs to no TenantQuota" in released[0].message
    after = metrics.REGISTRY.get_sample_value(
        "gpufair_admissions_total", {"tenant": "a", "pool": b.POOL}
    )
    assert (after or 0.0) - (before or 0.0) == 1.0, "a release is not an admission"

    cluster.pods[stray.uid] = dataclasses.replace(stray, state=model.PodState.PENDING)
    again = await driver.run_once(now=20.0)
    assert again.releases == (), "released pods are not released again"


def _admissions_total(tenant: str) -> float:
    sample = metrics.REGISTRY.get_sample_value(
        "gpufair_admissions_total", {"tenant": tenant, "pool": b.POOL}
    )
    return sample or 0.0


async def test_an_admission_repeated_after_an_outage_is_reported_once() -> None:
    """Issue 13 item 12: the watch has not shown the gate removal yet (the API server was
    down), so passes admit the pod again; it gets one Admitted event and counts once."""
    waiting = b.pod("c/p").gpus(2).build()
    cluster = loaded_view(waiting, tenants=[b.tenant("c").build()])
    writer = FakeWriter(fail_admit=True)
    driver, events = make(cluster, writer)
    before = _admissions_total("c")

    await driver.run_once(now=100.0)  # the write fails: nothing happened, nothing is reported
    assert [e for e in events if e.reason == "Admitted"] == []
    writer.fail_admit = False
    for now in (105.0, 110.0, 115.0):  # the store still shows the pod gated
        await driver.run_once(now=now)

    assert writer.admitted == ["c/p"] * 3
    assert len([e for e in events if e.reason == "Admitted"]) == 1
    assert _admissions_total("c") - before == 1


def _two_victims() -> tuple[store.ClusterStore, list[model.GpuPod]]:
    """Tenant a holds all 8 GPUs in 1-GPU pods; b's 2-GPU pod needs two of them evicted."""
    held = [b.pod(f"a/p{i}").bound("n1", at=float(i), indices=[i]).build() for i in range(8)]
    return loaded_view(*held, b.pod("b/w").gpus(2).created(1.0).build()), held


async def test_a_victim_set_is_evicted_all_or_nothing() -> None:
    """Issue 13 item 3: of victims [v0, v1], v1 refused by its budget: v0 is not evicted, no
    Preempted event is posted, v1 is parked."""
    cluster, _ = _two_victims()
    probe = FakeWriter()
    decided = await make(cluster, probe)[0].run_once(now=100.0)
    victims = [e.pod.key for e in decided.evictions]
    assert len(victims) == 2

    cluster, _ = _two_victims()
    writer = FakeWriter(refuse=frozenset(victims[1:]))
    driver, events = make(cluster, writer)
    decided = await driver.run_once(now=100.0)

    assert [e.pod.key for e in decided.evictions] == victims
    assert [name for name in writer.evicted if "dry run" not in name] == []
    assert not [e for e in events if e.reason in ("Preempted", "ReclaimedFrom", "Reclaiming")]
    assert [e.reason for e in events if e.reason == "EvictionRefused"] == ["EvictionRefused"]
    assert set(cluster.blocked) == {decided.evictions[1].pod.uid}


async def test_a_victim_set_that_would_all_go_is_evicted_then_reported() -> None:
    cluster, _ = _two_victims()
    writer = FakeWriter()
    driver, events = make(cluster, writer)
    decided = await driver.run_once(now=100.0)

    victims = [e.pod.key for e in decided.evictions]
    assert writer.evicted == [f"{v} (dry run)" for v in victims] + victims
    assert [e.target.name for e in events if e.reason == "Preempted"] == [
        v.split("/")[1] for v in victims
    ]


async def test_an_unschedulable_pod_is_retried_when_its_tenant_has_room_again() -> None:
    """Issue 13 item 8: kube-scheduler does not watch TenantQuotas; when the limit that made
    the extender reject the pod rises, the operator updates the pod once (kube-scheduler
    retries a pod that changed) instead of leaving it to the 5-minute flush."""
    held = [b.pod(f"a/h{i}").bound("n1", at=0.0, indices=[i]).build() for i in range(2)]
    rejected = dataclasses.replace(b.pod("a/p").gpus(2).pending().build(), unschedulable_since=50.0)
    never_tried = b.pod("a/q").gpus(2).pending().build()
    cluster = loaded_view(
        *held, rejected, never_tried, tenants=[b.tenant("a").pool(limit=2).build()]
    )
    writer = FakeWriter()
    driver, _ = make(cluster, writer)

    await driver.run_once(now=100.0)
    await driver.run_once(now=105.0)
    assert writer.nudged == [], "nothing changed: nothing to retry"

    cluster.tenants = {"a": b.tenant("a").pool(limit=4).build()}
    await driver.run_once(now=110.0)
    assert writer.nudged == ["a/p"]

    await driver.run_once(now=115.0)
    assert writer.nudged == ["a/p"], "one update per change, not per pass"
