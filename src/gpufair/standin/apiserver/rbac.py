"""RBAC as the API server's RBAC authorizer decides it, for rendered Roles and bindings.

Used by ``e2e/test_rbac_least_privilege.py`` (every call a component made in the e2e run must be
allowed by the chart's RBAC for that component, every rule must be used, no wildcards) and by
the stand-in when it enforces RBAC. Rule matching follows ``k8s.io/component-helpers/auth/rbac``
(``VerbMatches``, ``APIGroupMatches``, ``ResourceMatches`` with ``resource/subresource`` and
``*/subresource``, ``ResourceNameMatches``, ``NonResourceURLMatches``); bindings follow the
authorizer: a ClusterRoleBinding grants its role everywhere, a RoleBinding only inside its own
namespace (and never non-resource URLs); subjects are users, groups and service accounts
(``system:serviceaccount:NS:NAME``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from gpufair.standin.apiserver import requestinfo

ALL = "*"


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One ``PolicyRule``; ``source`` says where it was written (``ClusterRole/x rule 2``)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    source: str = ""

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any], *, source: str = "") -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(value) for value in rule.get(key) or ())

        return cls(
            verbs=strings("verbs"),
            api_groups=strings("apiGroups"),
            resources=strings("resources"),
            resource_names=strings("resourceNames"),
            non_resource_urls=strings("nonResourceURLs"),
            source=source,
        )

    def allows(self, info: requestinfo.RequestInfo) -> bool:
        if not _verb_matches(self.verbs, info.verb):
            return False
        if not info.resource_request:
            return _non_resource_url_matches(self.non_resource_urls, info.path)
        return (
            _api_group_matches(self.api_groups, info.group)
            and _resource_matches(self.resources, info.combined_resource, info.subresource)
            and _resource_name_matches(self.resource_names, info.name)
        )

    def grants(self) -> Iterator[Grant]:
        """Each (verb, group, resource) or (verb, URL) this rule grants, for "is it used"."""
        names = self.resource_names
        for verb, group, resource in itertools.product(self.verbs, self.api_groups, self.resources):
            yield Grant(verb=verb, group=group, resource=resource, resource_names=names)
        for verb, url in itertools.product(self.verbs, self.non_resource_urls):
            yield Grant(verb=verb, url=url)

    def wildcards(self) -> list[str]:
        """The wildcards in this rule, each named (empty when there is none)."""
        found = [f"verbs: {v}" for v in self.verbs if v == ALL]
        found += [f"apiGroups: {g}" for g in self.api_groups if g == ALL]
        found += [f"resources: {r}" for r in self.resources if r == ALL or r.startswith("*/")]
        found += [f"resourceNames: {n}" for n in self.resource_names if ALL in n]
        found += [f"nonResourceURLs: {u}" for u in self.non_resource_urls if u.endswith(ALL)]
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """The smallest unit of a rule whose use a run can show."""

    verb: str
    group: str = ""
    resource: str = ""
    resource_names: tuple[str, ...] = ()
    url: str = ""

    def allows(self, info: requestinfo.RequestInfo) -> bool:
        rule = Rule(
            verbs=(self.verb,),
            api_groups=(self.group,) if not self.url else (),
            resources=(self.resource,) if not self.url else (),
            resource_names=self.resource_names,
            non_resource_urls=(self.url,) if self.url else (),
        )
        return rule.allows(info)

    def __str__(self) -> str:
        if self.url:
            return f"{self.verb} {self.url}"
        group = self.group or "core"
        names = f" named {', '.join(self.resource_names)}" if self.resource_names else ""
        return f"{self.verb} {self.resource} ({group}){names}"


@dataclasses.dataclass(frozen=True, slots=True)
class BoundRule:
    """A rule granted to a subject by one binding: everywhere, or in one namespace."""

    rule: Rule
    namespace: str | None  # None: cluster-wide (ClusterRoleBinding)
    binding: str

    def allows(self, info: requestinfo.RequestInfo) -> bool:
        in_scope = self.namespace is None or (
            info.resource_request and info.namespace == self.namespace
        )
        return in_scope and self.rule.allows(info)


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
    """Who a request comes from, as the authorizer sees it."""

    user: str
    groups: tuple[str, ...] = ()


@dataclasses.dataclass
class Authorizer:
    """Roles and bindings (e.g. a rendered chart) and who they grant what."""

    roles: dict[tuple[str, str], list[Rule]]  # (kind, "namespace/name" or "name") -> rules
    bindings: list[Mapping[str, Any]]

    @classmethod
    def from_objects(
        cls, objects: Iterable[Mapping[str, Any]], *, builtin: Iterable[Mapping[str, Any]] = ()
    ) -> Authorizer:
        """From Kubernetes objects (others than RBAC's are ignored); ``builtin`` roles are the
        cluster's own (bootstrap) roles that bindings may refer to."""
        roles: dict[tuple[str, str], list[Rule]] = {}
        bindings: list[Mapping[str, Any]] = []
        for obj in itertools.chain(builtin, objects):
            kind = obj.get("kind")
            if kind in ("ClusterRole", "Role"):
                key = _role_key(str(kind), obj.get("metadata") or {})
                roles[key] = [
                    Rule.from_dict(rule, source=f"{kind}/{key[1]} rule {index + 1}")
                    for index, rule in enumerate(obj.get("rules") or ())
                ]
            elif kind in ("ClusterRoleBinding", "RoleBinding"):
                bindings.append(obj)
        return cls(roles=roles, bindings=bindings)

    def missing_roles(self) -> list[str]:
        """Roles some binding refers to that are not known (neither rendered nor built in)."""
        missing = []
        for binding in self.bindings:
            key = _ref_key(binding)
            if key not in self.roles:
                missing.append(f"{key[0]}/{key[1]} (bound by {_binding_name(binding)})")
        return missing

    def rules_for(self, subject: Subject) -> list[BoundRule]:
        """Every rule granted to ``subject``, with the namespace it holds in."""
        granted: list[BoundRule] = []
        for binding in self.bindings:
            if not any(
                _subject_matches(s, binding, subject) for s in binding.get("subjects") or ()
            ):
                continue
            namespace = None
            if binding.get("kind") == "RoleBinding":
                namespace = str((binding.get("metadata") or {}).get("namespace") or "")
            name = _binding_name(binding)
            for rule in self.roles.get(_ref_key(binding), ()):
                granted.append(BoundRule(rule=rule, namespace=namespace, binding=name))
        return granted

    def allowed_by(self, subject: Subject, info: requestinfo.RequestInfo) -> list[BoundRule]:
        """The rules that allow ``info`` for ``subject`` (empty: RBAC denies it)."""
        return [bound for bound in self.rules_for(subject) if bound.allows(info)]


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _role_key(kind: str, metadata: Mapping[str, Any]) -> tuple[str, str]:
    name = str(metadata.get("name") or "")
    if kind == "Role":
        return kind, f"{metadata.get('namespace') or ''}/{name}"
    return kind, name


def _ref_key(binding: Mapping[str, Any]) -> tuple[str, str]:
    ref = binding.get("roleRef") or {}
    kind = str(ref.get("kind") or "")
    if kind == "Role":
        namespace = (binding.get("metadata") or {}).get("namespace") or ""
        return kind, f"{namespace}/{ref.get('name')}"
    return kind, str(ref.get("name") or "")


def _binding_name(binding: Mapping[str, Any]) -> str:
    metadata = binding.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{binding.get('kind')}/{where}{metadata.get('name')}"


def _subject_matches(
    entry: Mapping[str, Any], binding: Mapping[str, Any], subject: Subject
) -> bool:
    kind, name = entry.get("kind"), str(entry.get("name") or "")
    if kind == "User":
        return name == subject.user
    if kind == "Group":
        return name in subject.groups
    if kind == "ServiceAccount":
        namespace = entry.get("namespace") or (binding.get("metadata") or {}).get("namespace")
        return service_account_user(str(namespace or ""), name) == subject.user
    return False


def _verb_matches(verbs: Sequence[str], verb: str) -> bool:
    return ALL in verbs or verb in verbs


def _api_group_matches(groups: Sequence[str], group: str) -> bool:
    return ALL in groups or group in groups


def _resource_matches(resources: Sequence[str], combined: str, subresource: str) -> bool:
    for resource in resources:
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _resource_name_matches(names: Sequence[str], name: str) -> bool:
    return not names or name in names


def _non_resource_url_matches(urls: Sequence[str], path: str) -> bool:
    for url in urls:
        if url in (ALL, path):
            return True
        if url.endswith(ALL) and path.startswith(url[:-1]):
            return True
    return False


BUILTIN_ROLES: tuple[Mapping[str, Any], ...] = (
    # What every authenticated client may do on any cluster (bootstrap policy:
    # system:discovery, system:public-info-viewer and system:basic-user, bound to
    # system:authenticated), so discovery and self-reviews need nothing from gpufair's chart.
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:discovery"},
        "rules": [
            {
                "verbs": ["get"],
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            }
        ],
    },
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:basic-user"},
        "rules": [
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            },
            {
                "verbs": ["create"],
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
            },
        ],
    },
    {
        # Only the part of the bootstrap role a scheduling cycle reaches (events, nodes, pods,
        # bindings, pod status); the real role grants more (volumes, services, leases...).
        "kind": "ClusterRole",
        "metadata": {"name": "system:kube-scheduler"},
        "rules": [
            {
                "verbs": ["create", "update", "patch"],
                "apiGroups": ["", "events.k8s.io"],
                "resources": ["events"],
            },
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]},
            {
                "verbs": ["get", "list", "watch", "delete"],
                "apiGroups": [""],
                "resources": ["pods"],
            },
            {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/binding", "bindings"]},
            {"verbs": ["patch", "update"], "apiGroups": [""], "resources": ["pods/status"]},
        ],
    },
    *(
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "Group", "name": "system:authenticated"}],
        }
        for role in ("system:discovery", "system:basic-user")
    ),
)
"""The bootstrap roles every authenticated caller has (``plugin/pkg/auth/authorizer/rbac/
bootstrappolicy/policy.go``), so a component's discovery calls are judged like on a cluster."""
