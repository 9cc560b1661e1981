"""Turn already-loaded YAML/JSON documents into GPUPool and TenantQuota models, as ``kubectl
apply`` would take them, with errors a person can act on.

``gpufair whatif`` (and anything else that reads manifests from files) loads the YAML and hands
the documents here; this module does no I/O. It accepts what ``kubectl apply -f`` accepts:
empty documents are skipped, ``kind: List`` (and ``<Kind>List``) is unpacked, objects of other
API groups are skipped, a later object with the same kind and name replaces an earlier one.
Values are checked as strictly as the API server checks them (``"2"`` is not a number); every
problem names the file, the object and the field path: ``teams.yaml: TenantQuota team-a:
spec.pools[0].guaranteed: must be <= limit (32)``. Namespaces listed by two quotas are an error
too, since a namespace belongs to at most one tenant.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import pydantic

from gpufair.api import common, names, pool, quota

Resource = pool.GPUPool | quota.TenantQuota

RESOURCES: Final[Mapping[str, type[pool.GPUPool] | type[quota.TenantQuota]]] = {
    pool.GPUPool.KIND: pool.GPUPool,
    quota.TenantQuota.KIND: quota.TenantQuota,
}

_PATTERN_MESSAGES: Final = {
    common.DNS_LABEL_PATTERN: "must be a lowercase RFC 1123 label (a-z, 0-9 and '-')",
    common.DNS_SUBDOMAIN_PATTERN: "must be a lowercase RFC 1123 name (a-z, 0-9, '-' and '.')",
    common.GO_DURATION_PATTERN: "must be a duration such as 720h, 1h30m or 90s",
    pool.DECIMAL_PATTERN: 'must be a decimal such as "2.50"',
    pool.RESOURCE_NAME_PATTERN: "must be a resource name with a domain, such as nvidia.com/gpu",
}
_TYPE_MESSAGES: Final = {
    "missing": "required",
    "extra_forbidden": f"unknown field (not in the {names.API_VERSION} schema)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "datetime_type": "must be an RFC 3339 time",
    "datetime_parsing": "must be an RFC 3339 time",
    "datetime_from_date_parsing": "must be an RFC 3339 time",
}


@dataclasses.dataclass(frozen=True)
class Document:
    """One parsed YAML document and where it came from (``index`` counts from 1 per file)."""

    origin: str
    index: int
    body: object


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as possible."""

    origin: str
    subject: str
    """``TenantQuota team-a``, or ``document 3`` when the object has no usable name."""
    path: str
    """Field path in the object (``spec.pools[0].guaranteed``); empty for the whole object."""
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.origin}: {self.subject}: {where}{self.message}"


