"""Worst-case CEL cost of a CRD's ``x-kubernetes-validations``, estimated as kube-apiserver does.

A real API server refuses a CustomResourceDefinition whose rules *might* be expensive, before
any object exists: it estimates each rule's and each ``messageExpression``'s worst-case cost from
the schema's bounds (``maxLength``, ``maxItems``, ``maxProperties``), multiplies a rule by the
number of times its node can occur in one object, and compares the results with fixed limits.
The stand-in API server estimated nothing, so a CRD that every real cluster refuses went out.
This module follows the real estimator closely enough to refuse the same CRDs with the same
words, so that ``gpufair crds``, the unit tests and the stand-in catch it first.

What it follows (Kubernetes 1.36 sources):

* ``apiextensions-apiserver`` ``pkg/apis/apiextensions/validation``: ``StaticEstimatedCostLimit``
  per expression, ``StaticEstimatedCRDCostLimit`` for the whole schema, a rule's cost multiplied
  by its node's maximum cardinality (the product of ``maxItems``/``maxProperties`` of the
  enclosing lists and maps; under an unbounded one, the request size divided by the node's
  smallest JSON form), ``messageExpression`` costs counted once, and ``getCostErrorMessage``.
* ``k8s.io/apiserver/pkg/cel/common`` ``SchemaDeclType``: a string's size is ``4 * maxLength``
  bytes, or the longest enum value, or what fits in a 3 MiB request.
* cel-go ``checker/cost.go``: identifiers and field selections cost 1, literals 0, a list
  literal 10, most calls 1, string concatenation and comparison 0.1 per byte, ``in`` a list its
  size, a comprehension (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) its range size
  times its step, and the result of ``string(x)`` an unknown (unbounded) size.

Only the CEL the gpufair CRDs need is understood; anything else is refused with
:class:`UnsupportedExpressionError` rather than guessed. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

PER_CALL_LIMIT: Final = 1_000_000
"""``k8s.io/apiserver/pkg/apis/cel`` ``PerCallLimit``: runtime cost of one evaluation."""
RUNTIME_CEL_COST_BUDGET: Final = 10_000_000
"""``RuntimeCELCostBudget``: runtime cost of all rules on one object write."""
STATIC_ESTIMATED_COST_LIMIT: Final = 10_000_000
"""``StaticEstimatedCostLimit``: largest estimated cost of one expression (times cardinality)."""
STATIC_ESTIMATED_CRD_COST_LIMIT: Final = 100_000_000
"""``StaticEstimatedCRDCostLimit``: largest estimated cost of all expressions of one schema."""
MAX_REQUEST_SIZE_BYTES: Final = 3_145_728
"""``MaxRequestSizeBytes``: the largest object a request can carry, bounding everything else."""

UINT64_MAX: Final = 2**64 - 1
_STRING_TRAVERSAL_COST_FACTOR: Final = 0.1
_REGEX_STRING_LENGTH_COST_FACTOR: Final = 0.25
_LIST_CREATE_BASE_COST: Final = 10
_MAX_DURATION_SIZE_JSON: Final = 32
_MAX_DATETIME_SIZE_JSON: Final = 64
_SCHEMA_PATH: Final = "spec.validation.openAPIV3Schema"
"""Where the API server reports schema errors of a CRD with one version."""


class UnsupportedExpressionError(ValueError):
    """A CEL expression uses syntax or a function this estimator does not know."""


# --- sizes and costs: unsigned 64-bit arithmetic that saturates, as in cel-go -------------


def _add(*values: int) -> int:
    return min(UINT64_MAX, sum(values))


def _multiply(a: int, b: int) -> int:
    return min(UINT64_MAX, a * b)


def _by_factor(size: int, factor: float) -> int:
    if size >= UINT64_MAX:
        return UINT64_MAX
    return min(UINT64_MAX, math.ceil(size * factor))


# --- types derived from the schema (``SchemaDeclType``) ------------------------------------


@dataclasses.dataclass(frozen=True)
class DeclType:
    """What CEL knows of a schema node: its kind, worst-case size and smallest JSON form."""

    kind: str
    """object, map, list, string, int, double, bool, duration, timestamp or dyn."""
    max_elements: int = 1
    """Bytes of a string, items of a list, entries of a map; 1 for scalars."""
    min_serialized_size: int = 1
    fields: Mapping[str, DeclType] = dataclasses.field(default_factory=dict)
    elem: DeclType | None = None

    @property
    def is_scalar(self) -> bool:
        return self.kind in ("int", "double", "bool", "duration", "timestamp")


_SCALARS: Final = {
    "integer": DeclType("int", 1, 1),
    "number": DeclType("double", 1, 1),
    "boolean": DeclType("bool", 1, 4),
}


def decl_type(schema: Mapping[str, Any]) -> DeclType:
    """The CEL type of a structural schema node, with the sizes the API server assumes."""
    kind = schema.get("type")
    if kind == "object" and "additionalProperties" in schema:
        value = decl_type(schema["additionalProperties"])
        bound = schema.get("maxProperties")
        entries = bound if bound is not None else _unbounded_entries(value.min_serialized_size)
        return DeclType("map", entries, 2, elem=value)
    if kind == "object":
        return _object_type(schema)
    if kind == "array":
        item = decl_type(schema.get("items", {}))
        bound = schema.get("maxItems")
        items = bound if bound is not None else _unbounded_items(item.min_serialized_size)
        return DeclType("list", items, 2, elem=item)
    if kind == "string":
        return _string_type(schema)
    if kind in _SCALARS:
        return _SCALARS[str(kind)]
    return DeclType("dyn", UINT64_MAX, 0)


def _object_type(schema: Mapping[str, Any]) -> DeclType:
    required = set(schema.get("required", ()))
    fields: dict[str, DeclType] = {}
    min_size = 2  # {}
    for name, child in schema.get("properties", {}).items():
        fields[name] = decl_type(child)
        if name in required and "default" not in child:
            min_size += len(name) + fields[name].min_serialized_size + 4
    return DeclType("object", 1, min_size, fields=fields)


def _string_type(schema: Mapping[str, Any]) -> DeclType:
    if schema.get("format") == "duration":
        return DeclType("string", _MAX_DURATION_SIZE_JSON, 2)
    if schema.get("format") == "date-time":
        return DeclType("string", _MAX_DATETIME_SIZE_JSON, 2)
    if "maxLength" in schema:
        return DeclType("string", 4 * int(schema["maxLength"]), 2)
    if schema.get("enum"):
        return DeclType("string", max(len(str(v)) for v in schema["enum"]), 2)
    return DeclType("string", MAX_REQUEST_SIZE_BYTES - 2, 2)


def _unbounded_items(min_item_size: int) -> int:
    return (MAX_REQUEST_SIZE_BYTES - 2) // (min_item_size + 1)


def _unbounded_entries(min_value_size: int) -> int:
    return (MAX_REQUEST_SIZE_BYTES - 2) // (min_value_size + 6)


def max_cardinality(min_serialized_size: int) -> int:
    """How often a node this small can repeat in one request (under unbounded lists/maps)."""
    return MAX_REQUEST_SIZE_BYTES // (min_serialized_size + 1)


# --- a small CEL parser --------------------------------------------------------------------

_TOKEN: Final = re.compile(
    r"\s*(?:(?P<number>\d+\.\d+|\d+)|(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]]))"
)
_RELATIONS: Final = ("==", "!=", "<", "<=", ">", ">=", "in")
_MACROS: Final = ("all", "exists", "exists_one", "map", "filter")


@dataclasses.dataclass(frozen=True)
class Node:
    """A parsed CEL expression: ``op`` is lit, ident, select, has, call, list or a macro name."""

    op: str
    value: Any = None
    args: tuple[Node, ...] = ()


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UnsupportedExpressionError(f"cannot read {text[position:]!r}")
        position = match.end()
        kind = str(match.lastgroup)
        yield kind, match.group(kind)


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = list(_tokens(text))
        self._at = 0

    def parse(self) -> Node:
        node = self._conditional()
        if self._at != len(self._tokens):
            raise UnsupportedExpressionError(f"unexpected {self._peek()!r}")
        return node

    def _peek(self) -> str | None:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self._at >= len(self._tokens):
            raise UnsupportedExpressionError("unexpected end of expression")
        token = self._tokens[self._at]
        if expected is not None and token[1] != expected:
            raise UnsupportedExpressionError(f"expected {expected!r}, found {token[1]!r}")
        self._at += 1
        return token

    def _conditional(self) -> Node:
        condition = self._binary(0)
        if self._peek() != "?":
            return condition
        self._take("?")
        if_true = self._conditional()
        self._take(":")
        return Node("call", "_?_:_", (condition, if_true, self._conditional()))

    _LEVELS: Final = (("||",), ("&&",), _RELATIONS, ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self._unary()
        node = self._binary(level + 1)
        while self._peek() in self._LEVELS[level]:
            operator = self._take()[1]
            node = Node("call", operator, (node, self._binary(level + 1)))
        return node

    def _unary(self) -> Node:
        if self._peek() in ("!", "-"):
            operator = self._take()[1]
            return Node("call", "!_" if operator == "!" else "-_", (self._unary(),))
        return self._member()

    def _member(self) -> Node:
        node = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == "[":
                node = Node("call", "_[_]", (node, self._conditional()))
                self._take("]")
                continue
            kind, name = self._take()
            if kind != "ident":
                raise UnsupportedExpressionError(f"expected a field name, found {name!r}")
            if self._peek() != "(":
                node = Node("select", name, (node,))
            elif name in _MACROS:
                node = self._macro(name, node)
            else:
                node = Node("method", name, (node, *self._arguments()))
        return node

    def _macro(self, name: str, target: Node) -> Node:
        self._take("(")
        kind, variable = self._take()
        if kind != "ident":
            raise UnsupportedExpressionError(f"{name}() needs a variable name first")
        self._take(",")
        body = self._conditional()
        self._take(")")
        return Node(name, variable, (target, body))

    def _arguments(self) -> list[Node]:
        self._take("(")
        arguments: list[Node] = []
        while self._peek() != ")":
            arguments.append(self._conditional())
            if self._peek() != ")":
                self._take(",")
        self._take(")")
        return arguments

    def _primary(self) -> Node:
        kind, text = self._take()
        if kind == "number":
            return Node("lit", float(text) if "." in text else int(text))
        if kind == "string":
            return Node("lit", text[1:-1])
        if text == "(":
            node = self._conditional()
            self._take(")")
            return node
        if text == "[":
            elements: list[Node] = []
            while self._peek() != "]":
                elements.append(self._conditional())
                if self._peek() != "]":
                    self._take(",")
            self._take("]")
            return Node("list", None, tuple(elements))
        if kind != "ident":
            raise UnsupportedExpressionError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return Node("lit", text == "true")
        if self._peek() != "(":
            return Node("ident", text)
        arguments = self._arguments()
        if text == "has":
            if len(arguments) != 1 or arguments[0].op != "select":
                raise UnsupportedExpressionError("has() takes one field selection")
            return Node("has", arguments[0].value, arguments[0].args)
        return Node("call", text, tuple(arguments))


def parse(expression: str) -> Node:
    """The syntax tree of ``expression``; :class:`UnsupportedExpressionError` if it is not CEL this
    module understands."""
    return _Parser(expression).parse()


# --- the cost estimator (cel-go ``checker/cost.go``) ---------------------------------------


@dataclasses.dataclass(frozen=True)
class _Estimate:
    cost: int
    type: DeclType
    size: int
    """Worst-case size of the value (bytes, items, entries); UINT64_MAX when unknown."""


_BOOL: Final = DeclType("bool", 1, 4)
_INT: Final = DeclType("int", 1, 1)
_DURATION: Final = DeclType("duration", 1, 1)
_UNKNOWN_STRING: Final = DeclType("string", UINT64_MAX, 2)
_MAP_KEY: Final = DeclType("string", MAX_REQUEST_SIZE_BYTES - 2, 2)
"""A key of a schema map: a string whose only bound is the request size."""
_CONVERSIONS: Final = {
    "int": _INT,
    "double": DeclType("double", 1, 1),
    "duration": _DURATION,
    "timestamp": DeclType("timestamp", 1, 1),
    "string": _UNKNOWN_STRING,
}


class _Coster:
    def __init__(self, self_type: DeclType) -> None:
        self._scopes: list[dict[str, DeclType]] = [{"self": self_type}]

    def estimate(self, node: Node) -> _Estimate:
        handler = getattr(self, f"_{node.op}", None)
        if handler is None:
            return self._comprehension(node)
        result: _Estimate = handler(node)
        return result

    def _variable(self, name: str) -> DeclType:
        for scope in reversed(self._scopes):
            if name in scope:
                return scope[name]
        raise UnsupportedExpressionError(f"unknown variable {name!r}")

    def _lit(self, node: Node) -> _Estimate:
        if isinstance(node.value, str):
            return _Estimate(0, DeclType("string", len(node.value), 2), len(node.value))
        kind = {bool: "bool", int: "int", float: "double"}[type(node.value)]
        return _Estimate(0, DeclType(kind), 1)

    def _ident(self, node: Node) -> _Estimate:
        declared = self._variable(str(node.value))
        return _Estimate(1, declared, declared.max_elements)

    def _select(self, node: Node) -> _Estimate:
        operand = self.estimate(node.args[0])
        field = self._field(operand.type, str(node.value))
        return _Estimate(_add(operand.cost, 1), field, field.max_elements)

    def _has(self, node: Node) -> _Estimate:
        operand = self.estimate(node.args[0])
        self._field(operand.type, str(node.value))
        return _Estimate(_add(operand.cost, 1), _BOOL, 1)

    @staticmethod
    def _field(owner: DeclType, name: str) -> DeclType:
        if owner.kind == "map" and owner.elem is not None:
            return owner.elem
        if owner.kind != "object" or name not in owner.fields:
            raise UnsupportedExpressionError(f"no field {name!r} here")
        return owner.fields[name]

    def _list(self, node: Node) -> _Estimate:
        elements = [self.estimate(element) for element in node.args]
        element_type = elements[0].type if elements else DeclType("dyn")
        cost = _add(_LIST_CREATE_BASE_COST, *(e.cost for e in elements))
        return _Estimate(cost, DeclType("list", len(elements), 2, elem=element_type), len(elements))

    def _method(self, node: Node) -> _Estimate:
        target, *arguments = (self.estimate(arg) for arg in node.args)
        argument_cost = _add(target.cost, *(a.cost for a in arguments))
        name = str(node.value)
        if name == "size":
            return _Estimate(_add(1, argument_cost), _INT, 1)
        if name in ("startsWith", "endsWith"):
            call = _by_factor(arguments[0].size, _STRING_TRAVERSAL_COST_FACTOR)
            return _Estimate(_add(call, argument_cost), _BOOL, 1)
        if name == "contains":
            call = _multiply(
                _by_factor(target.size, _STRING_TRAVERSAL_COST_FACTOR),
                _by_factor(arguments[0].size, _STRING_TRAVERSAL_COST_FACTOR),
            )
            return _Estimate(_add(call, argument_cost), _BOOL, 1)
        if name == "matches":
            text = _by_factor(_add(target.size, 1), _STRING_TRAVERSAL_COST_FACTOR)
            regex = _by_factor(arguments[0].size, _REGEX_STRING_LENGTH_COST_FACTOR)
            return _Estimate(_add(_multiply(text, regex), argument_cost), _BOOL, 1)
        raise UnsupportedExpressionError(f"unknown method {name}()")

    def _call(self, node: Node) -> _Estimate:
        name = str(node.value)
        if name == "_?_:_":
            condition, if_true, if_false = (self.estimate(arg) for arg in node.args)
            cost = _add(condition.cost, max(if_true.cost, if_false.cost))
            return _Estimate(cost, if_true.type, max(if_true.size, if_false.size))
        arguments = [self.estimate(arg) for arg in node.args]
        argument_cost = _add(*(a.cost for a in arguments))
        if name in ("&&", "||"):
            return _Estimate(argument_cost, _BOOL, 1)
        if name == "+":
            return self._plus(arguments, argument_cost)
        if name in _RELATIONS:
            return self._relation(name, arguments, argument_cost)
        if name == "_[_]":
            container = arguments[0].type
            if container.elem is None:
                raise UnsupportedExpressionError("only lists and maps can be indexed")
            element = container.elem
            return _Estimate(_add(1, argument_cost), element, element.max_elements)
        result = _CONVERSIONS.get(name)
        if name in ("size", "!_", "-_", "-", "*", "/", "%"):
            result = _INT if name != "!_" else _BOOL
        if result is None:
            raise UnsupportedExpressionError(f"unknown function {name}()")
        size = 1 if result.is_scalar else UINT64_MAX
        return _Estimate(_add(1, argument_cost), result, size)

    @staticmethod
    def _plus(arguments: Sequence[_Estimate], argument_cost: int) -> _Estimate:
        left, right = arguments
        size = _add(left.size, right.size)
        if left.type.kind == "string":
            call = _by_factor(size, _STRING_TRAVERSAL_COST_FACTOR)
            return _Estimate(_add(call, argument_cost), DeclType("string", size, 2), size)
        if left.type.kind == "list":
            return _Estimate(_add(1, argument_cost), left.type, size)
        return _Estimate(_add(1, argument_cost), left.type, 1)

    @staticmethod
    def _relation(name: str, arguments: Sequence[_Estimate], argument_cost: int) -> _Estimate:
        left, right = arguments
        if name == "in":
            call = right.size if right.type.kind == "list" else 1
            return _Estimate(_add(call, argument_cost), _BOOL, 1)
        sized = name in ("==", "!=") or left.type.kind == "string"
        call = _by_factor(min(left.size, right.size), _STRING_TRAVERSAL_COST_FACTOR) if sized else 1
        return _Estimate(_add(call, argument_cost), _BOOL, 1)

    def _comprehension(self, node: Node) -> _Estimate:
        """``all``/``exists``/``exists_one``/``map``/``filter`` as cel-go expands them: the range,
        the accumulator's initial value and result, and per element the loop condition and step."""
        if node.op not in _MACROS:
            raise UnsupportedExpressionError(f"unknown expression {node.op}")
        iter_range = self.estimate(node.args[0])
        if iter_range.type.elem is None:
            raise UnsupportedExpressionError(f"{node.op}() needs a list or a map")
        element = iter_range.type.elem if iter_range.type.kind == "list" else _MAP_KEY
        self._scopes.append({str(node.value): element})
        try:
            body = self.estimate(node.args[1])
        finally:
            self._scopes.pop()
        fixed, per_element = _macro_costs(node.op, body.cost)
        loop = _multiply(iter_range.size, per_element)
        cost = _add(iter_range.cost, fixed, loop)
        if node.op in ("map", "filter"):
            item = body.type if node.op == "map" else element
            listed = DeclType("list", iter_range.size, 2, elem=item)
            return _Estimate(cost, listed, iter_range.size)
        return _Estimate(cost, _BOOL, 1)


