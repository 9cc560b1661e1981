"""Namespace ownership in the pass: a listing beats a selector, then the alphabetically first;
every claimant of a contested namespace is told, and a tenant never conflicts with itself."""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import operator as b

from gpufair.state import model, scheduling

TEAM_A = {"matchLabels": {"team": "a"}}


def selecting(name: str, *, lists: tuple[str, ...] = ()) -> model.Tenant:
    tenant = b.tenant(name).namespaces(*lists).build()
    return dataclasses.replace(tenant, namespace_selector=TEAM_A)


@pytest.mark.parametrize(
    ("tenants", "owner", "conflicted"),
    [
        pytest.param([b.tenant("x").namespaces("ns").build()], "x", set(), id="listed"),
        pytest.param([selecting("x")], "x", set(), id="selected"),
        pytest.param(
            [selecting("x", lists=("ns",))], "x", set(), id="listed-and-selected-by-one-tenant"
        ),
        pytest.param(
            [b.tenant("y").namespaces("ns").build(), selecting("x")],
            "y",
            {"x", "y"},
            id="listing-beats-selector",
        ),
        pytest.param(
            [b.tenant("y").namespaces("ns").build(), b.tenant("x").namespaces("ns").build()],
            "x",
            {"x", "y"},
            id="two-listings-first-name",
        ),
    ],
)
def test_owner_and_conflicts_of_a_namespace(
    tenants: list[model.Tenant], owner: str, conflicted: set[str]
) -> None:
    snap = b.snap(now=0.0, nodes=(), tenants=tenants, namespaces={"ns": {"team": "a"}})
    owners, conflicts = scheduling.namespace_owners(snap)
    assert owners["ns"] == owner
    assert set(conflicts) == conflicted
