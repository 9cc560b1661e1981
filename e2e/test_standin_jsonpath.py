"""The stand-in's JSONPath subset (printer columns): what each form selects, what it refuses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gpufair.standin.apiserver import jsonpath

QUOTA: dict[str, Any] = {
    "metadata": {"name": "a", "labels": {"gpufair.dev/team": "x"}},
    "spec": {"weight": 2, "namespaces": ["team-a", "team-b"]},
    "status": {
        "allocated": 0,
        "pools": [{"pool": "h100", "allocated": 4}, {"pool": "a100", "allocated": 2}],
        "conditions": [
            {"type": "Overcommitted", "status": "False", "observedGeneration": 1},
            {"type": "Ready", "status": "True", "observedGeneration": 2},
            {"type": "Healthy", "status": True},
        ],
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param(".spec.weight", [2], id="field"),
        pytest.param("$.spec.weight", [2], id="root"),
        pytest.param("{.spec.weight}", [2], id="braces"),
        pytest.param(".status.allocated", [0], id="falsy-value"),
        pytest.param(".spec.missing", [], id="missing-key"),
        pytest.param(".spec.weight.deeper", [], id="field-of-a-number"),
        pytest.param(".metadata.labels.gpufair\\.dev/team", ["x"], id="escaped-dot"),
        pytest.param(".metadata.labels['gpufair.dev/team']", ["x"], id="quoted-key"),
        pytest.param(".spec.namespaces[1]", ["team-b"], id="index"),
        pytest.param(".spec.namespaces[-1]", ["team-b"], id="negative-index"),
        pytest.param(".spec.namespaces[2]", [], id="index-out-of-range"),
        pytest.param(".spec.namespaces[*]", ["team-a", "team-b"], id="wildcard-list"),
        pytest.param(".spec.weight[*]", [], id="wildcard-of-a-number"),
        pytest.param(".status.pools[*].pool", ["h100", "a100"], id="wildcard-then-field"),
        pytest.param(".metadata.labels.*", ["x"], id="wildcard-map"),
        pytest.param('.status.conditions[?(@.type=="Ready")].status', ["True"], id="filter-eq"),
        pytest.param(".status.conditions[?(@.type=='Ready')].status", ["True"], id="single-quote"),
        pytest.param(
            '.status.conditions[?( @.type == "Ready" )].status', ["True"], id="filter-spaces"
        ),
        pytest.param('.status.conditions[?(@.type=="Gone")].status', [], id="filter-no-match"),
        pytest.param(
            '.status.conditions[?(@.type!="Ready")].type',
            ["Overcommitted", "Healthy"],
            id="filter-ne",
        ),
        pytest.param(
            ".status.conditions[?(@.observedGeneration>1)].type", ["Ready"], id="filter-number"
        ),
        pytest.param(
            ".status.conditions[?(@.observedGeneration)].type",
            ["Overcommitted", "Ready"],
            id="filter-exists",
        ),
        pytest.param(".status.conditions[?(@.status==true)].type", ["Healthy"], id="filter-bool"),
        pytest.param(
            '.status.conditions[?(@.status=="True")].type', ["Ready"], id="string-is-not-bool"
        ),
        pytest.param(
            '.status.pools[?(@.pool=="a)]")].allocated', [], id="bracket-inside-the-literal"
        ),
        pytest.param('.spec[?(@.type=="Ready")]', [], id="filter-of-a-map"),
        pytest.param(
            ".status.conditions[?(@.type>1)].type", [], id="string-against-number-kept-out"
        ),
    ],
)
def test_find(expression: str, expected: list[Any]) -> None:
    assert jsonpath.find(QUOTA, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param(".status.pools[*].allocated", 4, id="first-of-several"),
        pytest.param(".status.nothing", None, id="nothing"),
    ],
)
def test_first_is_what_a_printer_column_shows(expression: str, expected: Any) -> None:
    assert jsonpath.first(QUOTA, expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param("..name", "recursive descent", id="recursive-descent"),
        pytest.param(".spec.namespaces[0:1]", "unsupported subscript", id="slice"),
        pytest.param(".spec.namespaces[0,1]", "unsupported subscript", id="union"),
        pytest.param(".spec.namespaces[0", "not closed", id="unclosed-bracket"),
        pytest.param('.status.conditions[?(@.type=="Ready"]', "not closed", id="unclosed-filter"),
        pytest.param(".status.conditions[?(type==1)]", "a filter must be", id="filter-no-at"),
        pytest.param(".status.conditions[?(@.type==Ready)]", "quoted string", id="bare-word"),
        pytest.param("spec.weight", "expected '.' or '['", id="no-leading-dot"),
        pytest.param(".spec.", "field name is missing", id="trailing-dot"),
    ],
)
def test_what_is_not_supported_is_refused(expression: str, message: str) -> None:
    with pytest.raises(jsonpath.JSONPathError, match=re.escape(message)):
        jsonpath.find(QUOTA, expression)
