"""The RBAC proof's own parts, so the proof can fail: the stand-in's port of the API server's
RequestInfoResolver (method and URL -> RBAC verb, resource, namespace, name) and its port of
the RBAC authorizer's rule and binding matching (``gpufair.standin.apiserver.requestinfo``,
``gpufair.standin.apiserver.rbac``)."""

from __future__ import annotations

from typing import Any

import pytest

from gpufair.standin.apiserver import audit, identity, rbac, requestinfo

Info = requestinfo.RequestInfo


def request(method: str, url: str) -> Info:
    path, _, query_text = url.partition("?")
    query: dict[str, list[str]] = {}
    for pair in filter(None, query_text.split("&")):
        key, _, value = pair.partition("=")
        query.setdefault(key, []).append(value)
    return requestinfo.resolve(method, path, query)


def resource(verb: str, resource: str, **fields: Any) -> Info:
    fields.setdefault("version", "v1")
    return Info(verb=verb, resource_request=True, resource=resource, **fields)


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        pytest.param("GET", "/api/v1/pods", resource("list", "pods"), id="list-cluster"),
        pytest.param(
            "GET",
            "/api/v1/namespaces/team/pods?watch=true&resourceVersion=4",
            resource("watch", "pods", namespace="team"),
            id="watch",
        ),
        pytest.param(
            "GET",
            "/api/v1/pods?watch=false",
            resource("list", "pods"),
            id="watch-false-is-list",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/team/pods/p",
            resource("get", "pods", namespace="team", name="p"),
            id="get",
        ),
        pytest.param(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases?fieldSelector=metadata.name%3Dx",
            resource("list", "leases", group="coordination.k8s.io", namespace="s"),
            id="encoded-selector-is-not-decoded-here",
        ),
        pytest.param(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases?fieldSelector=metadata.name=x",
            resource("list", "leases", group="coordination.k8s.io", namespace="s", name="x"),
            id="list-by-name-carries-the-name",
        ),
        pytest.param(
            "POST",
            "/api/v1/namespaces/team/pods/p/binding",
            resource("create", "pods", namespace="team", name="p", subresource="binding"),
            id="subresource",
        ),
        pytest.param(
            "PATCH",
            "/apis/gpufair.dev/v1alpha1/tenantquotas/t/status",
            resource(
                "patch",
                "tenantquotas",
                group="gpufair.dev",
                version="v1alpha1",
                name="t",
                subresource="status",
            ),
            id="cluster-scoped-status",
        ),
        pytest.param(
            "PUT",
            "/api/v1/namespaces/team",
            resource("update", "namespaces", namespace="team", name="team"),
            id="a-namespace-is-in-itself",
        ),
        pytest.param(
            "PUT",
            "/api/v1/namespaces/team/finalize",
            resource("update", "namespaces", namespace="team", name="team", subresource="finalize"),
            id="namespace-subresource",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/namespaces/team/pods",
            resource("deletecollection", "pods", namespace="team"),
            id="deletecollection",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/nodes/n",
            resource("delete", "nodes", name="n"),
            id="delete",
        ),
        pytest.param(
            "GET",
            "/apis/gpufair.dev",
            Info(verb="get", resource_request=False, path="/apis/gpufair.dev"),
            id="group-discovery",
        ),
        pytest.param(
            "GET",
            "/healthz",
            Info(verb="get", resource_request=False, path="/healthz"),
            id="non-resource",
        ),
    ],
)
def test_request_info_as_the_api_server_resolves_it(method: str, url: str, expected: Info) -> None:
    assert request(method, url) == expected


def test_the_name_of_a_list_comes_only_from_an_exact_name_selector() -> None:
    query = {"fieldSelector": ["metadata.name!=x"]}
    assert requestinfo.resolve("GET", "/api/v1/nodes", query).name == ""


RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


@pytest.mark.parametrize(
    ("rule", "info", "allowed"),
    [
        pytest.param(RULE, resource("list", "pods"), True, id="verb-and-resource"),
        pytest.param(RULE, resource("patch", "pods"), False, id="other-verb"),
        pytest.param(RULE, resource("get", "nodes"), False, id="other-resource"),
        pytest.param(
            RULE, resource("get", "pods", group="metrics.k8s.io"), False, id="other-group"
        ),
        pytest.param(
            RULE,
            resource("get", "pods", subresource="status", name="p"),
            False,
            id="resource-does-not-grant-its-subresource",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
            resource("create", "pods", subresource="eviction", name="p", namespace="n"),
            True,
            id="resource-slash-subresource",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
            resource("create", "pods", namespace="n"),
            False,
            id="subresource-rule-does-not-grant-the-resource",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]},
            resource("patch", "pods", subresource="status", name="p"),
            True,
            id="star-slash-subresource",
        ),
        pytest.param(
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            resource("delete", "nodes", name="n"),
            True,
            id="wildcards",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["a"], "verbs": ["get"]},
            resource("get", "nodes", name="b"),
            False,
            id="other-name",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["a"], "verbs": ["list"]},
            resource("list", "nodes"),
            False,
            id="resource-names-never-allow-an-unnamed-list",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["a"], "verbs": ["get"]},
            resource("get", "nodes", name="a"),
            True,
            id="named",
        ),
        pytest.param(
            {"nonResourceURLs": ["/apis/*"], "verbs": ["get"]},
            Info(verb="get", resource_request=False, path="/apis/gpufair.dev/v1alpha1"),
            True,
            id="url-prefix",
        ),
        pytest.param(
            {"nonResourceURLs": ["/apis/*"], "verbs": ["get"]},
            Info(verb="get", resource_request=False, path="/api"),
            False,
            id="other-url",
        ),
        pytest.param(
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]},
            Info(verb="get", resource_request=False, path="/healthz"),
            False,
            id="resource-rules-never-allow-urls",
        ),
    ],
)
def test_rule_matching_as_the_rbac_authorizer_does(
    rule: dict[str, Any], info: Info, allowed: bool
) -> None:
    assert rbac.Rule.from_dict(rule).allows(info) is allowed


