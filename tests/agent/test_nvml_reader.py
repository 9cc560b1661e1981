"""Reading NVML: what counts as "no such fact", what is a failure, and NVML is always shut down."""

from __future__ import annotations

import pathlib

import pynvml
import pytest

from gpufair.agent import nvml_reader
from gpufair.core import topology_matrix
from gpufair.standin import fake_nvml

TWO_NV2 = (
    "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tNV2\t0-7\t0\nGPU1\tNV2\t X \t8-15\t1\n"
)
TWO_PCIE = (
    "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tPIX\t0-7\t0\nGPU1\tPIX\t X \t0-7\t0\n"
)


def _machine(text: str) -> fake_nvml.Machine:
    return fake_nvml.machine_from_capture(topology_matrix.parse(text))


def test_reads_links_pci_addresses_and_affinities(tmp_path: pathlib.Path) -> None:
    machine = _machine(TWO_NV2)
    facts = nvml_reader.read_facts(
        fake_nvml.FakeNvml(machine), node_root=machine.write_sysfs(tmp_path)
    )
    first, second = facts.gpus
    assert first.pci == machine.pci[0]
    assert [link.remote for link in first.nvlinks] == [machine.pci[1]] * 2
    assert [link.link for link in first.nvlinks] == [0, 1]
    assert first.memory_nodes == {0}
    assert second.cpus == frozenset(range(8, 16))
    assert facts.node_cpus == {0: frozenset(range(8)), 1: frozenset(range(8, 16))}


def test_pcie_only_gpus_have_no_links(tmp_path: pathlib.Path) -> None:
    facts = nvml_reader.read_facts(fake_nvml.FakeNvml(_machine(TWO_PCIE)), node_root=tmp_path)
    assert [gpu.nvlinks for gpu in facts.gpus] == [(), ()]
    assert facts.common_ancestor[0][1] == pynvml.NVML_TOPOLOGY_SINGLE


@pytest.mark.parametrize(
    "code",
    [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED],
    ids=["no-library", "no-driver"],
)
def test_nvml_that_does_not_start_is_unavailable(code: int, tmp_path: pathlib.Path) -> None:
    nvml = fake_nvml.FakeNvml(None, init_error=code)
    with pytest.raises(nvml_reader.NvmlUnavailableError, match="NVML did not start"):
        nvml_reader.read_facts(nvml, node_root=tmp_path)


def test_no_gpu_gives_empty_facts(tmp_path: pathlib.Path) -> None:
    nvml = fake_nvml.FakeNvml(None)
    assert nvml_reader.read_facts(nvml, node_root=tmp_path).gpus == ()
    assert nvml.shut_down == 1


class _LostGpu(fake_nvml.FakeNvml):
    def nvmlDeviceGetPciInfo(self, handle: object) -> object:  # noqa: N802
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)


def test_a_real_nvml_failure_is_raised_and_nvml_shut_down(tmp_path: pathlib.Path) -> None:
    nvml = _LostGpu(_machine(TWO_NV2))
    with pytest.raises(nvml_reader.NvmlQueryError, match="GPU is lost"):
        nvml_reader.read_facts(nvml, node_root=tmp_path)
    assert nvml.shut_down == nvml.initialised == 1


class _OldBinding(fake_nvml.FakeNvml):
    """An nvidia-ml-py from before the remote-device-type and memory-affinity calls."""

    def __getattribute__(self, name: str) -> object:
        if name in ("nvmlDeviceGetNvLinkRemoteDeviceType", "nvmlDeviceGetMemoryAffinity"):
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_calls_missing_from_an_old_binding_are_facts_not_known(tmp_path: pathlib.Path) -> None:
    facts = nvml_reader.read_facts(_OldBinding(_machine(TWO_NV2)), node_root=tmp_path)
    assert [link.remote_type for link in facts.gpus[0].nvlinks] == [None, None]
    assert facts.gpus[0].memory_nodes is None


def test_node_cpus_skip_memory_only_and_malformed_nodes(tmp_path: pathlib.Path) -> None:
    for name, cpulist in [("node0", "0-3\n"), ("node1", "\n"), ("node2", "x\n"), ("node8", "4,5")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "cpulist").write_text(cpulist)
    (tmp_path / "possible").write_text("0-8\n")
    assert nvml_reader.read_node_cpus(tmp_path) == {
        0: frozenset({0, 1, 2, 3}),
        8: frozenset({4, 5}),
    }


def test_node_cpus_of_a_host_without_sysfs_are_empty(tmp_path: pathlib.Path) -> None:
    assert nvml_reader.read_node_cpus(tmp_path / "absent") == {}
