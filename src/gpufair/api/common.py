"""Building blocks shared by the gpufair CRD models: base classes, LabelSelector, Condition.

Every CRD model in :mod:`gpufair.api.quota` and :mod:`gpufair.api.pool` derives from
:class:`SpecModel` or :class:`StatusModel`, so the wire conventions live in one place:
camelCase keys (``GPU`` stays upper case after the first word: ``costPerGPUHour``), field
docstrings as schema descriptions, unknown spec keys rejected (the API server would silently
prune them; here a typo is an error naming the field). The CRD generator
(:mod:`gpufair.api.crdgen`) reads the same models, including the CEL rules attached with
:func:`cel_rules`, so the YAML and the Python validation cannot drift apart unnoticed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from typing import Annotated, Any, ClassVar, Final, Literal

import pydantic
from pydantic_core import PydanticCustomError

from gpufair.api import names

FIELD_ERROR: Final = "gpufair_field"
"""Error type of a cross-field rule; its ``ctx`` names the offending ``field`` (wire name)."""

_ACRONYMS: Final = {"gpu": "GPU", "gpus": "GPUs"}

# Bounds of the lists, maps and strings of the CRDs. A real API server refuses a CRD whose CEL
# rules could be expensive on an unbounded value (see gpufair.api.celcost), so every one is
# bounded; BOUNDS gives the reasons, and docs/api.md lists them (generated).
MAX_SELECTOR_TERMS: Final = 32
MAX_SELECTOR_VALUES: Final = 64
MAX_CONDITIONS: Final = 16
MAX_NAMESPACES: Final = 256
MAX_POOLS_PER_TENANT: Final = 64
MAX_TENANTS_PER_POOL: Final = 1024


@dataclasses.dataclass(frozen=True)
class Bound:
    """A limit of the API and why it is what it is (rendered into docs/api.md)."""

    what: str
    limit: int
    why: str


BOUNDS: Final = (
    Bound(
        "namespaces listed by one tenant (`spec.namespaces`)",
        MAX_NAMESPACES,
        "a team has dozens of namespaces; a tenant with more selects them by label"
        " (`namespaceSelector`)",
    ),
    Bound(
        "pools of one tenant (`spec.pools`, `status.pools`)",
        MAX_POOLS_PER_TENANT,
        "one pool per GPU product and site is a few dozen even in a large fleet",
    ),
    Bound(
        "tenants reported in one pool's status (`status.tenants`)",
        MAX_TENANTS_PER_POOL,
        "every team of a large organisation",
    ),
    Bound(
        "`matchLabels` entries and `matchExpressions` of one selector",
        MAX_SELECTOR_TERMS,
        "a hand-written selector has a handful; room for generated ones",
    ),
    Bound(
        "values of one `In`/`NotIn` requirement",
        MAX_SELECTOR_VALUES,
        "e.g. every GPU product or node group a pool spans",
    ),
    Bound(
        "conditions of a status",
        MAX_CONDITIONS,
        "each kind has four condition types; the rest is room for new ones",
    ),
    Bound("names of pools and tenants", 253, "a Kubernetes object name (DNS subdomain)"),
    Bound("namespace names, label values", 63, "Kubernetes' own limit (DNS label)"),
    Bound("label keys", 317, "an optional 253-character prefix, a slash and a 63-character name"),
    Bound("condition type / reason / message", 32768, "as `metav1.Condition` (316 / 1024 / 32768)"),
    Bound(
        "durations, date-times, decimals",
        64,
        "any Go duration or RFC 3339 time fits (32 for decimals)",
    ),
    Bound("enumerated strings", 0, "the longest allowed value"),
)
"""Every bound of the CRDs, with its reason; ``limit`` 0 when it follows from the values."""


DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""RFC 1123 label: namespace names."""
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""RFC 1123 subdomain: names of cluster-scoped custom resources (GPUPool, TenantQuota)."""

DnsLabel = Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[
    str, pydantic.Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]


def wire_name(field_name: str) -> str:
    """The JSON key of a Python field: ``cost_per_gpu_hour`` -> ``costPerGPUHour``."""
    first, *rest = field_name.split("_")
    return first + "".join(_ACRONYMS.get(word, word.capitalize()) for word in rest)


@dataclasses.dataclass(frozen=True)
class CelRule:
    """One Kubernetes ``x-kubernetes-validations`` rule, evaluated by the API server.

    ``rule`` is true for valid objects. ``field`` (a wire name) points the error at a child
    field, as the Python validator implementing the same rule does; ``message_expression``
    computes the message (with the offending values) where a fixed ``message`` cannot.
    """

    rule: str
    message: str
    message_expression: str | None = None
    field: str | None = None

    def to_schema(self) -> dict[str, str]:
        schema = {"rule": self.rule, "message": self.message}
        if self.message_expression is not None:
            schema["messageExpression"] = self.message_expression
        if self.field is not None:
            schema["fieldPath"] = f".{self.field}"
            schema["reason"] = "FieldValueInvalid"
        return schema


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules into the generated CRD schema."""
    return {"x-kubernetes-validations": [rule.to_schema() for rule in rules]}


