"""The stand-in's authentication and request record: who called what, as RBAC sees it.

Every request is authenticated (:mod:`.identity`; an unknown token gets 401 as on a
real API server), resolved to its RBAC attributes (:mod:`.requestinfo`) and, when the
stand-in runs with ``--audit-log PATH``, each distinct (user, verb, group, resource,
subresource, namespace, name) is appended to PATH as one JSON line as it is first seen. The
e2e suite reads the file at its end (``e2e/test_rbac_least_privilege.py``) to prove each
component's RBAC from what it really did.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gpufair.standin.apiserver import errors, identity, rbac, requestinfo


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: who, and what as RBAC sees it."""

    user: str
    groups: tuple[str, ...]
    info: requestinfo.RequestInfo

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "groups": list(self.groups), **dataclasses.asdict(self.info)}

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> Call:
        fields = {f.name for f in dataclasses.fields(requestinfo.RequestInfo)}
        info = requestinfo.RequestInfo(**{k: v for k, v in line.items() if k in fields})
        return cls(user=str(line["user"]), groups=tuple(line.get("groups") or ()), info=info)

    def __str__(self) -> str:
        info = self.info
        if not info.resource_request:
            return f"{info.verb} {info.path}"
        where = f" in namespace {info.namespace}" if info.namespace else " (cluster scope)"
        group = info.group or "core"
        named = f" {info.name}" if info.name else ""
        return f"{info.verb} {info.combined_resource}{named} ({group}){where}"


class Recorder:
    """Appends each distinct call to a JSON-lines file (thread-safe, flushed per line)."""

    def __init__(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._seen: set[Call] = set()
        self._lock = threading.Lock()

    def record(self, call: Call) -> None:
        with self._lock:
            if call in self._seen:
                return
            self._seen.add(call)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(call.to_json(), sort_keys=True) + "\n")


def read(path: pathlib.Path) -> list[Call]:
    """The calls recorded in ``path`` (none when the file does not exist)."""
    if not path.exists():
        return []
    return [Call.from_json(json.loads(line)) for line in _lines(path)]


def _lines(path: pathlib.Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield line


@dataclasses.dataclass
class Gate:
    """What the stand-in does with each request before serving it: authenticate, record, and
    with an ``authorizer`` refuse a component's call its RBAC does not allow (403, worded as
    the API server words it). Only the components' service accounts are judged: the admin is
    ``system:masters``, and anonymous probes (``/readyz``) are public on a real cluster too."""

    recorder: Recorder | None = None
    authorizer: rbac.Authorizer | None = None

    def admit(
        self,
        *,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        authorization: str | None,
    ) -> errors.StatusError | None:
        """``None`` to serve the request, or the error to answer instead."""
        try:
            caller = identity.authenticate(authorization)
        except identity.UnknownTokenError:
            return errors.StatusError(401, "Unauthorized", "Unauthorized")
        info = requestinfo.resolve(method, path, query)
        if self.recorder is not None:
            self.recorder.record(Call(user=caller.user, groups=caller.groups, info=info))
        if self.authorizer is None or not caller.user.startswith(_SERVICE_ACCOUNTS):
            return None
        subject = rbac.Subject(user=caller.user, groups=caller.groups)
        if self.authorizer.allowed_by(subject, info):
            return None
        return forbidden(caller.user, info)


_SERVICE_ACCOUNTS = "system:serviceaccount:"


def forbidden(user: str, info: requestinfo.RequestInfo) -> errors.StatusError:
    """The API server's 403 (``responsewriters.forbiddenMessage`` inside ``NewForbidden``)."""
    if not info.resource_request:
        why = f"User {json.dumps(user)} cannot {info.verb} path {json.dumps(info.path)}"
        return errors.StatusError(403, "Forbidden", f"forbidden: {why}")
    where = (
        f"in the namespace {json.dumps(info.namespace)}"
        if info.namespace
        else "at the cluster scope"
    )
    why = (
        f"User {json.dumps(user)} cannot {info.verb} resource"
        f" {json.dumps(info.combined_resource)} in API group {json.dumps(info.group)} {where}"
    )
    qualified = f"{info.resource}.{info.group}" if info.group else info.resource
    named = f"{qualified} {json.dumps(info.name)}" if info.name else qualified
    details: dict[str, Any] = {"group": info.group, "kind": info.resource}
    if info.name:
        details["name"] = info.name
    return errors.StatusError(403, "Forbidden", f"{named} is forbidden: {why}", details)