_ACCU: Final = 1
"""Reading the hidden accumulator variable."""


def _macro_costs(macro: str, body: int) -> tuple[int, int]:
    """(accumulator init + result, loop condition + step per element) of a macro's expansion
    (cel-go ``parser/macro.go``), ``body`` being the cost of the predicate or transform."""
    if macro == "all":  # init true; cond @not_strictly_false(accu); step accu && p; result accu
        return _ACCU, 2 + _ACCU + body
    if macro == "exists":  # init false; cond @not_strictly_false(!accu); step accu || p
        return _ACCU, 3 + _ACCU + body
    if macro == "exists_one":  # init 0; cond true; step p ? accu + 1 : accu; result accu == 1
        return 2, body + 2
    list_init = _LIST_CREATE_BASE_COST + _ACCU  # init []; cond true; result accu
    if macro == "map":  # step accu + [f]
        return list_init, 1 + _ACCU + _LIST_CREATE_BASE_COST + body
    # filter: step p ? accu + [x] : accu
    return list_init, body + 1 + _ACCU + _LIST_CREATE_BASE_COST + 1


def expression_cost(expression: str, self_type: DeclType) -> int:
    """The worst-case cost of one evaluation of ``expression`` with ``self`` of ``self_type``
    (cel-go's ``CostEstimate.Max``)."""
    return _Coster(self_type).estimate(parse(expression)).cost