class InvalidManifestsError(ValueError):
    """The input holds invalid objects; ``problems`` lists every one, in input order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclasses.dataclass(frozen=True)
class Manifests:
    """The gpufair objects of a set of documents, by name, and what was noticed on the way."""

    pools: Mapping[str, pool.GPUPool]
    quotas: Mapping[str, quota.TenantQuota]
    origins: Mapping[tuple[str, str], str]
    """Where each object came from, by ``(kind, name)``."""
    notes: tuple[str, ...] = ()
    """Things worth telling the user that are not errors (replaced or skipped objects)."""


def load(documents: Iterable[Document]) -> Manifests:
    """All GPUPools and TenantQuotas in ``documents``; :class:`InvalidManifestsError` lists every
    problem when any object is invalid."""
    problems: list[Problem] = []
    notes: list[str] = []
    objects: dict[tuple[str, str], Resource] = {}
    origins: dict[tuple[str, str], str] = {}
    skipped = 0
    for document in documents:
        subject = f"document {document.index}"
        for origin, where, body in _objects(document.origin, subject, document.body, problems):
            try:
                resource = parse(body, origin=origin, subject=where)
            except InvalidManifestsError as invalid:
                problems.extend(invalid.problems)
                continue
            if resource is None:
                skipped += 1
                continue
            key = (resource.kind, resource.name)
            if key in objects:
                notes.append(
                    f"{origin}: {resource.kind} {resource.name} replaces the one in {origins[key]}"
                )
            objects[key] = resource
            origins[key] = origin
    if skipped:
        notes.append(f"skipped {skipped} object(s) that are not {names.GROUP} objects")
    quotas = {name: q for (kind, name), q in objects.items() if isinstance(q, quota.TenantQuota)}
    problems.extend(_namespace_conflicts(quotas, origins))
    if problems:
        raise InvalidManifestsError(problems)
    return Manifests(
        pools={name: p for (_, name), p in sorted(objects.items()) if isinstance(p, pool.GPUPool)},
        quotas=dict(sorted(quotas.items())),
        origins=origins,
        notes=tuple(notes),
    )


def parse(body: Mapping[str, Any], *, origin: str, subject: str = "object") -> Resource | None:
    """One object as a model; ``None`` for objects of other API groups."""
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise InvalidManifestsError(
            [Problem(origin, subject, "", "apiVersion and kind are required")]
        )
    if api_version.split("/")[0] != names.GROUP:
        return None
    name = _name(body)
    if name is not None:
        subject = f"{kind} {name}"
    if api_version != names.API_VERSION:
        raise InvalidManifestsError(
            [Problem(origin, subject, "apiVersion", f"must be {names.API_VERSION}")]
        )
    model = RESOURCES.get(kind)
    if model is None:
        known = " or ".join(RESOURCES)
        raise InvalidManifestsError([Problem(origin, subject, "kind", f"must be {known}")])
    try:
        return model.model_validate_json(json.dumps(_jsonable(body)), strict=True)
    except pydantic.ValidationError as error:
        raise InvalidManifestsError(
            Problem(origin, subject, path(detail), message(detail)) for detail in error.errors()
        ) from None


def path(error: Mapping[str, Any]) -> str:
    """The wire path of a pydantic error: ``spec.pools[0].guaranteed``."""
    parts = list(error["loc"])
    if error["type"] == common.FIELD_ERROR:
        parts.append(error["ctx"]["field"])
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def message(error: Mapping[str, Any]) -> str:
    """A pydantic error message in the terse style of the API server (``must be >= 0``)."""
    kind, context = error["type"], error.get("ctx", {})
    if kind == common.FIELD_ERROR:
        return str(context["detail"])
    if kind == "value_error":
        return str(context["error"])
    if kind == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get(context["pattern"], f"must match {context['pattern']}")
    if kind == "enum":
        return f"must be {context['expected']} (got {error['input']!r})"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(context.values()))
        return f"must be {bounds[kind]} {limit:g} (got {error['input']})"
    if kind in ("too_short", "string_too_short"):
        return (
            f"must have at least {context['min_length']} item(s)"
            if kind == "too_short"
            else ("must not be empty")
        )
    if kind in ("too_long", "string_too_long"):
        unit = "items" if kind == "too_long" else "characters"
        return f"must have at most {context['max_length']} {unit}"
    text = _TYPE_MESSAGES.get(kind, str(error["msg"]))
    scalar = error.get("input")
    if kind not in ("missing", "extra_forbidden") and isinstance(scalar, str | int | float):
        text += f" (got {scalar!r})"
    return text


def _objects(
    origin: str, subject: str, body: object, problems: list[Problem]
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """The objects of one document: itself, or the items of a List (recursively)."""
    if body is None:
        return
    if not isinstance(body, Mapping):
        problems.append(Problem(origin, subject, "", "not a Kubernetes object"))
        return
    kind = body.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in body):
        yield origin, subject, body
        return
    items = body["items"] or []
    if not isinstance(items, list):
        problems.append(Problem(origin, subject, "items", "must be a list"))
        return
    for position, item in enumerate(items):
        yield from _objects(origin, f"{subject} items[{position}]", item, problems)


def _name(body: Mapping[str, Any]) -> str | None:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else None


def _jsonable(value: Any) -> Any:
    """YAML timestamps (``2026-01-01T00:00:00Z`` unquoted) become strings, as in JSON."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_jsonable(child) for child in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def _namespace_conflicts(
    quotas: Mapping[str, quota.TenantQuota], origins: Mapping[tuple[str, str], str]
) -> Iterator[Problem]:
    owner: dict[str, str] = {}
    for name, tenant in quotas.items():
        for index, namespace in enumerate(tenant.spec.namespaces):
            if namespace in owner:
                yield Problem(
                    origins[(tenant.kind, name)],
                    f"{tenant.kind} {name}",
                    f"spec.namespaces[{index}]",
                    f"namespace {namespace} already belongs to TenantQuota {owner[namespace]}",
                )
            else:
                owner[namespace] = name
