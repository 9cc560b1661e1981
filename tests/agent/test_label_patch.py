"""The label patch sets the agent's keys, deletes its stale keys and leaves every other label."""

from __future__ import annotations

import pytest

from gpufair.agent import label_patch

SCHEMA = "gpufair.dev/topology-schema"
COUNT = "gpufair.dev/gpu-count"
GFD_PRODUCT = "nvidia.com/gpu.product"
HOSTNAME = "kubernetes.io/hostname"


@pytest.mark.parametrize(
    ("current", "desired", "patch"),
    [
        pytest.param(
            {HOSTNAME: "n1"},
            {SCHEMA: "v1", COUNT: "2", "gpufair.dev/gpu-0.numa": "0"},
            {SCHEMA: "v1", COUNT: "2", "gpufair.dev/gpu-0.numa": "0"},
            id="first-publish-sets-everything",
        ),
        pytest.param(
            {HOSTNAME: "n1", SCHEMA: "v1", COUNT: "2"},
            {SCHEMA: "v1", COUNT: "2"},
            {},
            id="up-to-date-is-empty",
        ),
        pytest.param(
            {SCHEMA: "v1", COUNT: "8", "gpufair.dev/gpu-7.nvlink": "1"},
            {SCHEMA: "v1", COUNT: "4"},
            {COUNT: "4", "gpufair.dev/gpu-7.nvlink": None},
            id="changed-value-and-stale-key",
        ),
        pytest.param(
            {GFD_PRODUCT: "NVIDIA-H100", "gpufair.dev/gpus": "0,1", "team": "a"},
            {SCHEMA: "v1", COUNT: "1"},
            {SCHEMA: "v1", COUNT: "1"},
            id="foreign-keys-even-under-our-prefix-are-left",
        ),
        pytest.param(
            {"gpufair.dev/gpu-3.pcie": "0", "gpufair.dev/gpu-3.futurething": "x"},
            {SCHEMA: "v1", COUNT: "4"},
            {
                SCHEMA: "v1",
                COUNT: "4",
                "gpufair.dev/gpu-3.pcie": None,
                "gpufair.dev/gpu-3.futurething": None,
            },
            id="every-owned-per-gpu-key-is-ours-to-clean",
        ),
        pytest.param(
            {SCHEMA: "v1", COUNT: "2", "gpufair.dev/gpu-1.numa": "1"},
            {},
            {SCHEMA: None, COUNT: None, "gpufair.dev/gpu-1.numa": None},
            id="nothing-desired-removes-all-of-ours",
        ),
    ],
)
def test_compute(
    current: dict[str, str], desired: dict[str, str], patch: dict[str, str | None]
) -> None:
    before = (dict(current), dict(desired))
    assert label_patch.compute(current=current, desired=desired) == patch
    assert (current, desired) == before


def test_refuses_to_set_a_label_it_does_not_own() -> None:
    with pytest.raises(ValueError, match=r"nvidia\.com/gpu\.product"):
        label_patch.compute(current={}, desired={SCHEMA: "v1", GFD_PRODUCT: "x"})


def test_body_is_a_node_metadata_labels_patch() -> None:
    assert label_patch.body({COUNT: "2", SCHEMA: None}) == {
        "metadata": {"labels": {COUNT: "2", SCHEMA: None}}
    }
