"""The stand-in's ValidatingAdmissionPolicy evaluation (``gpufair.standin.apiserver.policies``),
checked on the chart's own policy and on small policies for each rule of the API server's
behaviour."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.helm import render

from gpufair.api import names
from gpufair.standin.apiserver import errors, policies

Obj = dict[str, Any]


def chart_policy() -> tuple[Obj, Obj]:
    objects = render.render_chart({})
    (policy,) = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


def pod(*, gpus: int = 1, scheduler: str | None = None, priority: str | None = None) -> Obj:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    spec: Obj = {"containers": [{"name": "c", "image": "x", "resources": resources}]}
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    if priority is not None:
        spec["priorityClassName"] = priority
    return {"metadata": {"name": "p", "namespace": "team-a"}, "spec": spec}


NAMESPACE = {"metadata": {"name": "team-a", "labels": {"gpufair.dev/tenant": "a"}}}
REQUEST = {"operation": "CREATE", "userInfo": {"username": "alice"}}
GPUFAIR = f"system:serviceaccount:{render.RELEASE_NAMESPACE}:gpufair-scheduler"


def evaluate(
    policy: Obj, binding: Obj, obj: Obj, *, old: Obj | None = None, user: str = "alice"
) -> None:
    request = {"operation": "UPDATE" if old else "CREATE", "userInfo": {"username": user}}
    policies.apply_policy(policy, binding, obj=obj, old=old, request=request, namespace=NAMESPACE)


def noted(notes: dict[str, str], **changes: Any) -> Obj:
    made = pod(scheduler="gpufair-scheduler", **changes)
    made["metadata"]["annotations"] = notes
    return made


GPUS = "gpufair.dev/gpus"
PLAN = "gpufair.dev/group-plan"


@pytest.mark.parametrize(
    ("new", "old", "user", "refused"),
    [
        pytest.param({GPUS: "0"}, None, "alice", True, id="forged-at-create"),
        pytest.param({GPUS: "0"}, None, GPUFAIR, False, id="gpufair-at-create"),
        pytest.param({GPUS: "1"}, {GPUS: "0"}, "alice", True, id="changed-by-a-tenant"),
        pytest.param({}, {GPUS: "0"}, "alice", True, id="removed-by-a-tenant"),
        pytest.param({GPUS: "0", "x": "y"}, {GPUS: "0"}, "alice", False, id="unchanged"),
        pytest.param({GPUS: "0"}, {}, GPUFAIR, False, id="bind-by-gpufair"),
        pytest.param({PLAN: "dgx-7"}, None, "alice", True, id="group-plan-forged-at-create"),
        pytest.param({PLAN: "dgx-7"}, {PLAN: "dgx-1"}, "alice", True, id="group-plan-changed"),
        pytest.param({PLAN: "dgx-1"}, {}, GPUFAIR, False, id="group-plan-by-gpufair"),
    ],
)
def test_the_charts_policy_keeps_gpufair_annotations_gpufairs(
    new: dict[str, str], old: dict[str, str] | None, user: str, refused: bool
) -> None:
    policy, binding = chart_policy()
    old_pod = noted(old) if old is not None else None
    if not refused:
        evaluate(policy, binding, noted(new), old=old_pod, user=user)
        return
    with pytest.raises(errors.StatusError, match="written only by gpufair's service accounts"):
        evaluate(policy, binding, noted(new), old=old_pod, user=user)


def test_the_charts_policy_lists_every_annotation_the_webhook_keeps_gpufairs() -> None:
    """The policy holds the webhook's rule while the operator is down: the same keys."""
    policy, _ = chart_policy()
    (listed,) = [v for v in policy["spec"]["variables"] if v["name"] == "gpufairOnly"]
    assert sorted(json.loads(listed["expression"])) == sorted(names.GPUFAIR_ONLY_ANNOTATIONS)


def test_an_update_of_a_pod_from_before_the_policy_is_not_refused() -> None:
    """schedulerName cannot change after creation: the bypass rule judges creations only."""
    policy, binding = chart_policy()
    old = pod(scheduler="default-scheduler")
    new = pod(scheduler="default-scheduler")
    new["metadata"]["labels"] = {"done": "yes"}
    evaluate(policy, binding, new, old=old)


@pytest.mark.parametrize(
    ("obj", "refusal"),
    [
        pytest.param(pod(), "must use schedulerName gpufair-scheduler, not default-scheduler",
                     id="no-scheduler-name"),
        pytest.param(pod(scheduler="default-scheduler"), "not default-scheduler", id="default"),
        pytest.param(pod(scheduler="gpufair-scheduler", priority="system-node-critical"),
                     "priority class system-node-critical is not allowed", id="priority"),
        pytest.param(pod(scheduler="gpufair-scheduler"), None, id="gpufair-pod"),
        pytest.param(pod(gpus=0), None, id="cpu-pod"),
        pytest.param(pod(scheduler="gpufair-scheduler", priority="high"), None, id="own-class"),
    ],
)  # fmt: skip
def test_the_charts_policy(obj: Obj, refusal: str | None) -> None:
    policy, binding = chart_policy()
    if refusal is None:
        evaluate(policy, binding, obj)
        return
    with pytest.raises(errors.StatusError) as denied:
        evaluate(policy, binding, obj)
    assert denied.value.status == 403
    assert denied.value.message is not None
    assert denied.value.message.startswith(
        f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding"
    )
    assert refusal in denied.value.message


def small(expression: str, *, failure_policy: str = "Fail", **validation: Any) -> Obj:
    return {
        "metadata": {"name": "small"},
        "spec": {
            "failurePolicy": failure_policy,
            "validations": [{"expression": expression, **validation}],
        },
    }


def bound(*actions: str) -> Obj:
    return {
        "metadata": {"name": "b"},
        "spec": {"policyName": "small", "validationActions": list(actions)},
    }


@pytest.mark.parametrize(
    ("policy", "actions", "denied"),
    [
        pytest.param(small("false", message="no"), ("Deny",), "denied request: no", id="deny"),
        pytest.param(small("false", message="no"), ("Warn", "Audit"), None, id="warn-only"),
        pytest.param(small("false"), ("Deny",), "failed expression: false", id="no-message"),
        pytest.param(small("false", messageExpression="'ns ' + namespaceObject.metadata.name"),
                     ("Deny",), "denied request: ns team-a", id="message-expression"),
        pytest.param(small("object.nope.deeper"), ("Deny",), "failed expression", id="fail"),
        pytest.param(small("object.nope.deeper", failure_policy="Ignore"), ("Deny",), None,
                     id="ignore"),
        pytest.param(small("request.userInfo.username == 'alice'"), ("Deny",), None,
                     id="request-variable"),
    ],
)  # fmt: skip
def test_policy_rules(policy: Obj, actions: tuple[str, ...], denied: str | None) -> None:
    if denied is None:
        evaluate(policy, bound(*actions), pod())
        return
    with pytest.raises(errors.StatusError) as refused:
        evaluate(policy, bound(*actions), pod())
    assert refused.value.message is not None
    assert denied in refused.value.message