def binding(kind: str, *, namespace: str | None = None, subject: dict[str, str]) -> dict[str, Any]:
    metadata = {"name": "b", **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"kind": "ClusterRole", "name": "reader"},
        "subjects": [subject],
    }


READER = {"kind": "ClusterRole", "metadata": {"name": "reader"}, "rules": [RULE]}
ACCOUNT = {"kind": "ServiceAccount", "name": "op", "namespace": "sys"}
OPERATOR = rbac.Subject(user="system:serviceaccount:sys:op", groups=("system:authenticated",))


@pytest.mark.parametrize(
    ("bound", "subject", "info", "allowed"),
    [
        pytest.param(
            binding("ClusterRoleBinding", subject=ACCOUNT),
            OPERATOR,
            resource("list", "pods", namespace="team"),
            True,
            id="cluster-binding-everywhere",
        ),
        pytest.param(
            binding("RoleBinding", namespace="team", subject=ACCOUNT),
            OPERATOR,
            resource("list", "pods", namespace="team"),
            True,
            id="role-binding-in-its-namespace",
        ),
        pytest.param(
            binding("RoleBinding", namespace="team", subject=ACCOUNT),
            OPERATOR,
            resource("list", "pods", namespace="other"),
            False,
            id="role-binding-elsewhere",
        ),
        pytest.param(
            binding("RoleBinding", namespace="team", subject=ACCOUNT),
            OPERATOR,
            resource("list", "pods"),
            False,
            id="role-binding-not-cluster-wide",
        ),
        pytest.param(
            binding("ClusterRoleBinding", subject={**ACCOUNT, "namespace": "other"}),
            OPERATOR,
            resource("list", "pods"),
            False,
            id="account-of-another-namespace",
        ),
        pytest.param(
            binding(
                "ClusterRoleBinding", subject={"kind": "Group", "name": "system:authenticated"}
            ),
            OPERATOR,
            resource("list", "pods"),
            True,
            id="group",
        ),
        pytest.param(
            binding("ClusterRoleBinding", subject={"kind": "User", "name": "alice"}),
            OPERATOR,
            resource("list", "pods"),
            False,
            id="other-user",
        ),
    ],
)
def test_bindings_grant_their_role_to_their_subjects_in_their_scope(
    bound: dict[str, Any], subject: rbac.Subject, info: Info, allowed: bool
) -> None:
    authorizer = rbac.Authorizer.from_objects([READER, bound])
    assert bool(authorizer.allowed_by(subject, info)) is allowed


def test_a_binding_to_an_unknown_role_grants_nothing_and_is_reported() -> None:
    authorizer = rbac.Authorizer.from_objects([binding("ClusterRoleBinding", subject=ACCOUNT)])
    assert authorizer.allowed_by(OPERATOR, resource("list", "pods")) == []
    assert authorizer.missing_roles() == ["ClusterRole/reader (bound by ClusterRoleBinding/b)"]


def test_every_authenticated_caller_may_discover_but_not_read() -> None:
    authorizer = rbac.Authorizer.from_objects([], builtin=rbac.BUILTIN_ROLES)
    discovery = Info(verb="get", resource_request=False, path="/apis/gpufair.dev/v1alpha1")
    assert authorizer.allowed_by(OPERATOR, discovery)
    assert not authorizer.allowed_by(OPERATOR, resource("list", "pods"))
    anonymous = rbac.Subject(user="system:anonymous", groups=("system:unauthenticated",))
    assert not authorizer.allowed_by(anonymous, discovery)


