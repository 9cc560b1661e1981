"""The device-plugin proxy over real gRPC on unix sockets, between kubelet and NVIDIA's plugin.

kubelet is :mod:`gpufair.standin.devicemanager` (its device manager's documented behaviour);
NVIDIA's plugin is :mod:`gpufair.standin.nvidia_plugin` on the fake NVML of a real DGX-1 capture,
which prefers the lowest indices, so every test can tell whose preference kubelet followed.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufair.agent import allocations, deviceplugin
from gpufair.core import allocation, topology_matrix
from gpufair.standin import devicemanager, fake_nvml, nvidia_plugin

RESOURCE = "nvidia.com/gpu"
CAPTURE = "topology/dgx1-v100-8gpu-mlx5.txt"  # NVLink islands (0,1,2,3) and (4,5,6,7)


class Node:
    """kubelet, the proxy and NVIDIA's plugin on one fake node (short socket paths)."""

    def __init__(self, root: pathlib.Path, capture: pathlib.Path) -> None:
        self.root = root
        self.kubelet = devicemanager.DeviceManager(root / "kubelet")
        self.kubelet.start()
        self.pending: dict[str, frozenset[int]] = {}
        self.shares: dict[str, list[int]] = {}
        """Per pending pod whose GPUs several containers request: their amounts, in order."""
        self.fail_reads = False
        machine = fake_nvml.machine_from_capture(topology_matrix.parse(capture.read_text()))
        self.nvidia = nvidia_plugin.FakeNvidiaPlugin(
            fake_nvml.FakeNvml(machine), sysfs=root / "sys"
        )
        self.proxy = deviceplugin.Proxy(
            settings=deviceplugin.Settings(
                resource=RESOURCE, kubelet_dir=root / "kubelet", upstream_dir=root / "nvidia"
            ),
            candidates=self.candidates,
        )
        self.proxy.start()
        self.nvidia.start(directory=root / "nvidia")
        assert self.proxy.registered.wait(10), "the proxy never registered with kubelet"
        self.kubelet.wait_for_devices(RESOURCE, 8)

    def candidates(self) -> list[allocation.Candidate]:
        """What the agent reads from the API: unconfirmed pods and bind's GPUs."""
        if self.fail_reads:
            raise RuntimeError("the API server is unreachable")
        return [
            allocation.Candidate(
                pod=name,
                devices=self.ids(indices),
                parts=allocation.split(self.ids(indices), self.shares[name])
                if name in self.shares
                else (),
            )
            for name, indices in self.pending.items()
        ]

    def ids(self, indices: frozenset[int] | set[int]) -> frozenset[str]:
        return frozenset(self.nvidia.uuids[index] for index in indices)

    def indices(self, ids: frozenset[str]) -> frozenset[int]:
        return frozenset(self.nvidia.index_of[device] for device in ids)

    def admit(
        self, name: str, count: int, container_name: str = "main", **kwargs: object
    ) -> frozenset[int]:
        container = devicemanager.Container("team-a", name, f"uid-{name}", container_name)
        got = self.kubelet.admit(container, resource=RESOURCE, count=count, **kwargs)  # type: ignore[arg-type]
        return self.indices(got)

    def close(self) -> None:
        self.proxy.stop()
        self.nvidia.stop()
        self.kubelet.stop()


@pytest.fixture(scope="module")
def node(shared_data: pathlib.Path) -> Iterator[Node]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="gf15-", dir="/tmp"))  # unix paths <= 107 bytes
    node = Node(root, shared_data / CAPTURE)
    yield node
    node.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_books(node: Node) -> None:
    node.kubelet.checkpoint.clear()
    node.pending.clear()
    node.shares.clear()
    node.fail_reads = False


def test_the_container_gets_gpufairs_island_not_nvidias_lowest_indices(node: Node) -> None:
    node.pending["team-a/train"] = frozenset({4, 5, 6, 7})
    assert node.admit("train", 4) == {4, 5, 6, 7}
    assert node.nvidia.allocations[-1] == tuple(sorted(node.ids({4, 5, 6, 7})))


