"""Kubernetes resource URLs -> :class:`Route`.

kmock 0.8's own parser fails on ``/api/v1/namespaces`` (it reads ``namespaces`` as the start of a
namespaced path and raises), reads ``/api/v1/namespaces/x`` as "namespace x, no resource", and has
no notion of subresources such as ``pods/binding``; so the stand-in routes resource URLs itself.
"""

from __future__ import annotations

import dataclasses

# Subresources of the Namespace object itself: /api/v1/namespaces/{name}/{status|finalize}.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """A resource URL: ``/api[s]/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{sub}]]``."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse(path: str) -> Route | None:
    """The resource route of ``path``, or ``None`` for discovery and other non-resource URLs."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None

    namespace: str | None = None
    namespaced_path = len(rest) >= 3 and rest[0] == "namespaces"
    if namespaced_path and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]

    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(
        group=group,
        version=version,
        plural=plural,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )
