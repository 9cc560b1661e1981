"""Node labels: the published topology format, validated on read, round-trips exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from tests.builders.topology import dgx1, node, topologies

from gpufair.core import labels, topology

V1 = {labels.SCHEMA_LABEL: "v1"}


def test_labels_of_a_node() -> None:
    node_ = node(3, islands=[[0, 1]], pcie=[[1, 2]], numa=[0, 0, None])
    assert labels.to_labels(node_) == {
        "gpufair.dev/topology-schema": "v1",
        "gpufair.dev/gpu-count": "3",
        "gpufair.dev/gpu-0.numa": "0",
        "gpufair.dev/gpu-0.nvlink": "0",
        "gpufair.dev/gpu-1.numa": "0",
        "gpufair.dev/gpu-1.pcie": "0",
        "gpufair.dev/gpu-1.nvlink": "0",
        "gpufair.dev/gpu-2.pcie": "0",
    }


def test_gpu_without_attributes_still_exists() -> None:
    read = labels.from_labels({**V1, labels.GPU_COUNT_LABEL: "2"})
    assert read == topology.NodeTopology(gpus=(topology.GPU(index=0), topology.GPU(index=1)))


@pytest.mark.parametrize(
    "found",
    [
        pytest.param({}, id="no-labels"),
        pytest.param(
            {"nvidia.com/gpu.count": "8", "gpufair.dev/pool": "h100"}, id="other-labels-only"
        ),
    ],
)
def test_node_without_topology_labels_has_none(found: dict[str, str]) -> None:
    assert labels.from_labels(found) is None


@pytest.mark.parametrize(
    ("found", "key", "words"),
    [
        pytest.param({labels.GPU_COUNT_LABEL: "2"}, labels.SCHEMA_LABEL, "missing", id="no-schema"),
        pytest.param(
            {labels.SCHEMA_LABEL: "v2", labels.GPU_COUNT_LABEL: "2"},
            labels.SCHEMA_LABEL,
            "unsupported",
            id="newer-schema",
        ),
        pytest.param(V1, labels.GPU_COUNT_LABEL, "missing", id="no-count"),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "eight"},
            labels.GPU_COUNT_LABEL,
            "integer",
            id="count-not-a-number",
        ),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "2", "gpufair.dev/gpu-2.numa": "0"},
            "gpufair.dev/gpu-2.numa",
            "gpu-count is 2",
            id="gpu-beyond-count",
        ),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "2", "gpufair.dev/gpu-1.numa": "-1"},
            "gpufair.dev/gpu-1.numa",
            "non-negative integer",
            id="negative-id",
        ),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "2", "gpufair.dev/gpu-1.nvlink": "01"},
            "gpufair.dev/gpu-1.nvlink",
            "leading zeros",
            id="leading-zero-value",
        ),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "2", "gpufair.dev/gpu-01.pcie": "0"},
            "gpufair.dev/gpu-01.pcie",
            "leading zeros",
            id="leading-zero-index",
        ),
        pytest.param(
            {**V1, labels.GPU_COUNT_LABEL: "2", "gpufair.dev/gpu-1.nvswitch": "0"},
            "gpufair.dev/gpu-1.nvswitch",
            "unknown GPU attribute",
            id="unknown-attribute",
        ),
    ],
)
def test_malformed_labels_name_the_key(found: dict[str, str], key: str, words: str) -> None:
    with pytest.raises(labels.LabelError) as error:
        labels.from_labels(found)
    assert error.value.key == key
    assert words in error.value.reason
    assert key in str(error.value)
    if error.value.value is not None:
        assert f"{key}={error.value.value}" in str(error.value)


@pytest.mark.parametrize(
    ("key", "owned"),
    [
        pytest.param("gpufair.dev/topology-schema", True, id="schema"),
        pytest.param("gpufair.dev/gpu-count", True, id="count"),
        pytest.param("gpufair.dev/gpu-12.numa", True, id="gpu-attribute"),
        pytest.param("gpufair.dev/gpu-3.retired-attribute", True, id="stale-attribute"),
        pytest.param("gpufair.dev/pool", False, id="other-gpufair-label"),
        pytest.param("gpufair.dev/gpus", False, id="pod-annotation-key"),
        pytest.param("nvidia.com/gpu.count", False, id="gfd-label"),
        pytest.param("example.com/gpufair.dev/gpu-0.numa", False, id="other-prefix"),
    ],
)
def test_the_agent_owns_only_topology_keys(key: str, owned: bool) -> None:
    assert labels.is_owned_key(key) is owned


def test_every_written_key_is_owned() -> None:
    assert all(labels.is_owned_key(key) for key in labels.to_labels(dgx1()))


def test_non_contiguous_indices_cannot_be_labelled() -> None:
    with pytest.raises(ValueError, match=r"0\.\.n-1"):
        labels.to_labels(topology.NodeTopology(gpus=(topology.GPU(index=1),)))


@given(topologies())
def test_labels_round_trip(node_: topology.NodeTopology) -> None:
    written = labels.to_labels(node_)
    assert labels.from_labels(written) == node_
    assert labels.from_labels({**written, "kubernetes.io/hostname": "n1"}) == node_


@given(topologies())
def test_labels_are_valid_kubernetes_labels(node_: topology.NodeTopology) -> None:
    for key, value in labels.to_labels(node_).items():
        prefix, name = key.split("/")
        assert prefix == "gpufair.dev"
        assert 0 < len(name) <= 63
        assert name[0].isalnum()
        assert name[-1].isalnum()
        assert len(value) <= 63
        assert value.isalnum()
