"""What RBAC sees of a request: verb, API group, resource, subresource, namespace and name.

A port of the API server's ``RequestInfoResolver``
(``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``): POST is ``create``, PUT ``update``,
PATCH ``patch``, DELETE ``delete`` (``deletecollection`` without a name), GET ``get`` with a
name and otherwise ``list``, or ``watch`` when the ``watch`` query parameter is anything but
``false``/``0``; a list or watch whose field selector requires one ``metadata.name`` carries
that name (so ``resourceNames`` rules apply to it). ``/api/v1/namespaces/NAME`` has namespace
NAME. A URL that is not a resource URL (``/api``, ``/apis/GROUP``, ``/openapi/v3``,
``/healthz``…) is a non-resource request whose verb is the lower-case HTTP method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
_API_PREFIXES = ("api", "apis")


@dataclasses.dataclass(frozen=True, slots=True)
class RequestInfo:
    """One request as the authorizer sees it (``path`` only for non-resource requests)."""

    verb: str
    resource_request: bool
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def combined_resource(self) -> str:
        """``pods/binding`` for a subresource, ``pods`` otherwise (as RBAC rules spell it)."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def resolve(method: str, path: str, query: Mapping[str, Sequence[str]]) -> RequestInfo:
    """The request info of ``method path?query`` (``query``: each parameter's values)."""
    verb = _METHOD_VERBS.get(method.upper(), "")
    parts = [part for part in path.strip("/").split("/") if part]
    if len(parts) < 3 or parts[0] not in _API_PREFIXES or (parts[0] == "apis" and len(parts) < 4):
        return RequestInfo(verb=method.lower(), resource_request=False, path=path or "/")
    group = ""
    if parts[0] == "apis":
        group, parts = parts[1], parts[2:]
    else:
        parts = parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return RequestInfo(verb=method.lower(), resource_request=False, path=path)
        verb, parts = parts[0], parts[1:]

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]

    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = ""
    if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES:
        subresource = parts[2]

    if not name and verb == "get":
        watch = [value.lower() for value in query.get("watch", [])]
        verb = "watch" if watch and watch[0] not in ("false", "0") else "list"
        name = _name_from_field_selector(query.get("fieldSelector", []))
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        verb=verb,
        resource_request=True,
        group=group,
        version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _name_from_field_selector(selectors: Sequence[str]) -> str:
    """The name a ``fieldSelector`` requires exactly (``metadata.name=x``), or ``""``."""
    if not selectors:
        return ""
    for term in selectors[0].split(","):
        field, operator, value = _split_term(term)
        if field == "metadata.name" and operator in ("=", "==") and value and "/" not in value:
            return value
    return ""


def _split_term(term: str) -> tuple[str, str, str]:
    for operator in ("!=", "==", "="):
        field, found, value = term.partition(operator)
        if found:
            return field.strip(), operator, value.strip()
    return term.strip(), "", ""