def field_error(field: str, detail: str, **values: Any) -> PydanticCustomError:
    """A cross-field validation error located at ``field`` (a wire name) of the model.

    Pydantic locates errors raised by a model validator at the model itself; the manifest
    loader appends ``field`` so that the user reads ``spec.pools[0].guaranteed: must be ...``.
    ``detail`` may use ``{name}`` placeholders filled from ``values``.
    """
    context = {"field": field, "detail": detail.format(**values)}
    return PydanticCustomError(FIELD_ERROR, "{field}: {detail}", context)


def _base_config(*, extra: Literal["forbid", "ignore"]) -> pydantic.ConfigDict:
    return pydantic.ConfigDict(
        alias_generator=wire_name,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra=extra,
        frozen=True,
        use_attribute_docstrings=True,
    )


class WireModel(pydantic.BaseModel):
    """Base of every gpufair API model: knows its Kubernetes JSON form."""

    def to_wire(self) -> dict[str, Any]:
        """The Kubernetes JSON form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(WireModel):
    """Base of everything a user writes: unknown keys are errors, not silently dropped."""

    model_config = _base_config(extra="forbid")


class StatusModel(WireModel):
    """Base of everything the operator writes; unknown keys from a newer operator are ignored."""

    model_config = _base_config(extra="ignore")


class SelectorOperator(enum.StrEnum):
    """Operators of a label selector requirement, as in Kubernetes."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_SET_OPERATORS: Final = (SelectorOperator.IN, SelectorOperator.NOT_IN)


class LabelSelectorRequirement(SpecModel):
    """A label key, an operator and (for ``In`` and ``NotIn``) the values it relates to."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule="self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values)"
                " > 0) : (!has(self.values) || size(self.values) == 0)",
                message="values must be non-empty for In and NotIn and empty for Exists and"
                " DoesNotExist",
                message_expression="(self.operator in ['In', 'NotIn'] ? 'must be non-empty'"
                " : 'must be empty') + ' for operator ' + self.operator",
                field="values",
            )
        )
    )

    key: str = pydantic.Field(min_length=1, max_length=317)
    """The label key the requirement applies to."""
    operator: SelectorOperator = pydantic.Field(json_schema_extra={"maxLength": 16})
    """How the key's value relates to ``values``: In, NotIn, Exists or DoesNotExist."""
    values: list[Annotated[str, pydantic.Field(max_length=63)]] | None = pydantic.Field(
        default=None, max_length=MAX_SELECTOR_VALUES
    )
    """Label values; non-empty for In and NotIn, empty for Exists and DoesNotExist."""

    @pydantic.model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        has_values = bool(self.values)
        if self.operator in _SET_OPERATORS and not has_values:
            raise field_error("values", "must be non-empty for operator {op}", op=self.operator)
        if self.operator not in _SET_OPERATORS and has_values:
            raise field_error("values", "must be empty for operator {op}", op=self.operator)
        return self


