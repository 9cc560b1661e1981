"""Issue 13 deliverable 4: a node with hostile labels or allocatable never breaks the cache.

Whatever a node says (topology labels that contradict themselves, a billion GPUs, a negative
or fractional allocatable, unicode), the watch feeds it in without an exception, the cache
records why it cannot use the node (log, metric), filter judges the node unusable with that
reason, and every other node keeps working.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import cluster, kube

from gpufair.core import labels
from gpufair.extender import verbs
from gpufair.state import cache

P = labels.LABEL_PREFIX

label_keys = st.sampled_from(
    [labels.SCHEMA_LABEL, labels.GPU_COUNT_LABEL, P + "gpu-0.numa", P + "gpu-1.nvlink"]
) | st.builds(
    lambda index, attribute: f"{P}gpu-{index}.{attribute}",
    st.integers(min_value=0, max_value=10**10),
    st.sampled_from(["numa", "pcie", "nvlink", "x"]),
)
label_values = st.sampled_from(["v1", "v2", "0", "1", "8", "999999999", "-1", "", "é"]) | st.text(
    max_size=8
)
allocatable = st.sampled_from(["8", "0", "-8", "0.5", "1e9", "1e30", "1Ei", "x", "9" * 80]) | (
    st.integers(min_value=-(2**70), max_value=2**70)
)


@settings(max_examples=1_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(label_keys, label_values, max_size=6), st.none() | allocatable)
def test_a_hostile_node_is_reported_and_judged_unusable_never_a_crash(
    hostile_labels: dict[str, str], gpus: Any
) -> None:
    state = cluster.cluster(nodes=[kube.node("good", kube.dgx1())])
    node = kube.node("bad", kube.dgx1())
    node["metadata"]["labels"] = {
        key: value for key, value in node["metadata"]["labels"].items() if not key.startswith(P)
    }
    node["metadata"]["labels"].update(hostile_labels)
    if gpus is not None:
        node["status"]["allocatable"]["nvidia.com/gpu"] = gpus
    state.upsert(cache.Kind.NODE, copy.deepcopy(node))

    snapshot = state.snapshot()
    pod = kube.pod("p", gpus=1)
    judge = verbs.Judge(snapshot, verbs.read_pod(pod), verbs.Placer())
    outcome = verbs.filter_nodes(judge, ["good", "bad"])
    assert "good" in outcome.passed
    problem = state.problems.get((cache.Kind.NODE, "bad"))
    if problem is not None:
        assert "bad" not in outcome.passed
        assert problem.startswith("node bad: ")
        assert outcome.unresolvable["bad"] == "node has invalid gpufair topology labels"
    assert len(snapshot.nodes["bad"].topology.gpus) <= 1024
