"""Which resources the stand-in serves: kmock's bundled built-ins plus CRDs created at run time.

kmock keeps discovery facts in ``KubernetesScaffold.resources`` (a ``ResourcesArray`` of
``ResourceInfo``) and ships a snapshot of a K3s cluster's built-in resources
(``ResourcesArray.load_bundled``). The registry fills that array and reads it back as
:class:`ResourceSpec` values; what kmock has no field for (the CRD that defined a resource, its
printer columns, the kind of each subresource) lives beside it here.

kmock 0.8 never learns a resource from a ``CustomResourceDefinition``: creating one through
``apiextensions.k8s.io/v1`` stores it like any object, but its group stays undiscoverable and its
objects unservable. :meth:`Registry.register_crd` makes the served version discoverable with its
scope, names, short names, categories and subresources (``status``, ``scale``).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import kmock

from gpufair.standin.apiserver import crdcost

# Aggregated or distribution-specific APIs in kmock's K3s snapshot that a plain kube-apiserver
# does not serve; kubectl would otherwise resolve ``kubectl get nodes`` ambiguously.
_DROPPED_GROUPS = frozenset({"metrics.k8s.io", "gateway.networking.k8s.io"})

# Every verb a stored resource supports.
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Kind and verbs of well-known subresources in discovery ("" kind = the parent's kind).
_SUBRESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": ("", ("get", "patch", "update")),
    "scale": ("Scale", ("get", "patch", "update")),
    "binding": ("Binding", ("create",)),
    "eviction": ("Eviction", ("create",)),
    "ephemeralcontainers": ("", ("get", "patch", "update")),
    "resize": ("", ("get", "patch", "update")),
    "finalize": ("", ("update",)),
}

# Group versions listed first in discovery, in this order (the rest follow alphabetically).
_PREFERRED_ORDER = (
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
)


@dataclasses.dataclass(frozen=True, slots=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")
# ``kubectl get`` columns of built-ins that scenarios look at (the real server has more).
_BUILTIN_COLUMNS: dict[str, tuple[PrinterColumn, ...]] = {
    "v1/pods": (
        PrinterColumn("Status", ".status.phase"),
        PrinterColumn("Node", ".spec.nodeName"),
        _AGE,
        PrinterColumn("Nominated Node", ".status.nominatedNodeName", priority=1),
    ),
    "v1/nodes": (
        PrinterColumn("GPUs", ".status.allocatable.nvidia\\.com/gpu"),
        PrinterColumn("Unschedulable", ".spec.unschedulable"),
        _AGE,
    ),
    "v1/events": (
        PrinterColumn("Type", ".type"),
        PrinterColumn("Reason", ".reason"),
        PrinterColumn("Object", ".involvedObject.name"),
        PrinterColumn("Message", ".message"),
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceSpec:
    """Everything the server needs to know about one served resource."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def subresource_discovery(self, name: str) -> dict[str, Any]:
        kind, verbs = _SUBRESOURCES.get(name, ("", ("get",)))
        return {
            "name": f"{self.plural}/{name}",
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": kind or self.kind,
            "verbs": list(verbs),
        }

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        return entry


