"""Least privilege, proven from behaviour: every call each gpufair component made to the
stand-in during this e2e run is allowed by the RBAC the Helm chart renders for it, every rule of
that RBAC was used, and no rule has a wildcard.

Each component calls the stand-in with its own kubeconfig
(``gpufair.standin.apiserver.identity``), as the user of the chart's ServiceAccount; the stand-
in records each distinct call as RBAC sees it (``gpufair.standin.apiserver.audit``). The checks
over the record are marked ``after_e2e``: the plugin ``e2e/harness/rbac_audit.py`` runs them
after every other e2e test. A component with no recorded call (its tests were not selected) is
skipped with that reason, and "every rule used" is judged only on a run of the whole e2e suite.
``docs/rbac.md`` says why each permission is there. Rule matching itself is unit-tested in
``tests/standin/test_rbac_matcher.py``.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from e2e.harness import chart, processes, rbac_audit, scenario, waiting
from gpufair.standin.apiserver import audit, identity, rbac

COMPONENTS = ("operator", "extender", "agent", "scheduler")
STATIC_OPERATOR_RBAC = processes.REPO_ROOT / "operator" / "rbac.yaml"
PEERING = processes.REPO_ROOT / "operator" / "peering.yaml"

SERVICE_ACCOUNT_OF = {"extender": "scheduler"}
"""Components that run under another component's service account in the default chart (the
extender is a container beside kube-scheduler in each gpufair-scheduler pod)."""
NOT_PROVABLE_UNUSED = {
    "extender": "beside kube-scheduler the extender shares the scheduler's service account, whose"
    " kube-scheduler rules serve the real kube-scheduler binary, which does not run here",
    "scheduler": "the e2e scheduler driver plays kube-scheduler's scheduling cycle only; the"
    " chart's own scheduler rules (its leader-election Lease) serve the real kube-scheduler"
    " binary, which does not run here",
}


@dataclasses.dataclass(frozen=True)
class Proof:
    """One component: who it is and what the rendered RBAC grants it."""

    component: str
    subject: rbac.Subject
    authorizer: rbac.Authorizer

    def denied(self, calls: list[audit.Call]) -> list[audit.Call]:
        return [call for call in calls if not self.authorizer.allowed_by(self.subject, call.info)]

    def own_rules(self) -> list[rbac.BoundRule]:
        """The rules the chart itself writes for this component (not the cluster's built-in)."""
        builtin = {str(role["metadata"]["name"]) for role in rbac.BUILTIN_ROLES}
        return [
            bound
            for bound in self.authorizer.rules_for(self.subject)
            if bound.rule.source.split("/", 1)[1].split(" rule ")[0] not in builtin
        ]

    def unused(self, calls: list[audit.Call]) -> list[str]:
        unused = []
        for bound in self.own_rules():
            for grant in bound.rule.grants():
                if not any(grant.allows(call.info) and bound.allows(call.info) for call in calls):
                    unused.append(f"{grant} ({bound.rule.source}, {bound.binding})")
        return unused


def _proof(component: str, objects: list[dict[str, Any]]) -> Proof:
    who = identity.IDENTITIES[component]
    return Proof(
        component=component,
        subject=rbac.Subject(user=who.user, groups=who.groups),
        authorizer=rbac.Authorizer.from_objects(objects, builtin=rbac.BUILTIN_ROLES),
    )


@pytest.fixture(scope="module")
def chart_objects() -> list[dict[str, Any]]:
    """The chart as the e2e suite installs it (``chart.E2E_VALUES``), rendered by Helm."""
    pytest.importorskip("helm_python", reason="helm-python-sdk renders the chart")
    return chart.render(chart.E2E_VALUES)


@pytest.fixture(scope="module")
def recorded(apiserver: Any) -> Callable[[str], list[audit.Call]]:
    """``recorded(component)``: the calls of that component in this run so far."""

    def calls(component: str) -> list[audit.Call]:
        assert apiserver.audit_log is not None, "the session's stand-in records no calls"
        user = identity.IDENTITIES[component].user
        return [call for call in audit.read(apiserver.audit_log) if call.user == user]

    return calls


def _rules(objects: list[dict[str, Any]]) -> Iterator[rbac.Rule]:
    for obj in objects:
        if obj.get("kind") in ("Role", "ClusterRole"):
            for rule in obj.get("rules") or ():
                yield rbac.Rule.from_dict(rule, source=f"{obj['kind']}/{obj['metadata']['name']}")


# ---------------------------------------------------------------------------------------------
# the chart alone


def test_no_rule_of_the_chart_or_the_static_operator_rbac_has_a_wildcard(
    chart_objects: list[dict[str, Any]],
) -> None:
    static = [obj for obj in yaml.safe_load_all(STATIC_OPERATOR_RBAC.read_text()) if obj]
    wildcards = [
        f"{rule.source}: {found}"
        for rule in [*_rules(chart_objects), *_rules(static)]
        for found in rule.wildcards()
    ]
    assert wildcards == []


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_calls_as_the_service_account_the_chart_binds(
    chart_objects: list[dict[str, Any]], component: str
) -> None:
    accounts = [
        rbac.service_account_user(obj["metadata"]["namespace"], obj["metadata"]["name"])
        for obj in chart_objects
        if obj.get("kind") == "ServiceAccount"
        and chart.component_of(obj) == SERVICE_ACCOUNT_OF.get(component, component)
    ]
    assert accounts == [identity.IDENTITIES[component].user]
    assert _proof(component, chart_objects).own_rules(), f"the chart grants {component} nothing"


def test_the_static_operator_rbac_grants_what_the_chart_grants_the_operator(
    chart_objects: list[dict[str, Any]],
) -> None:
    """``operator/rbac.yaml`` (installs without Helm, with ``operator/webhook.yaml``) gives the
    operator exactly the permissions the chart gives it."""
    static = [obj for obj in yaml.safe_load_all(STATIC_OPERATOR_RBAC.read_text()) if obj]
    in_chart = _grants(_proof("operator", chart_objects))
    in_static = _grants(_proof("operator", static))
    assert sorted(map(str, in_static - in_chart)) == []
    assert sorted(map(str, in_chart - in_static)) == []


def _grants(proof: Proof) -> set[rbac.Grant]:
    return {grant for bound in proof.own_rules() for grant in bound.rule.grants()}


# ---------------------------------------------------------------------------------------------
# the operator as the chart runs it: peering on, webhook configuration not managed by kopf


def test_the_operator_elects_itself_through_peering_as_the_chart_runs_it(
    apiserver: Any,
    kubectl: Any,
    apply_crds: Callable[..., list[str]],
    e2e_workdir: pathlib.Path,
) -> None:
    """The scenario tests run one operator replica (``--standalone``); the chart runs two with
    kopf peering, which needs the peering rule. One replica here, with the operator's identity."""
    apply_crds()
    kubectl("apply", "-f", str(PEERING), check=False)  # the object fails until its CRD serves
    kubectl("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev")
    kubectl.apply(PEERING)
    log_dir = e2e_workdir / "logs" / "rbac-peering"
    cert, key = scenario.self_signed_certificate(log_dir / "tls")
    metrics_port = processes.free_port()
    argv = [
        *processes.gpufair_command(),
        "operator",
        "--peering",
        "gpufair",
        "--priority",
        "1",
        "--metrics-port",
        str(metrics_port),
        "--metrics-host",
        "127.0.0.1",
        "--webhook-host",
        "127.0.0.1",
        "--webhook-port",
        str(processes.free_port()),
        "--webhook-cert",
        str(cert),
        "--webhook-key",
        str(key),
    ]
    operator = processes.start(
        argv,
        name="gpufair-operator-peering",
        log_dir=log_dir,
        env={**_environ(), **apiserver.env("operator"), "POD_ID": "rbac-proof-replica"},
        ready_url=f"http://127.0.0.1:{metrics_port}/metrics",
        ready_timeout=60.0,
    )
    try:
        waiting.wait_for(
            lambda: "rbac-proof-replica" in _peers(kubectl),
            timeout=30,
            what="the operator's heartbeat in ClusterKopfPeering gpufair",
        )
    finally:
        operator.stop()


def _peers(kubectl: Any) -> dict[str, Any]:
    peering = kubectl.json("get", "clusterkopfpeering", "gpufair")
    return dict(peering.get("status") or {})


def _environ() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_the_extender_reads_a_pod_its_cache_does_not_know_when_asked_to_bind_it(
    apiserver: Any, apply_crds: Callable[..., list[str]], e2e_workdir: pathlib.Path
) -> None:
    """Bind reads the pod from the API server when its cache has not seen it yet (the reason
    the extender may ``get`` pods); a pod that does not exist is a readable bind error."""
    apply_crds()
    extender, url = scenario.extender_component(
        apiserver=apiserver, log_dir=e2e_workdir / "logs" / "rbac-extender"
    )
    extender.start()
    try:
        args = {"PodName": "no-such-pod", "PodNamespace": "default", "PodUID": "", "Node": "n"}
        answer = httpx.post(f"{url}/bind", json=args, timeout=10)
    finally:
        extender.stop()
    assert answer.status_code == 200
    assert answer.json()["Error"] == "pod default/no-such-pod not found"


# ---------------------------------------------------------------------------------------------
# the proof over the whole run (after every other e2e test)


@pytest.mark.after_e2e
@pytest.mark.parametrize("component", COMPONENTS)
def test_every_call_of_the_component_is_allowed_by_its_chart_rbac(
    chart_objects: list[dict[str, Any]],
    recorded: Callable[[str], list[audit.Call]],
    component: str,
) -> None:
    calls = recorded(component)
    if not calls:
        pytest.skip(f"no call of the {component} was recorded: none of its tests ran")
    proof = _proof(component, chart_objects)
    denied = proof.denied(calls)
    assert not denied, f"the chart's RBAC forbids calls the {component} made:\n" + "\n".join(
        sorted(map(str, denied))
    )


@pytest.mark.after_e2e
@pytest.mark.parametrize("component", COMPONENTS)
def test_every_rule_the_chart_grants_the_component_was_used(
    request: pytest.FixtureRequest,
    chart_objects: list[dict[str, Any]],
    recorded: Callable[[str], list[audit.Call]],
    component: str,
) -> None:
    if component in NOT_PROVABLE_UNUSED:
        pytest.skip(NOT_PROVABLE_UNUSED[component])
    if not rbac_audit.whole_e2e_run(request.config):
        pytest.skip("only a run of the whole e2e suite shows which rules are unused")
    calls = recorded(component)
    if not calls:
        pytest.skip(f"no call of the {component} was recorded: none of its tests ran")
    unused = _proof(component, chart_objects).unused(calls)
    assert not unused, f"rules the {component} never used in the e2e run:\n" + "\n".join(unused)
