"""Reading GPU facts from nodes, and LabelSelector matching."""

from __future__ import annotations

import pytest
from tests.builders import kube

from gpufair.k8s import nodes, selectors


def test_topology_comes_from_the_agent_labels() -> None:
    node = kube.node("n1", kube.dgx1())
    assert nodes.gpu_topology(node) == kube.dgx1()
    assert nodes.allocatable_gpus(node) == 8


def test_node_without_labels_has_no_topology() -> None:
    assert nodes.gpu_topology(kube.node("n1")) is None
    assert nodes.flat_topology(4).indices == (0, 1, 2, 3)


def test_invalid_labels_name_the_node() -> None:
    node = kube.node("n7", kube.dgx1(), extra_labels={"gpufair.dev/gpu-9.numa": "0"})
    with pytest.raises(nodes.NodeError, match="node n7: invalid topology labels"):
        nodes.gpu_topology(node)


@pytest.mark.parametrize(
    ("node", "schedulable"),
    [
        pytest.param(kube.node("n1"), True, id="ready"),
        pytest.param(kube.node("n1", unschedulable=True), False, id="cordoned"),
        pytest.param(kube.node("n1", ready=False), False, id="not-ready"),
    ],
)
def test_schedulable(node: dict[str, object], schedulable: bool) -> None:
    assert nodes.is_schedulable(node) is schedulable


def test_allocatable_of_another_resource_is_zero() -> None:
    assert nodes.allocatable_gpus(kube.node("n1"), "amd.com/gpu") == 0


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param({}, {"a": "1"}, True, id="empty-matches-all"),
        pytest.param(None, {"a": "1"}, False, id="null-matches-nothing"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "1"}, True, id="labels"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "2"}, False, id="labels-differ"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {},
            True,
            id="notin-absent",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True, id="exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
            {"a": "1"},
            False,
            id="does-not-exist",
        ),
    ],
)
def test_selectors(
    selector: dict[str, object] | None, labels: dict[str, str], matches: bool
) -> None:
    assert selectors.matches(selector, labels) is matches


def test_unknown_operator_is_an_error() -> None:
    with pytest.raises(selectors.SelectorError, match="Near"):
        selectors.matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {})
