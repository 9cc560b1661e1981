"""Kubernetes ``Status`` errors as the real API server words them.

kmock's errors carry reasons such as ``Object Not Found`` and a traceback in ``details``; clients
branch on the canonical reasons (``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``…) and
kubectl prints ``Error from server (NotFound): pods "x" not found`` from them, so the stand-in
raises these instead. They subclass :class:`kmock.KubernetesError`, so kmock renders them too.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
import kmock


class Reason(enum.StrEnum):
    """``Status.reason`` values (``k8s.io/apimachinery/pkg/apis/meta/v1.StatusReason``)."""

    BAD_REQUEST = "BadRequest"
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    CONFLICT = "Conflict"
    INVALID = "Invalid"
    GONE = "Expired"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_ERROR = "InternalError"


@attrs.frozen
class StatusError(kmock.KubernetesError):
    """An API error answered as a ``Status`` object with the given HTTP code."""

    status: int = 500
    reason: str | None = Reason.INTERNAL_ERROR
    message: str | None = None
    details: Any | None = None

    def to_status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message or "",
            "reason": self.reason,
            "code": self.status,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(*, plural: str, group: str, name: str | None) -> StatusError:
    return StatusError(
        404,
        Reason.NOT_FOUND,
        f'{_qualified(plural, group)} "{name}" not found'
        if name
        else "the server could not find the requested resource",
        _details(name, group, plural),
    )


def already_exists(*, plural: str, group: str, name: str) -> StatusError:
    return StatusError(
        409,
        Reason.ALREADY_EXISTS,
        f'{_qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(*, plural: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(
        409,
        Reason.CONFLICT,
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(*, kind: str, group: str, name: str | None, why: str) -> StatusError:
    return StatusError(
        422,
        Reason.INVALID,
        f'{kind}.{group or "core"} "{name or ""}" is invalid: {why}',
        _details(name, group, kind),
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, Reason.BAD_REQUEST, message)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, Reason.METHOD_NOT_ALLOWED, message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(
        415,
        Reason.UNSUPPORTED_MEDIA_TYPE,
        f"the body of the request was in an unknown format: {content_type or '(none)'}",
    )


def gone(message: str) -> StatusError:
    return StatusError(410, Reason.GONE, message)


def too_many_requests(message: str, *, details: dict[str, Any] | None = None) -> StatusError:
    return StatusError(429, Reason.TOO_MANY_REQUESTS, message, details)
