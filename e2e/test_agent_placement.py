"""The node agent's labels are what the extender places by (issue 5's "Done when").

A GPU node joins the stand-in cluster with NVIDIA's labels but no gpufair topology; the real
``gpufair agent --once`` publishes the topology of a DGX-1 capture (two NVLink islands of four);
the real ``gpufair extender``, driven as kube-scheduler drives it, then gives a 4-GPU pod the
four GPUs of one island *as the agent labelled them* (without labels it would treat the eight
GPUs as interchangeable).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness import nodes, processes, scenario
from gpufair.core import labels

DGX1 = "dgx1-v100-8gpu-mlx5.txt"


STACK_OPTIONS = {"operator": False}
"""This module needs no operator (see the ``stack`` fixture in ``e2e/conftest.py``)."""


@pytest.fixture
def unlabelled_node(k8s: Any, pool_label: str) -> Iterator[str]:
    """An 8-GPU node with NVIDIA's labels and no gpufair topology labels; deleted afterwards."""
    name = scenario.unique("agent-node")
    body = nodes.gpu_node(name, DGX1, labels={scenario.POOL_LABEL: pool_label})
    body["metadata"]["labels"] = {
        key: value
        for key, value in body["metadata"]["labels"].items()
        if not labels.is_owned_key(key)
    }
    k8s.core.create_node(body)
    yield name
    k8s.core.delete_node(name)


@pytest.fixture
def pool_label() -> str:
    return scenario.unique("agent-pool")


def _run_agent(apiserver: Any, node: str) -> None:
    result = subprocess.run(
        [
            *processes.gpufair_command(),
            "agent",
            "--once",
            "--from-file",
            str(nodes.capture_path(DGX1)),
            "--node-name",
            node,
        ],
        env={**os.environ, **apiserver.env("agent")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_extender_places_a_four_gpu_pod_on_an_island_the_agent_published(
    stack: scenario.Stack,
    apiserver: Any,
    k8s: Any,
    kubectl: Any,
    namespace: str,
    unlabelled_node: str,
    pool_label: str,
) -> None:
    tenant = scenario.unique("tenant")
    with scenario.Cleanup(kubectl, k8s) as cleanup:
        cleanup.apply(scenario.pool_manifest(pool_label))
        cleanup.apply(
            scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool_label}])
        )
        _run_agent(apiserver, unlabelled_node)
        node = k8s.api_client.sanitize_for_serialization(k8s.core.read_node(unlabelled_node))
        islands = scenario.islands(node)
        assert sorted(len(gpus) for gpus in islands.values()) == [4, 4], islands

        with stack.driver([namespace]) as driver:
            k8s.core.create_namespaced_pod(namespace, scenario.gpu_pod("quad", 4))

            def bound() -> dict[str, Any] | None:
                pod = scenario.read_pod(k8s, namespace, "quad")
                placed = pod["spec"].get("nodeName") and scenario.gpu_indices(pod)
                return pod if placed else None

            quad = scenario.settle(bound, timeout=60, what="quad bound", driver=driver)

        assert quad["spec"]["nodeName"] == unlabelled_node
        assert scenario.gpu_indices(quad) in set(islands.values()), (
            f"GPUs {sorted(scenario.gpu_indices(quad))} are not one island of {islands}"
        )
