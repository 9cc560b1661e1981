"""Issue 13 deliverable 4: malformed topology labels and absurd ``nvidia-smi topo -m`` output get
a clear error (:class:`LabelError`, :class:`TopologyParseError`), never a crash or a hang.

Hypothesis keeps its 200 ms deadline here on purpose: an input that takes longer to reject is
a bug (a ``gpu-count`` of a billion used to build a billion-entry table; a 48-GPU all-NVLink
matrix used to take minutes to split into islands).
"""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufair.agent import smi
from gpufair.core import labels, topology, topology_matrix

DATA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "topology"

P = labels.LABEL_PREFIX
VALID = {labels.SCHEMA_LABEL: "v1", labels.GPU_COUNT_LABEL: "2"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({labels.GPU_COUNT_LABEL: "999999999"}, "more than 1024 GPUs on a node"),
        ({labels.GPU_COUNT_LABEL: "-1"}, "must be a non-negative integer"),
        ({labels.GPU_COUNT_LABEL: "1e3"}, "must be a non-negative integer"),
        ({labels.GPU_COUNT_LABEL: "٣"}, "must be a non-negative integer"),  # an Arabic 3
        ({labels.SCHEMA_LABEL: "v9"}, "unsupported schema"),
        ({P + "gpu-2.numa": "0"}, "GPU 2 but gpufair.dev/gpu-count is 2"),
        ({P + "gpu-01.numa": "0"}, "without leading zeros"),
        ({P + "gpu-0.numa": "99999999999"}, "must be a non-negative integer"),
        ({P + "gpu-0.färg": "1"}, None),  # not a per-GPU key of schema v1: ignored
        ({P + "gpu-0.colour": "1"}, "unknown GPU attribute 'colour'"),
    ],
)
def test_malformed_topology_labels_get_a_specific_error(
    changes: dict[str, str], message: str | None
) -> None:
    if message is None:
        assert labels.from_labels({**VALID, **changes}) is not None
        return
    with pytest.raises(labels.LabelError, match=message):
        labels.from_labels({**VALID, **changes})


label_keys = st.sampled_from(
    [labels.SCHEMA_LABEL, labels.GPU_COUNT_LABEL, P + "gpu-0.numa", P + "gpu-3.nvlink"]
) | st.builds(
    lambda index, attribute: f"{P}gpu-{index}.{attribute}",
    st.integers(min_value=-5, max_value=10**12).map(str) | st.text(max_size=4),
    st.sampled_from(["numa", "pcie", "nvlink", "x"]) | st.text(max_size=6),
)
label_values = (
    st.sampled_from(["v1", "0", "8", "1024", "1025", "007", "-0"])
    | st.integers(min_value=0, max_value=10**12).map(str)
    | st.text(max_size=12)
)


@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(label_keys, label_values, max_size=8))
def test_any_labels_give_a_topology_or_a_label_error(given_labels: dict[str, str]) -> None:
    try:
        found = labels.from_labels(given_labels)
    except labels.LabelError as exc:
        message = str(exc)
    else:
        message = "label (none)"
        assert found is None or len(found.gpus) <= topology.MAX_GPUS
    assert message.startswith("label ")


def matrix_text(cells: list[list[str]]) -> str:
    count = len(cells)
    header = "\t" + "\t".join(f"GPU{i}" for i in range(count)) + "\tCPU Affinity\tNUMA Affinity"
    rows = [f"GPU{i}\t" + "\t".join(row) + f"\t0-7\t{i % 2}" for i, row in enumerate(cells)]
    return "\n".join([header, *rows, "", "Legend:", ""])


def moon_moser(count: int) -> list[list[str]]:
    """All-NVLink except inside groups of three: the graph with the most maximal cliques."""
    return [
        ["X" if i == j else "SYS" if i // 3 == j // 3 else "NV1" for j in range(count)]
        for i in range(count)
    ]


def test_a_matrix_of_more_gpus_than_gpufair_links_is_refused_at_once() -> None:
    with pytest.raises(topology_matrix.TopologyParseError, match="at most 32"):
        smi.to_topology(matrix_text(moon_moser(48)))


def test_the_worst_matrix_gpufair_accepts_still_splits_into_islands() -> None:
    found = smi.to_topology(matrix_text(moon_moser(topology.MAX_LINKED_GPUS - 2)))
    assert len(found.gpus) == topology.MAX_LINKED_GPUS - 2


tokens = st.sampled_from(
    ["X", "NV1", "NV12", "NV99999", "PIX", "PXB", "PHB", "NODE", "SYS", "SOC", "N/A", "0-7",
     "0,2", "mlx5_0", "GPU0", "GPU1", "GPU2", "GPU01", "Legend:", "CPU", "Affinity", "NUMA",
     "\t", "  ", "-", "\x1b[1m"]
)  # fmt: skip
lines = st.lists(tokens | st.text(max_size=6), max_size=10).map(" ".join)
real_captures = sorted(DATA.glob("*.txt"))


@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(lines, max_size=12).map("\n".join)
    | st.tuples(
        st.sampled_from(real_captures),
        st.integers(min_value=0, max_value=4000),
        st.text(max_size=8),
    ).map(lambda spliced: _splice(*spliced))
)
def test_any_smi_output_gives_a_topology_or_a_parse_error(text: str) -> None:
    try:
        found = smi.to_topology(text)
    except topology_matrix.TopologyParseError as exc:
        message = str(exc)
    else:
        message = "line (none)"
        assert len(found.gpus) <= topology.MAX_LINKED_GPUS
    assert message.startswith("line ")


def _splice(capture: pathlib.Path, at: int, junk: str) -> str:
    """A real capture with a few characters of junk written over it somewhere."""
    text = capture.read_text()
    at %= max(len(text), 1)
    return text[:at] + junk + text[at + len(junk) :]
