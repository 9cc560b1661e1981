"""The JSONPath subset of CRD printer columns, for the stand-in's server-side ``Table`` output.

kube-apiserver fills a custom resource's ``additionalPrinterColumns`` with client-go's JSONPath
(``k8s.io/client-go/util/jsonpath``, missing keys allowed) and shows the first result, or
nothing. :mod:`.discovery` does the same with :func:`first`. Printer columns use field paths
and, for conditions, filters: ``.status.conditions[?(@.type=="Ready")].status``. Supported:

- ``.name`` (``\\.`` escapes a dot inside a name), ``['name']`` / ``["name"]``;
- ``[N]`` (negative counts from the end), ``[*]`` and ``.*`` (every element or value);
- ``[?(@.path)]`` (the path exists) and ``[?(@.path OP literal)]`` with OP one of
  ``== != < <= > >=`` and a quoted string, a number, ``true``/``false`` or ``null``.

Anything else (recursive descent ``..``, slices, unions, functions) raises
:class:`JSONPathError` naming the position, rather than silently matching nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class JSONPathError(ValueError):
    """An expression outside the supported subset, or malformed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Index:
    index: int


@dataclasses.dataclass(frozen=True, slots=True)
class Wildcard:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Filter:
    """Keep the list elements where ``path`` exists (``op`` None) or compares true."""

    path: tuple[Step, ...]
    op: str | None = None
    value: Any = None


Step = Field | Index | Wildcard | Filter

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_NAME_END = re.compile(r"(?<!\\)[.\[]")
_INDEX = re.compile(r"-?\d+")
_CONDITION = re.compile(
    r"@(?P<path>[^=!<>]*?)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.+?))?",
    re.DOTALL,
)


@functools.lru_cache(maxsize=256)
def parse(expression: str) -> tuple[Step, ...]:
    """The steps of ``expression`` (``.a.b``, optionally ``$.a.b`` or ``{.a.b}``)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    return _steps(text, expression, offset=len(expression) - len(expression.lstrip()))


def _steps(text: str, expression: str, *, offset: int) -> tuple[Step, ...]:
    steps: list[Step] = []
    at = 0
    while at < len(text):
        where = f"{expression!r} at {offset + at}"
        char = text[at]
        if char == ".":
            if text.startswith("..", at):
                raise JSONPathError(f"recursive descent (..) is not supported: {where}")
            if text.startswith(".*", at):
                steps.append(Wildcard())
                at += 2
                continue
            end = _NAME_END.search(text, at + 1)
            stop = end.start() if end else len(text)
            name = text[at + 1 : stop].replace("\\.", ".")
            if not name:
                raise JSONPathError(f"a field name is missing: {where}")
            steps.append(Field(name))
            at = stop
        elif char == "[":
            step, at = _bracket(text, at, where)
            steps.append(step)
        else:
            raise JSONPathError(f"expected '.' or '[': {where}")
    return tuple(steps)


def _bracket(text: str, at: int, where: str) -> tuple[Step, int]:
    """The step of the bracket at ``text[at] == "["`` and the position after its ``]``."""
    if text.startswith("[?(", at):
        close = _filter_end(text, at + 3, where)
        return _filter(text[at + 3 : close], where), close + 2
    end = text.find("]", at)
    if end < 0:
        raise JSONPathError(f"'[' is not closed: {where}")
    inner = text[at + 1 : end].strip()
    if inner == "*":
        return Wildcard(), end + 1
    if _INDEX.fullmatch(inner):
        return Index(int(inner)), end + 1
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return Field(inner[1:-1]), end + 1
    raise JSONPathError(f"unsupported subscript [{inner}] (slices and unions are not): {where}")


def _filter_end(text: str, start: int, where: str) -> int:
    """Position of the ``)`` that closes a filter (followed by ``]``), quotes respected."""
    quote: str | None = None
    at = start
    while at < len(text):
        char = text[at]
        if quote is not None:
            if char == "\\":
                at += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == ")" and text.startswith(")]", at):
            return at
        at += 1
    raise JSONPathError(f"filter '[?(' is not closed by ')]': {where}")


def _filter(condition: str, where: str) -> Filter:
    match = _CONDITION.fullmatch(condition.strip())
    if match is None:
        raise JSONPathError(f"a filter must be @.path or @.path OP literal: {where}")
    path = _steps(match["path"].strip(), condition, offset=0)
    if match["op"] is None:
        return Filter(path)
    return Filter(path, match["op"], _literal(match["value"].strip(), where))


def _literal(text: str, where: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    else:
        if isinstance(value, bool | int | float) or value is None:
            return value
    raise JSONPathError(f"a filter compares with a quoted string, a number or a boolean: {where}")


def find(obj: Any, expression: str) -> list[Any]:
    """Every value ``expression`` selects in ``obj``, in document order (missing keys: none)."""
    return _walk([obj], parse(expression))


def first(obj: Any, expression: str) -> Any:
    """The first value selected, or ``None`` (what a printer column cell shows)."""
    found = find(obj, expression)
    return found[0] if found else None


def _walk(current: list[Any], steps: Sequence[Step]) -> list[Any]:
    for step in steps:
        current = [child for value in current for child in _apply(step, value)]
    return current


def _apply(step: Step, value: Any) -> list[Any]:
    is_list = isinstance(value, Sequence) and not isinstance(value, str | bytes)
    match step:
        case Field(name):
            return [value[name]] if isinstance(value, Mapping) and name in value else []
        case Index(index):
            if is_list and -len(value) <= index < len(value):
                return [value[index]]
            return []
        case Wildcard():
            if isinstance(value, Mapping):
                return list(value.values())
            return list(value) if is_list else []
        case Filter():
            return [item for item in value if _keeps(step, item)] if is_list else []
    return []


def _keeps(step: Filter, item: Any) -> bool:
    found = _walk([item], step.path)
    if step.op is None:
        return bool(found)
    compare = _OPERATORS[step.op]
    for left in found:
        if isinstance(left, bool) != isinstance(step.value, bool):
            continue  # True == 1 in Python, not in JSONPath
        try:
            if compare(left, step.value):
                return True
        except TypeError:  # a string against a number: not comparable, not kept
            continue
    return False
