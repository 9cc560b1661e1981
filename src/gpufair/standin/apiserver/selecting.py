"""Label and field selectors, parsed and matched as the API server does.

kmock 0.8 ignores ``labelSelector`` and ``fieldSelector`` on lists and watches. The operator, the
extender and the scheduler driver all depend on them (``spec.nodeName=``, ``status.phase!=...``,
``spec.schedulerName=gpufair-scheduler``), so the stand-in implements both.

Field selectors accept any dotted path into the object, not only the few fields the real server
indexes per resource (``metadata.name``, ``metadata.namespace``, ``spec.nodeName``,
``status.phase``, ``spec.schedulerName``, …); a missing field compares as the empty string, so
``spec.nodeName=`` selects unscheduled pods as it does on a real cluster.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from typing import Any


class SelectorError(ValueError):
    """A selector that does not parse; the server answers 400 with this message."""


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    NOT_EXISTS = "!"
    GT = "gt"
    LT = "lt"


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Op
    values: tuple[str, ...] = ()


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$")
_BINARY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=|>|<)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")
_FIELD = re.compile(r"^(?P<key>[A-Za-z0-9_.\-]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*)$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` has two terms)."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    terms.append("".join(current).strip())
    return [term for term in terms if term]


def parse_labels(text: str | None) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` (equality-based and set-based terms, comma-separated)."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if match := _SET.match(term):
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            op = Op.IN if match["op"] == "in" else Op.NOT_IN
            requirements.append(Requirement(match["key"], op, values))
        elif match := _BINARY.match(term):
            op = {"=": Op.EQ, "==": Op.EQ, "!=": Op.NE, ">": Op.GT, "<": Op.LT}[match["op"]]
            requirements.append(Requirement(match["key"], op, (match["value"],)))
        elif match := _EXISTS.match(term):
            op = Op.NOT_EXISTS if match["neg"] else Op.EXISTS
            requirements.append(Requirement(match["key"], op))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return tuple(requirements)


def parse_fields(text: str | None) -> tuple[Requirement, ...]:
    """Parse a ``fieldSelector`` (``path=value``, ``path==value``, ``path!=value``)."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        match = _FIELD.match(term)
        if match is None:
            raise SelectorError(f"invalid field selector: {term!r}")
        op = Op.NE if match["op"] == "!=" else Op.EQ
        requirements.append(Requirement(match["key"], op, (match["value"].strip(),)))
    return tuple(requirements)


def _matches(requirement: Requirement, present: bool, value: str) -> bool:
    match requirement.op:
        case Op.EQ:
            return present and value == requirement.values[0]
        case Op.NE:
            return not present or value != requirement.values[0]
        case Op.IN:
            return present and value in requirement.values
        case Op.NOT_IN:
            return not present or value not in requirement.values
        case Op.EXISTS:
            return present
        case Op.NOT_EXISTS:
            return not present
        case Op.GT | Op.LT:
            try:
                number, bound = int(value), int(requirement.values[0])
            except ValueError:
                return False
            return present and (number > bound if requirement.op is Op.GT else number < bound)
    raise AssertionError(requirement.op)  # pragma: no cover


def match_labels(requirements: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    return all(_matches(r, r.key in labels, str(labels.get(r.key, ""))) for r in requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The field at a dotted ``path`` as the selector compares it ("" when missing)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return ""
        current = current[part]
    if isinstance(current, bool):
        return "true" if current else "false"
    if current is None or isinstance(current, (Mapping, list)):
        return ""
    return str(current)


def match_fields(requirements: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    # Field selectors compare values only: a missing field is "" and present.
    return all(_matches(r, True, field_value(obj, r.key)) for r in requirements)


def matcher(
    *, label_selector: str | None, field_selector: str | None
) -> Callable[[Mapping[str, Any]], bool]:
    """One predicate for both selectors of a list or watch request."""
    labels = parse_labels(label_selector)
    fields = parse_fields(field_selector)

    def accept(obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        return match_labels(labels, metadata.get("labels") or {}) and match_fields(fields, obj)

    return accept