# --- a whole schema -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExpressionCost:
    """One rule or messageExpression of a schema, and what the API server charges for it."""

    path: str
    """API server field path, e.g. ``...properties[spec].x-kubernetes-validations[0].rule``."""
    expression: str
    per_call: int
    """Worst-case cost of one evaluation."""
    cardinality: int
    """How often the rule's node can occur in one object (1 for messageExpressions)."""

    @property
    def total(self) -> int:
        """The cost compared with the per-expression limit and added to the schema's total."""
        return _multiply(self.per_call, self.cardinality)


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One ``Forbidden`` field error of the API server's answer (a ``Status`` cause)."""

    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: Forbidden: {self.detail}"


@dataclasses.dataclass(frozen=True)
class SchemaCost:
    """Every CEL expression of one schema with its estimated cost."""

    expressions: tuple[ExpressionCost, ...]

    @property
    def total(self) -> int:
        return _add(*(e.total for e in self.expressions))

    def errors(self) -> list[FieldError]:
        """The API server's refusals, in the order it reports them."""
        found = [
            FieldError(e.path, over_budget_message(_cost_name(e), e.total, _LIMIT))
            for e in self.expressions
            if e.total > _LIMIT
        ]
        if self.total > STATIC_ESTIMATED_CRD_COST_LIMIT:
            found += [FieldError(e.path, _CONTRIBUTED) for e in self._most_expensive()]
            detail = over_budget_message(_TOTAL_NAME, self.total, STATIC_ESTIMATED_CRD_COST_LIMIT)
            found.append(FieldError(_SCHEMA_PATH, detail))
        return found

    def _most_expensive(self) -> list[ExpressionCost]:
        ranked = sorted(self.expressions, key=lambda e: e.total, reverse=True)
        return [e for e in ranked[:4] if e.total >= STATIC_ESTIMATED_CRD_COST_LIMIT // 100]


_LIMIT: Final = STATIC_ESTIMATED_COST_LIMIT
_CONTRIBUTED: Final = (
    "contributed to estimated rule & messageExpression cost total exceeding cost limit for"
    " entire OpenAPIv3 schema"
)
_TOTAL_NAME: Final = (
    "x-kubernetes-validations estimated rule & messageExpression cost total for entire"
    " OpenAPIv3 schema"
)


def _cost_name(expression: ExpressionCost) -> str:
    if expression.path.endswith(".messageExpression"):
        return "estimated messageExpression cost"
    return "estimated rule cost"


def over_budget_message(cost_name: str, cost: int, limit: int) -> str:
    """``getCostErrorMessage`` of apiextensions-apiserver, word for word."""
    factor = cost / limit
    if factor > 100.0:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (
        f"{cost_name} exceeds budget by factor of {text} (try simplifying the rule, or adding"
        " maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )


def schema_cost(schema: Mapping[str, Any]) -> SchemaCost:
    """Every rule and messageExpression of a CRD version's ``openAPIV3Schema``, costed."""
    return SchemaCost(tuple(_walk(schema, _SCHEMA_PATH, cardinality=1)))


def _walk(
    schema: Mapping[str, Any], path: str, *, cardinality: int | None
) -> Iterator[ExpressionCost]:
    """``cardinality`` None: under an unbounded list or map (``MaxCardinality`` unbounded)."""
    self_type = decl_type(schema)
    for index, rule in enumerate(schema.get("x-kubernetes-validations", ())):
        at = f"{path}.x-kubernetes-validations[{index}]"
        times = cardinality
        if times is None:
            times = max_cardinality(self_type.min_serialized_size)
        yield ExpressionCost(
            f"{at}.rule", rule["rule"], expression_cost(rule["rule"], self_type), times
        )
        if "messageExpression" in rule:
            message = rule["messageExpression"]
            cost = expression_cost(message, self_type)
            yield ExpressionCost(f"{at}.messageExpression", message, cost, 1)
    for name, child in schema.get("properties", {}).items():
        yield from _walk(child, f"{path}.properties[{name}]", cardinality=cardinality)
    for key, bound_key in (("items", "maxItems"), ("additionalProperties", "maxProperties")):
        child = schema.get(key)
        if isinstance(child, Mapping):
            bound = schema.get(bound_key)
            inner = None if cardinality is None or bound is None else cardinality * int(bound)
            yield from _walk(child, f"{path}.{key}", cardinality=inner)


def crd_errors(crd: Mapping[str, Any]) -> list[FieldError]:
    """The API server's cost refusals for every version of a CRD; empty when it is accepted."""
    errors: list[FieldError] = []
    for version in crd.get("spec", {}).get("versions", ()):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema:
            errors += schema_cost(schema).errors()
    return errors


def invalid_message(crd: Mapping[str, Any], errors: Sequence[FieldError]) -> str:
    """The 422 message the API server answers: ``CustomResourceDefinition.apiextensions.k8s.io
    "<name>" is invalid: ...`` (several errors in brackets, as ``errors.NewInvalid`` does)."""
    name = crd.get("metadata", {}).get("name", "")
    return (
        f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {error_list(errors)}'
    )


def error_list(errors: Sequence[FieldError]) -> str:
    """Field errors as an aggregate error prints them: one alone, several in brackets."""
    texts = [str(error) for error in errors]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