@pytest.mark.parametrize(
    ("pending", "count", "expected"),
    [
        pytest.param({}, 2, {0, 1}, id="no-gpufair-pod"),
        pytest.param({"team-a/other": {2, 3}}, 4, {0, 1, 2, 3}, id="no-pod-of-that-size"),
        pytest.param({"a": {4, 5}, "b": {6, 7}}, 2, {0, 1}, id="ambiguous"),
    ],
)
def test_otherwise_kubelet_gets_nvidias_preference(
    node: Node, pending: dict[str, set[int]], count: int, expected: set[int]
) -> None:
    node.pending.update({name: frozenset(gpus) for name, gpus in pending.items()})
    calls = node.nvidia.preference_calls
    assert node.admit("web", count) == expected
    assert node.nvidia.preference_calls == calls + 1


@pytest.mark.parametrize(
    ("shares", "chosen", "expected"),
    [
        pytest.param([2, 2], {4, 5, 6, 7}, [{4, 5}, {6, 7}], id="two-halves-of-an-island"),
        pytest.param([1, 3], {4, 5, 6, 7}, [{4}, {5, 6, 7}], id="uneven-shares"),
        pytest.param([1, 1, 2], {0, 1, 2, 3}, [{0}, {1}, {2, 3}], id="three-containers"),
    ],
)
def test_containers_of_one_pod_share_out_exactly_gpufairs_set(
    node: Node, shares: list[int], chosen: set[int], expected: list[set[int]]
) -> None:
    node.pending["team-a/split"] = frozenset(chosen)
    node.shares["team-a/split"] = shares
    got = [node.admit("split", count, container_name=f"c{i}") for i, count in enumerate(shares)]
    assert got == expected
    assert frozenset().union(*got) == chosen


def test_a_container_share_of_another_unconfirmed_pods_size_is_ambiguous(node: Node) -> None:
    """Bind counts pods by their total size: a 2-GPU pod may wait beside a 2+2 pod. Its share's
    request is then ambiguous and gets NVIDIA's preference (the reconciler reports it)."""
    node.pending["team-a/split"] = frozenset({4, 5, 6, 7})
    node.shares["team-a/split"] = [2, 2]
    node.pending["team-a/pair"] = frozenset({2, 3})
    assert node.admit("split", 2, container_name="c0") == {0, 1}


def test_a_failing_pod_lookup_never_fails_the_call(node: Node) -> None:
    node.fail_reads = True
    assert node.admit("web", 1) == {0}
    assert node.kubelet.preference_errors == []


def test_a_set_that_is_no_longer_available_falls_back_to_nvidia(node: Node) -> None:
    assert node.admit("first", 2) == {0, 1}
    node.pending["team-a/late"] = frozenset({1, 2})  # GPU 1 went to another pod meanwhile
    assert node.admit("late", 2) == {2, 3}


def test_kubelet_numa_alignment_wins_over_a_set_outside_the_hint(
    shared_data: pathlib.Path,
) -> None:
    root = pathlib.Path(tempfile.mkdtemp(prefix="gf15-", dir="/tmp"))
    numa_node = Node(root, shared_data / "topology/vastai-8x-rtx4090-pcie-2numa.txt")
    try:
        by_numa: dict[int | None, list[int]] = {}
        for gpu in numa_node.nvidia.topology.gpus:
            by_numa.setdefault(gpu.numa, []).append(gpu.index)
        first, second = sorted(by_numa.items(), key=lambda kv: str(kv[0]))[:2]
        assert first[0] is not None, "the capture should know its GPUs' NUMA nodes"
        inside = frozenset(first[1][-2:])
        numa_node.pending["team-a/in"] = inside
        assert numa_node.admit("in", 2, numa_hint=frozenset({first[0]})) == inside
        numa_node.kubelet.checkpoint.clear()
        numa_node.pending = {"team-a/out": frozenset(second[1][:2])}
        got = numa_node.admit("out", 2, numa_hint=frozenset({first[0]}))
        assert got <= set(first[1]), "kubelet keeps only preferred devices inside the hint"
    finally:
        numa_node.close()
        shutil.rmtree(root, ignore_errors=True)


