"""The CRDs stay installable: every list, map and string bounded, every CEL rule cheap.

A real kube-apiserver estimates each ``x-kubernetes-validations`` rule's worst-case cost when a
CRD is created and refuses the CRD when a rule, a ``messageExpression`` or their total is over
its limits (``gpufair.api.celcost`` follows its estimator). These tests keep the generated CRDs
under a tenth of every limit, and show that the estimator refuses the rules that once made
``kubectl apply -f crds/`` fail on a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import hypothesis
import pydantic
import pytest
from hypothesis import strategies as st

from gpufair.api import celcost, common, crdgen

CRDS = {crd["spec"]["names"]["kind"]: crd for crd in crdgen.definitions()}
MARGIN = 10
"""Stay under a tenth of each limit: room for new rules and for estimator changes upstream."""

OLD_POOL_RULES = [
    {
        "rule": "!has(self.limit) || self.guaranteed <= self.limit",
        "message": "guaranteed must be <= limit",
        "messageExpression": "'must be <= limit (' + string(self.limit) + ')'",
        "fieldPath": ".guaranteed",
    },
    {
        "rule": "!has(self.lendable) || self.lendable <= self.guaranteed",
        "message": "lendable must be <= guaranteed",
        "messageExpression": "'must be <= guaranteed (' + string(self.guaranteed) + ')'",
        "fieldPath": ".lendable",
    },
]
"""The rules of ``spec.pools.items`` that kube-apiserver v1.36.2 refused (issue 11)."""
UNIQUE_NAMES_RULE = {
    "rule": "self.pools.all(p, self.pools.exists_one(q, q.name == p.name))",
    "message": "pool names must be unique",
}
STATIC_POOL_RULES = [
    {k: v for k, v in r.items() if k != "messageExpression"} for r in OLD_POOL_RULES
]


# --- builders ---------------------------------------------------------------------------------


def string(max_length: int | None = None) -> dict[str, Any]:
    return {"type": "string"} | ({} if max_length is None else {"maxLength": max_length})


def listing(items: dict[str, Any], max_items: int | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "array", "items": items}
    return node | ({} if max_items is None else {"maxItems": max_items})


def pool_entry(rules: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": string(253),
            "guaranteed": {"type": "integer"},
            "limit": {"type": "integer"},
            "lendable": {"type": "integer"},
        },
        "x-kubernetes-validations": rules,
    }


def quota_schema(
    pool_rules: list[dict[str, str]],
    *,
    max_pools: int | None,
    spec_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "object",
        "properties": {"pools": listing(pool_entry(pool_rules), max_pools)},
    }
    if spec_rules:
        spec["x-kubernetes-validations"] = spec_rules
    return {"type": "object", "properties": {"spec": spec}}


def crd_with(schema: dict[str, Any], name: str = "tenantquotas.example.dev") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]},
    }


def schema_of(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from nodes(schema[key], f"{path}[]")


def unbounded(schema: dict[str, Any]) -> list[str]:
    """Paths of lists, maps and strings without a bound."""
    found = []
    for path, node in nodes(schema):
        kind = node.get("type")
        if kind == "string" and "maxLength" not in node:
            found.append(f"{path}: string without maxLength")
        if kind == "array" and "maxItems" not in node:
            found.append(f"{path}: array without maxItems")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            found.append(f"{path}: map without maxProperties")
    return found


# --- the generated CRDs -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_list_map_and_string_is_bounded(kind: str) -> None:
    assert unbounded(schema_of(kind)) == []


def test_the_bound_check_finds_what_it_looks_for() -> None:
    schema = {
        "type": "object",
        "properties": {
            "names": listing(string(63)),
            "labels": {"type": "object", "additionalProperties": string(63)},
            "note": string(),
        },
    }
    assert unbounded(schema) == [
        ".names: array without maxItems",
        ".labels: map without maxProperties",
        ".note: string without maxLength",
    ]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_rule_costs_under_a_tenth_of_the_limits(kind: str) -> None:
    cost = celcost.schema_cost(schema_of(kind))
    assert cost.expressions, "the CRD has CEL rules; the walk must find them"
    for expression in cost.expressions:
        assert expression.per_call <= celcost.PER_CALL_LIMIT // MARGIN, expression
        assert expression.total <= celcost.STATIC_ESTIMATED_COST_LIMIT // MARGIN, expression
    assert cost.total <= celcost.STATIC_ESTIMATED_CRD_COST_LIMIT // MARGIN
    assert cost.total <= celcost.RUNTIME_CEL_COST_BUDGET // MARGIN


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_api_server_would_accept_the_crd(kind: str) -> None:
    assert celcost.crd_errors(CRDS[kind]) == []


def test_every_rule_of_the_models_is_costed() -> None:
    rules = [
        rule["rule"]
        for kind in CRDS
        for _, node in nodes(schema_of(kind))
        for rule in node.get("x-kubernetes-validations", ())
    ]
    costed = [
        e.expression
        for kind in CRDS
        for e in celcost.schema_cost(schema_of(kind)).expressions
        if e.path.endswith(".rule")
    ]
    assert sorted(costed) == sorted(rules)


# --- the estimator refuses what the API server refused ------------------------------------------

MESSAGE_OVER = (
    "Forbidden: estimated messageExpression cost exceeds budget by factor of more than 100x"
    " (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays,"
    " maps, and strings are declared)"
)
RULE_OVER = MESSAGE_OVER.replace("messageExpression cost", "rule cost")
TOTAL_OVER = (
    "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule &"
    " messageExpression cost total for entire OpenAPIv3 schema exceeds budget by factor of"
    " more than 100x"
)
POOL_RULES_AT = "spec.validation.openAPIV3Schema.properties[spec].properties[pools].items"


@pytest.mark.parametrize(
    ("schema", "refused"),
    [
        pytest.param(
            quota_schema(OLD_POOL_RULES, max_pools=None),
            [
                f"{POOL_RULES_AT}.x-kubernetes-validations[0].messageExpression: {MESSAGE_OVER}",
                f"{POOL_RULES_AT}.x-kubernetes-validations[1].messageExpression: {MESSAGE_OVER}",
            ],
            id="issue-11-string-of-int-unbounded-pools",
        ),
        pytest.param(
            quota_schema(OLD_POOL_RULES, max_pools=64),
            [
                f"{POOL_RULES_AT}.x-kubernetes-validations[0].messageExpression: {MESSAGE_OVER}",
                f"{POOL_RULES_AT}.x-kubernetes-validations[1].messageExpression: {MESSAGE_OVER}",
            ],
            id="string-of-int-is-unbounded-even-with-maxItems",
        ),
        pytest.param(
            quota_schema(STATIC_POOL_RULES, max_pools=None, spec_rules=[UNIQUE_NAMES_RULE]),
            [
                "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"
                f".rule: {RULE_OVER}"
            ],
            id="quadratic-rule-over-unbounded-list",
        ),
    ],
)
def test_the_estimator_refuses_expensive_rules(schema: dict[str, Any], refused: list[str]) -> None:
    errors = [str(e) for e in celcost.crd_errors(crd_with(schema))]
    assert [e for e in errors if e in refused] == refused
    assert any(e.startswith(TOTAL_OVER) for e in errors), errors


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param(quota_schema(STATIC_POOL_RULES, max_pools=64), id="static-messages"),
        pytest.param(
            quota_schema(STATIC_POOL_RULES, max_pools=64, spec_rules=[UNIQUE_NAMES_RULE]),
            id="quadratic-rule-over-64-pools",
        ),
        pytest.param(quota_schema(STATIC_POOL_RULES, max_pools=None), id="cheap-rules-unbounded"),
    ],
)
def test_the_estimator_accepts_bounded_rules(schema: dict[str, Any]) -> None:
    assert celcost.crd_errors(crd_with(schema)) == []


def test_refusal_is_worded_as_the_api_server_answers() -> None:
    crd = crd_with(quota_schema(OLD_POOL_RULES, max_pools=None))
    message = celcost.invalid_message(crd, celcost.crd_errors(crd))
    assert message.startswith(
        'CustomResourceDefinition.apiextensions.k8s.io "tenantquotas.example.dev" is invalid: ['
        f"{POOL_RULES_AT}.x-kubernetes-validations[0].messageExpression: {MESSAGE_OVER}, "
    )
    assert message.endswith("where arrays, maps, and strings are declared)]")


@pytest.mark.parametrize(
    ("cost", "limit", "factor"),
    [
        pytest.param(12_000_000, 10_000_000, "1.200000x", id="just-over"),
        pytest.param(25_000_000, 10_000_000, "2.5x", id="a-few-times"),
        pytest.param(2_000_000_000, 10_000_000, "more than 100x", id="far-over"),
    ],
)
def test_over_budget_factor_is_formatted_like_get_cost_error_message(
    cost: int, limit: int, factor: str
) -> None:
    message = celcost.over_budget_message("estimated rule cost", cost, limit)
    assert message.startswith(f"estimated rule cost exceeds budget by factor of {factor} (")


# --- the cost model, figure by figure (cel-go checker/cost.go) -----------------------------------

SELF = celcost.decl_type(
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "s": string(10),
            "names": listing(string(5), 10),
            "labels": {"type": "object", "additionalProperties": string(63), "maxProperties": 4},
        },
    }
)


@pytest.mark.parametrize(
    ("expression", "cost"),
    [
        pytest.param("1", 0, id="literal-is-free"),
        pytest.param("self.n", 2, id="ident-and-select"),
        pytest.param("has(self.n)", 2, id="presence-test"),
        pytest.param("self.n <= 3", 3, id="int-comparison"),
        pytest.param("!has(self.n) || self.n > 0", 6, id="or-adds-no-cost-of-its-own"),
        # 'ab' (2 bytes) + s (4 * 10 bytes) = 42 bytes, at 0.1 per byte: 5, plus 2 for self.s
        pytest.param("'ab' + self.s", 7, id="concatenation-per-byte"),
        # equality costs the smaller side: 'x' is 1 byte -> 1
        pytest.param("self.s == 'x'", 3, id="string-equality"),
        pytest.param("self.n in [1, 2, 3]", 15, id="in-list-literal"),
        pytest.param("size(self.names) > 0", 4, id="size"),
        # range 2 + init/result 1 + 10 x (cond 2 + accu 1 + (x 1 + 'a' 0 + compare 1))
        pytest.param("self.names.all(x, x == 'a')", 53, id="all-over-10-names"),
        # range 2 + init/result 1 + 4 keys x (cond 2 + accu 1 + (k 1 + startsWith 'a' 1))
        pytest.param("self.labels.all(k, k.startsWith('a'))", 23, id="all-over-map-keys"),
        # self.labels 2 + index 1 + compare with 'b' (1 byte) 1
        pytest.param("self.labels['a'] == 'b'", 4, id="map-index"),
        pytest.param("string(self.n)", 3, id="conversion"),
        pytest.param("'n=' + string(self.n)", celcost.UINT64_MAX, id="string-of-int-unbounded"),
    ],
)
def test_expression_costs(expression: str, cost: int) -> None:
    assert celcost.expression_cost(expression, SELF) == cost


@pytest.mark.parametrize(
    ("schema", "max_elements"),
    [
        pytest.param(string(63), 252, id="maxLength-in-bytes"),
        pytest.param({"type": "string", "enum": ["Pack", "Spread"]}, 6, id="longest-enum"),
        pytest.param(string(), celcost.MAX_REQUEST_SIZE_BYTES - 2, id="unbounded-string"),
        pytest.param(listing(string(1), 7), 7, id="maxItems"),
        pytest.param(listing(string(1)), (celcost.MAX_REQUEST_SIZE_BYTES - 2) // 3, id="unbounded"),
    ],
)
def test_sizes_follow_the_schema_bounds(schema: dict[str, Any], max_elements: int) -> None:
    assert celcost.decl_type(schema).max_elements == max_elements


@pytest.mark.parametrize(
    "expression",
    ["self.n.foo(1)", "self.missing", "matches(self.s)", "self.n +", "self.names.sort()"],
)
def test_unknown_cel_is_refused_not_guessed(expression: str) -> None:
    with pytest.raises(celcost.UnsupportedExpressionError):
        celcost.expression_cost(expression, SELF)


@hypothesis.given(
    smaller=st.integers(min_value=0, max_value=10_000),
    extra=st.integers(min_value=0, max_value=10_000),
    max_length=st.integers(min_value=1, max_value=1_000),
)
def test_more_items_never_cost_less(smaller: int, extra: int, max_length: int) -> None:
    def cost(max_items: int) -> int:
        self_type = celcost.decl_type(
            {"type": "object", "properties": {"l": listing(string(max_length), max_items)}}
        )
        return celcost.expression_cost("self.l.exists(x, x.startsWith('a'))", self_type)

    assert cost(smaller) <= cost(smaller + extra)


# --- the generator refuses what the API server would refuse ------------------------------------


class _UnboundedList(common.SpecModel):
    names: list[common.DnsLabel]


class _Expensive(common.SpecModel):
    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.CelRule(
                rule="self.n >= 0",
                message="must be >= 0",
                message_expression="'must be >= 0, not ' + string(self.n)",
            )
        )
    )

    n: int


def test_generator_refuses_an_unbounded_list() -> None:
    with pytest.raises(crdgen.UnboundedSchemaError, match=r"names: list without max_length"):
        crdgen.object_schema(_UnboundedList)


class _ExpensiveKind(common.Resource):
    KIND: ClassVar[str] = "Expensive"
    PLURAL: ClassVar[str] = "expensives"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()

    kind: str = "Expensive"
    spec: _Expensive
    status: _Expensive | None = None


def test_generator_refuses_an_over_budget_crd() -> None:
    with pytest.raises(crdgen.OverBudgetError) as refused:
        crdgen.definition(_ExpensiveKind, ())
    assert str(refused.value).startswith(
        'CustomResourceDefinition.apiextensions.k8s.io "expensives.gpufair.dev" is invalid: ['
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"
        f".messageExpression: {MESSAGE_OVER}"
    )