class LabelSelector(SpecModel):
    """A Kubernetes label selector; all requirements must hold, an empty selector matches all."""

    match_labels: dict[str, Annotated[str, pydantic.Field(max_length=63)]] | None = pydantic.Field(
        default=None, max_length=MAX_SELECTOR_TERMS
    )
    """Labels that must be present with exactly these values."""
    match_expressions: list[LabelSelectorRequirement] | None = pydantic.Field(
        default=None, max_length=MAX_SELECTOR_TERMS
    )
    """Further requirements, all of which must hold."""


CONDITION_TYPE_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
"""``metav1.Condition`` type: an optional DNS-subdomain prefix and a CamelCase name."""


class ConditionStatus(enum.StrEnum):
    """Status of a condition, as in every Kubernetes API."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of an object's state (``metav1.Condition``): what, since when, and why."""

    type: str = pydantic.Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Condition type in CamelCase, e.g. ``Ready`` or ``Overcommitted``."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = pydantic.Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """Machine-readable CamelCase cause of the last transition."""
    message: str = pydantic.Field(default="", max_length=32768)
    """Human-readable details of the last transition."""
    last_transition_time: datetime.datetime
    """When the status last changed."""
    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The ``metadata.generation`` the condition was computed from."""


CONDITIONS_LIST: Final[dict[str, Any]] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "maxItems": MAX_CONDITIONS,
}
"""Schema extras of a ``conditions`` list: one entry per type (server-side apply merges them)."""


def named_list(max_items: int) -> dict[str, Any]:
    """Schema extras of a list of objects keyed by ``name`` (duplicates rejected by the server)."""
    return {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "maxItems": max_items,
    }


class ObjectMeta(WireModel):
    """The part of ``metadata`` gpufair reads; everything else (managedFields …) is ignored.

    A ``namespace`` on these cluster-scoped objects is ignored, as ``kubectl apply`` does.
    """

    model_config = _base_config(extra="ignore")

    name: DnsSubdomain
    """Object name; for a TenantQuota, the tenant's name."""
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime.datetime | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
GO_DURATION_PATTERN: Final = r"^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"
"""A positive Go ``time.Duration`` string (``720h``, ``1h30m``, ``90s``), as CEL ``duration()``
parses it; no sign, no bare ``0``."""
_DURATION_TERM: Final = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; ``ValueError`` naming the problem when it is not one."""
    if not re.fullmatch(GO_DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 720h, 1h30m or 90s")
    return sum(
        float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_TERM.findall(text)
    )


GoDuration = Annotated[str, pydantic.Field(max_length=64, pattern=GO_DURATION_PATTERN)]


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD (a column of ``kubectl get``)."""

    name: str
    type: Literal["integer", "number", "string", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0

    def to_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            schema["priority"] = self.priority
        return schema


AGE_COLUMN: Final = PrinterColumn(
    "Age", "date", ".metadata.creationTimestamp", "Time since creation"
)


class Resource(WireModel):
    """Base of a whole gpufair object as ``kubectl apply`` takes it (``spec``/``status`` are
    declared by each kind)."""

    model_config = pydantic.ConfigDict(
        alias_generator=wire_name,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]

    api_version: str = names.API_VERSION
    kind: str
    metadata: ObjectMeta

    @pydantic.field_validator("api_version")
    @classmethod
    def _known_version(cls, api_version: str) -> str:
        if api_version != names.API_VERSION:
            raise ValueError(f"must be {names.API_VERSION}")
        return api_version

    @pydantic.field_validator("kind")
    @classmethod
    def _this_kind(cls, kind: str) -> str:
        if kind != cls.KIND:
            raise ValueError(f"must be {cls.KIND}")
        return kind

    @property
    def name(self) -> str:
        """The object's name."""
        return self.metadata.name