class Registry:
    """The served resources, stored in kmock's ``ResourcesArray`` (``emulator.resources``)."""

    def __init__(self, resources: kmock.ResourcesArray) -> None:
        self._resources = resources
        self._columns: dict[kmock.resource, tuple[PrinterColumn, ...]] = {}
        self._custom: dict[kmock.resource, str] = {}  # resource -> CRD name
        self.generation = 0  # bumped whenever the set of served resources changes

    def load_builtins(self) -> None:
        with warnings.catch_warnings():  # kmock 0.8 reads its data with a deprecated call
            warnings.simplefilter("ignore", DeprecationWarning)
            self._resources.load_bundled()
        for key, columns in _BUILTIN_COLUMNS.items():
            self._columns[kmock.resource(key)] = columns
        for resource in self._keys():
            if resource.group in _DROPPED_GROUPS:
                del self._resources[resource]
        # The bundled snapshot has no singular names for some resources; kubectl wants them.
        for resource in self._resources:
            info = self._resources[resource]
            if not info.singular and info.kind:
                info.singular = info.kind.lower()

    def lookup(self, group: str, version: str, plural: str) -> ResourceSpec | None:
        key = kmock.resource(group, version, plural)
        if key not in self._resources:
            return None
        return self._spec(key, self._resources[key])

    def lookup_kind(self, api_version: str, kind: str) -> ResourceSpec | None:
        for spec in self:
            if spec.api_version == api_version and spec.kind == kind:
                return spec
        return None

    def __iter__(self) -> Iterator[ResourceSpec]:
        for key in self._keys():
            yield self._spec(key, self._resources[key])

    def _keys(self) -> list[kmock.resource]:
        return [kmock.resource(key) for key in list(self._resources)]

    def group_versions(self) -> dict[str, list[str]]:
        """Group -> served versions (core group ``""`` included), in discovery order."""
        result: dict[str, list[str]] = {}
        for spec in self:
            versions = result.setdefault(spec.group, [])
            if spec.version not in versions:
                versions.append(spec.version)
        for versions in result.values():
            versions.sort(key=_version_priority)
        order = {group: i for i, group in enumerate(_PREFERRED_ORDER)}
        return dict(sorted(result.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def in_group_version(self, group: str, version: str) -> list[ResourceSpec]:
        return sorted(
            (s for s in self if s.group == group and s.version == version), key=lambda s: s.plural
        )

    def crd_of(self, spec: ResourceSpec) -> str | None:
        return self._custom.get(spec.key)

    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceSpec]:
        """Serve every ``served`` version of a CRD; returns the registered specs."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        if not group or not plural or not kind:
            raise ValueError("spec.group, spec.names.plural and spec.names.kind are required")
        crd_name = (crd.get("metadata") or {}).get("name") or f"{plural}.{group}"
        crdcost.refuse_over_budget(crd)  # as kube-apiserver: 422 for over-budget CEL rules
        registered: list[ResourceSpec] = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            key = kmock.resource(group, version["name"], plural)
            subresources = set((version.get("subresources") or {}).keys())
            self._resources[key] = kmock.ResourceInfo(
                kind=kind,
                singular=names.get("singular") or kind.lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                verbs=set(ALL_VERBS),
                shortnames=set(names.get("shortNames") or ()),
                categories=set(names.get("categories") or ()),
                subresources=subresources,
            )
            self._columns[key] = tuple(
                PrinterColumn(
                    name=column["name"],
                    json_path=column["jsonPath"],
                    type=column.get("type", "string"),
                    priority=int(column.get("priority", 0)),
                    description=column.get("description", ""),
                )
                for column in version.get("additionalPrinterColumns") or ()
            )
            self._custom[key] = crd_name
            self.generation += 1
            registered.append(self._spec(key, self._resources[key]))
        return registered

    def unregister_crd(self, crd_name: str) -> list[ResourceSpec]:
        removed: list[ResourceSpec] = []
        for key, name in list(self._custom.items()):
            if name == crd_name:
                removed.append(self._spec(key, self._resources[key]))
                del self._resources[key]
                del self._custom[key]
                self._columns.pop(key, None)
                self.generation += 1
        return removed

    def _spec(self, key: kmock.resource, info: kmock.ResourceInfo) -> ResourceSpec:
        assert key.group is not None
        assert key.version is not None
        assert key.plural is not None
        kind = info.kind or key.plural.capitalize()
        return ResourceSpec(
            group=key.group,
            version=key.version,
            plural=key.plural,
            kind=kind,
            singular=info.singular or kind.lower(),
            namespaced=bool(info.namespaced),
            verbs=tuple(sorted(info.verbs)) or ALL_VERBS,
            short_names=tuple(sorted(info.shortnames)),
            categories=tuple(sorted(info.categories)),
            subresources=tuple(sorted(info.subresources)),
            printer_columns=self._columns.get(key, ()),
            custom=key in self._custom,
        )


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, then higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0)
    major, stage, minor = int(match[1]), match[2], int(match[3] or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)
