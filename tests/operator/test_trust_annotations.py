"""gpufair's own annotations cannot be forged, and a waiting pod's pool never comes from one.

The cache trusts ``gpufair.dev/gpus`` (which GPUs a pod holds) and ``gpufair.dev/pool`` (where
its usage counts); a tenant that could write them could take GPUs twice or queue in another
pool. The webhook refuses any create or update by anyone but gpufair's service accounts that
sets, changes or removes them (AdmissionReview ``userInfo``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf
import pytest
from tests.builders import kube
from tests.builders import operator as b

from gpufair.api import names
from gpufair.operator import settings, store, webhook, webhook_handlers
from gpufair.state import model, occupancy, scheduling

GPUFAIR_NS = "gpufair-system"
OPERATOR = f"system:serviceaccount:{GPUFAIR_NS}:gpufair-operator"
SCHEDULER = f"system:serviceaccount:{GPUFAIR_NS}:gpufair-scheduler"
TENANT = "alice@example.com"
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
LOOKALIKE = f"system:serviceaccount:{GPUFAIR_NS}-evil:gpufair-operator"


def annotated(**notes: str) -> dict[str, Any]:
    return kube.pod("train", gpus=2, annotations=notes)


GPUS = names.GPUS_ANNOTATION
POOL = names.POOL_ANNOTATION

CASES = [
    # (id, new annotations, old annotations or None for CREATE, username, refused)
    ("forged-gpus-at-create", {GPUS: "0,1"}, None, TENANT, True),
    ("forged-pool-at-create", {POOL: "a100"}, None, TENANT, True),
    ("forged-numa-at-create", {names.NUMA_ANNOTATION: "0"}, None, TENANT, True),
    ("forged-admitted-at", {names.ADMITTED_AT_ANNOTATION: "2026-01-01T00:00:00Z"}, None,
     TENANT, True),
    ("template-through-a-controller", {GPUS: "0,1"}, None, JOB_CONTROLLER, True),
    ("service-account-of-a-lookalike-namespace", {GPUS: "0,1"}, None, LOOKALIKE, True),
    ("gpus-changed-on-update", {GPUS: "6,7"}, {GPUS: "0,1"}, TENANT, True),
    ("gpus-removed-on-update", {}, {GPUS: "0,1"}, TENANT, True),
    ("pool-added-on-update", {POOL: "a100"}, {}, TENANT, True),
    ("forged-group-plan-at-create", {names.GROUP_PLAN_ANNOTATION: "dgx-7"}, None, TENANT, True),
    ("group-plan-changed-on-update", {names.GROUP_PLAN_ANNOTATION: "dgx-7"},
     {names.GROUP_PLAN_ANNOTATION: "dgx-1"}, TENANT, True),
    ("group-plan-in-a-template", {names.GROUP_PLAN_ANNOTATION: "dgx-7"}, None, JOB_CONTROLLER,
     True),
    ("plain-pod", {"team": "ml"}, None, TENANT, False),
    ("checkpoint-is-the-tenants", {names.CHECKPOINT_ANNOTATION: "2026-01-01T00:00:00Z"}, None,
     TENANT, False),
    ("unchanged-on-update", {GPUS: "0,1", "x": "y"}, {GPUS: "0,1"}, JOB_CONTROLLER, False),
    ("bind-by-the-scheduler", {GPUS: "0,1", POOL: "h100"}, {}, SCHEDULER, False),
    ("ungate-by-the-operator", {names.ADMITTED_AT_ANNOTATION: "2026-01-01T00:00:00Z"}, {},
     OPERATOR, False),
    ("group-plan-by-the-operator", {names.ADMITTED_AT_ANNOTATION: "2026-01-01T00:00:00Z",
     names.GROUP_PLAN_ANNOTATION: "dgx-1"}, {}, OPERATOR, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("new", "old", "username", "refused"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_only_gpufair_touches_its_annotations(
    new: dict[str, str], old: dict[str, str] | None, username: str, refused: bool
) -> None:
    verdict = webhook.forged(
        annotated(**new),
        annotated(**old) if old is not None else None,
        username=username,
        trusted_namespace=GPUFAIR_NS,
    )
    assert (verdict is not None) is refused
    if verdict is not None:
        assert "written only by gpufair" in verdict.message
        assert username in verdict.message


def test_nobody_is_trusted_when_gpufair_does_not_know_its_namespace() -> None:
    verdict = webhook.forged(
        annotated(**{GPUS: "0"}), None, username=OPERATOR, trusted_namespace=None
    )
    assert verdict is not None


@pytest.fixture
def trusted_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        settings, "_in_force", [settings.OperatorSettings(trusted_namespace=GPUFAIR_NS)]
    )


@pytest.mark.usefixtures("trusted_namespace")
def test_the_kopf_handler_denies_a_forged_create_and_checks_updates_only_for_forgery() -> None:
    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    with pytest.raises(kopf.AdmissionError, match=r"gpufair\.dev/gpus is written only by gpufair"):
        webhook_handlers.admit_pod(
            body=kopf.Body(annotated(**{GPUS: "0,1"})),
            patch=kopf.Patch(),
            memo=memo,
            userinfo={"username": TENANT, "groups": []},
            operation="CREATE",
        )
    patch = kopf.Patch()
    webhook_handlers.admit_pod(
        body=kopf.Body(annotated(team="ml")),
        patch=patch,
        memo=memo,
        userinfo={"username": TENANT, "groups": []},
        old=kopf.BodyEssence(annotated()),
        operation="UPDATE",
    )
    assert patch == {}  # an update is never gated or re-routed


def test_a_waiting_pods_pool_comes_from_its_selector_not_a_forged_annotation() -> None:
    """The issue's attack: nodeSelector for h100 and ``gpufair.dev/pool: a100``."""
    nodes = [b.node("h1", pool="h100"), b.node("a1", pool="a100")]
    tenant = b.tenant("t").pool("a100").pool("h100").build()
    forged = dataclasses.replace(
        b.pod("t/forged").build(),
        node_selector={b.POOL_LABEL: "h100"},
        pool_hint="a100",
    )
    by_affinity = dataclasses.replace(
        b.pod("t/affinity").build(),
        pool_hint="a100",
        required_terms=(
            {"matchExpressions": [{"key": b.POOL_LABEL, "operator": "In", "values": ["h100"]}]},
        ),
    )
    snap = b.snap(
        now=0.0,
        nodes=nodes,
        tenants=[tenant],
        pods=[forged, by_affinity],
        pools=[b.gpu_pool("h100"), b.gpu_pool("a100")],
    )
    placed = _place(snap)
    assert placed == {forged.uid: "h100", by_affinity.uid: "h100"}


def _place(snap: model.Snapshot) -> dict[str, str]:
    owners, _ = scheduling.namespace_owners(snap)
    placed = scheduling.place_pods(
        snap,
        owners=owners,
        tenants=dict(snap.tenants),
        node_pool=occupancy.pools_of_nodes(snap.pools, snap.nodes),
    )
    return {pod.uid: pool for (_, pool), pods in placed.items() for pod in pods}