def test_after_a_kubelet_restart_the_proxy_registers_again(node: Node) -> None:
    node.pending["team-a/train"] = frozenset({4, 5, 6, 7})
    assert node.admit("train", 4) == {4, 5, 6, 7}
    node.pending.clear()  # the agent confirmed it
    registrations = deviceplugin.REGISTRATIONS._value.get()
    node.proxy.registered.clear()
    node.kubelet.restart()
    assert node.proxy.registered.wait(10), "the proxy did not register after kubelet restarted"
    assert deviceplugin.REGISTRATIONS._value.get() == registrations + 1
    node.kubelet.wait_for_devices(RESOURCE, 8)
    container = devicemanager.Container("team-a", "train", "uid-train", "main")
    answer = node.kubelet.restart_container(container)
    visible = answer.container_responses[0].envs["NVIDIA_VISIBLE_DEVICES"]
    assert node.indices(frozenset(visible.split(","))) == {4, 5, 6, 7}
    node.pending["team-a/next"] = frozenset({0, 3})
    assert node.admit("next", 2) == {0, 3}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pods=st.lists(
        st.tuples(st.integers(min_value=1, max_value=4), st.randoms(use_true_random=False)),
        min_size=1,
        max_size=8,
    ),
    finish=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_containers_get_exactly_gpufairs_sets_and_no_gpu_goes_to_two_pods(
    node: Node, pods: list[tuple[int, object]], finish: list[bool]
) -> None:
    node.kubelet.checkpoint.clear()
    node.pending.clear()
    live: dict[str, frozenset[int]] = {}
    errors = len(node.kubelet.preference_errors)
    for number, (size, rng) in enumerate(pods):
        free = sorted(set(range(8)) - set().union(*live.values()))
        if len(free) < size:
            continue
        chosen = frozenset(rng.sample(free, size))  # type: ignore[attr-defined]
        name = f"p{number}"
        node.pending[f"team-a/{name}"] = chosen  # bound, unconfirmed
        got = node.admit(name, size)
        assert got == chosen
        del node.pending[f"team-a/{name}"]  # confirmed from PodResources
        live[name] = got
        if finish[number] and live:
            gone = sorted(live)[0]
            node.kubelet.remove(devicemanager.Container("team-a", gone, f"uid-{gone}", "main"))
            del live[gone]
        held = [gpu for gpus in live.values() for gpu in gpus]
        assert len(held) == len(set(held)), "a GPU went to two pods"
    assert len(node.kubelet.preference_errors) == errors


def test_the_agent_offers_only_unconfirmed_live_pods_with_bind_choices() -> None:
    def on_node(name: str, notes: dict[str, str], phase: str = "Running") -> dict[str, object]:
        return {
            "metadata": {"name": name, "namespace": "team-a", "annotations": notes},
            "status": {"phase": phase},
        }

    def containers(*amounts: int, init: bool = False) -> dict[str, object]:
        listed = [
            {"name": f"c{i}", "resources": {"limits": {RESOURCE: str(amount)}}}
            for i, amount in enumerate(amounts)
        ]
        return {"initContainers" if init else "containers": listed}

    split = on_node("split", {"gpufair.dev/gpus": "0,1,2,3"})
    split["spec"] = containers(3, 1)
    with_init = on_node("with-init", {"gpufair.dev/gpus": "6,7"})
    with_init["spec"] = {**containers(2), **containers(1, init=True)}
    node_pods = [
        split,
        with_init,
        on_node("waiting", {"gpufair.dev/gpus": "4,5"}),
        on_node("confirmed", {"gpufair.dev/gpus": "0,1", "gpufair.dev/gpus-confirmed": "0,1"}),
        on_node("finished", {"gpufair.dev/gpus": "2"}, phase="Succeeded"),
        on_node("malformed", {"gpufair.dev/gpus": "x"}),
        on_node("not-by-gpufair", {}),
    ]

    class Api:
        def node_pods(self, node: str) -> list[dict[str, object]]:
            return node_pods

    wiring = allocations.Allocations(
        options=allocations.Options(
            node="gpu-1",
            resource=RESOURCE,
            proxy=False,
            kubelet_dir=pathlib.Path("/nonexistent"),
            upstream_dir=pathlib.Path("/nonexistent"),
            pod_resources_socket=None,
            interval=1.0,
        ),
        api=Api(),  # type: ignore[arg-type]
        ids={index: f"GPU-{index}" for index in range(8)},
    )
    assert wiring.candidates() == [
        allocation.Candidate(
            pod="team-a/split",
            devices=frozenset({"GPU-0", "GPU-1", "GPU-2", "GPU-3"}),
            parts=(frozenset({"GPU-0", "GPU-1", "GPU-2"}), frozenset({"GPU-3"})),
        ),
        allocation.Candidate(pod="team-a/waiting", devices=frozenset({"GPU-4", "GPU-5"})),
    ]
