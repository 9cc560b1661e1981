"""The node agent as a real process against the stand-in API server.

``gpufair agent --once --from-file CAPTURE`` labels a Node with the topology of a real capture
and leaves every other label alone; a run with another capture removes the keys that no longer
apply; the long-running agent re-checks on SIGHUP and stops cleanly on SIGTERM. The labels read
back through the extender's reader (``labels.from_labels``) as the capture's topology.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e.harness import nodes, processes, waiting
from gpufair.core import labels

DGX1 = "dgx1-v100-8gpu-mlx5.txt"  # 8 GPUs, two NVLink islands, no NUMA column
H200 = "hgx-h200-8gpu-nv18-10nic.txt"  # 8 GPUs, one NVSwitch island, NUMA 0/1
DELLA = "della-2x-a100-pcie-2numa-2nic.txt"  # 2 GPUs, no NVLink, NUMA 0/1
FOREIGN = {
    "kubernetes.io/hostname": "placeholder",
    "nvidia.com/gpu.product": "NVIDIA-H200",
    "nvidia.com/gpu.count": "8",
    "team.example.com/owner": "ml-platform",
    "gpufair.dev/pool": "h200",  # under our prefix, but not a key the agent owns
}


@pytest.fixture
def bare_node(k8s: Any) -> Iterator[str]:
    """A Node with foreign labels only (no gpufair topology yet); deleted afterwards."""
    name = f"agent-{uuid.uuid4().hex[:8]}"
    k8s.core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {**FOREIGN, "kubernetes.io/hostname": name}},
        }
    )
    yield name
    k8s.core.delete_node(name)


def _labels(k8s: Any, name: str) -> dict[str, str]:
    return dict(k8s.core.read_node(name).metadata.labels or {})


def _agent_once(apiserver: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*processes.gpufair_command(), "agent", "--once", *args],
        env={**os.environ, **apiserver.env("agent")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _expected(name: str, capture: str) -> dict[str, str]:
    return {
        **FOREIGN,
        "kubernetes.io/hostname": name,
        **labels.to_labels(nodes.topology_of(capture)),
    }


def test_once_labels_the_node_and_a_second_capture_removes_stale_keys(
    apiserver: Any, k8s: Any, bare_node: str
) -> None:
    first = _agent_once(
        apiserver, "--from-file", str(nodes.capture_path(H200)), "--node-name", bare_node
    )
    assert first.returncode == 0, first.stderr

    after_first = _labels(k8s, bare_node)
    assert after_first == _expected(bare_node, H200)
    assert labels.from_labels(after_first) == nodes.topology_of(H200)

    second = _agent_once(
        apiserver, "--from-file", str(nodes.capture_path(DELLA)), "--node-name", bare_node
    )
    assert second.returncode == 0, second.stderr

    after_second = _labels(k8s, bare_node)
    assert after_second == _expected(bare_node, DELLA)
    assert "gpufair.dev/gpu-7.numa" not in after_second
    assert "gpufair.dev/gpu-0.nvlink" not in after_second
    assert after_second["gpufair.dev/gpu-count"] == "2"
    assert "removed" in second.stderr


def test_once_on_a_missing_node_fails_with_a_clear_message(apiserver: Any) -> None:
    result = _agent_once(
        apiserver, "--from-file", str(nodes.capture_path(DELLA)), "--node-name", "no-such-node"
    )
    assert result.returncode == 1
    assert "node 'no-such-node' does not exist" in result.stderr


def test_running_agent_rechecks_on_sighup_and_stops_on_sigterm(
    k8s: Any,
    bare_node: str,
    tmp_path: pathlib.Path,
    run_component: Callable[..., processes.Component],
) -> None:
    capture = tmp_path / "topo.txt"
    shutil.copyfile(nodes.capture_path(DGX1), capture)
    agent = run_component(
        ["agent", "--node-name", bare_node, "--from-file", str(capture), "--interval", "3600"],
        ready_log=r"8 GPUs \(from file\): set \d+ labels",
    )
    assert _labels(k8s, bare_node) == _expected(bare_node, DGX1)

    shutil.copyfile(nodes.capture_path(DELLA), capture)
    os.kill(agent.pid, signal.SIGHUP)

    waiting.wait_for(
        lambda: _labels(k8s, bare_node) == _expected(bare_node, DELLA),
        timeout=30,
        what="labels of the new capture after SIGHUP",
    )
    assert agent.stop() == 0
    assert "SIGTERM: stopping" in agent.logs()