@pytest.mark.parametrize(
    ("rule", "found"),
    [
        pytest.param(RULE, [], id="none"),
        pytest.param({**RULE, "verbs": ["*"]}, ["verbs: *"], id="verb"),
        pytest.param({**RULE, "apiGroups": ["*"]}, ["apiGroups: *"], id="group"),
        pytest.param({**RULE, "resources": ["*/status"]}, ["resources: */status"], id="sub"),
        pytest.param(
            {"nonResourceURLs": ["/apis/*"], "verbs": ["get"]},
            ["nonResourceURLs: /apis/*"],
            id="url",
        ),
    ],
)
def test_wildcards_are_named(rule: dict[str, Any], found: list[str]) -> None:
    assert rbac.Rule.from_dict(rule).wildcards() == found


def test_a_rule_is_used_only_by_calls_it_allows() -> None:
    rule = rbac.Rule.from_dict(
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]}
    )
    grants = list(rule.grants())
    calls = [resource("get", "pods", name="p", namespace="n")]
    assert [str(g) for g in grants if not any(g.allows(c) for c in calls)] == ["get nodes (core)"]


@pytest.mark.parametrize(
    ("header", "user"),
    [
        pytest.param(None, identity.ANONYMOUS_USER, id="no-header-is-anonymous"),
        pytest.param(
            "Bearer standin-operator",
            "system:serviceaccount:gpufair-system:gpufair-operator",
            id="component",
        ),
        pytest.param("Bearer standin", "kubernetes-admin", id="admin"),
    ],
)
def test_tokens_name_their_users(header: str | None, user: str) -> None:
    assert identity.authenticate(header).user == user


@pytest.mark.parametrize("header", ["Bearer nobody", "Basic YTpi", "Bearer "])
def test_an_unknown_token_is_refused_with_401(header: str) -> None:
    refused = audit.Gate().admit(method="GET", path="/api", query={}, authorization=header)
    assert refused is not None
    assert refused.status == 401


def test_the_recorder_keeps_each_distinct_call_once(tmp_path: Any) -> None:
    recorder = audit.Recorder(tmp_path / "audit.jsonl")
    gate = audit.Gate(recorder=recorder)
    for _ in range(3):
        gate.admit(
            method="GET",
            path="/api/v1/pods",
            query={"watch": ["1"]},
            authorization="Bearer standin-agent",
        )
    gate.admit(method="GET", path="/api/v1/pods", query={}, authorization="Bearer standin-agent")
    calls = audit.read(tmp_path / "audit.jsonl")
    assert [(c.user, c.info.verb) for c in calls] == [
        (identity.IDENTITIES["agent"].user, "watch"),
        (identity.IDENTITIES["agent"].user, "list"),
    ]


def enforcing_gate() -> audit.Gate:
    agent = identity.IDENTITIES["agent"]
    account = {"kind": "ServiceAccount", "name": agent.user.rsplit(":", 1)[1]}
    account["namespace"] = identity.RELEASE_NAMESPACE
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}],
    }
    objects = [role, binding("ClusterRoleBinding", subject=account)]
    return audit.Gate(authorizer=rbac.Authorizer.from_objects(objects, builtin=rbac.BUILTIN_ROLES))


AGENT = "Bearer standin-agent"
AGENT_USER = '"system:serviceaccount:gpufair-system:gpufair-agent"'


@pytest.mark.parametrize(
    ("method", "path", "query", "message"),
    [
        pytest.param(
            "GET",
            "/api/v1/pods",
            {},
            f'pods is forbidden: User {AGENT_USER} cannot list resource "pods" in API group ""'
            " at the cluster scope",
            id="list",
        ),
        pytest.param(
            "POST",
            "/api/v1/namespaces/team/pods/p/binding",
            {},
            f'pods "p" is forbidden: User {AGENT_USER} cannot create resource "pods/binding"'
            ' in API group "" in the namespace "team"',
            id="subresource-in-namespace",
        ),
        pytest.param(
            "PATCH",
            "/apis/gpufair.dev/v1alpha1/tenantquotas/t",
            {},
            f'tenantquotas.gpufair.dev "t" is forbidden: User {AGENT_USER} cannot patch resource'
            ' "tenantquotas" in API group "gpufair.dev" at the cluster scope',
            id="custom-resource",
        ),
    ],
)
def test_an_enforcing_stand_in_refuses_a_components_call_as_the_api_server_does(
    method: str, path: str, query: dict[str, list[str]], message: str
) -> None:
    refused = enforcing_gate().admit(method=method, path=path, query=query, authorization=AGENT)
    assert refused is not None
    assert (refused.status, refused.reason, refused.message) == (403, "Forbidden", message)


@pytest.mark.parametrize(
    ("authorization", "path"),
    [
        pytest.param(AGENT, "/api/v1/nodes/n", id="allowed-by-its-role"),
        pytest.param(AGENT, "/apis/gpufair.dev/v1alpha1", id="discovery"),
        pytest.param("Bearer standin", "/api/v1/pods", id="admin-is-not-judged"),
        pytest.param(None, "/readyz", id="anonymous-probe"),
    ],
)
def test_an_enforcing_stand_in_serves_what_rbac_allows(
    authorization: str | None, path: str
) -> None:
    gate = enforcing_gate()
    assert gate.admit(method="GET", path=path, query={}, authorization=authorization) is None
