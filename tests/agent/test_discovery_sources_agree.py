"""Both discovery paths give the same topology and labels on every real NVIDIA capture.

The NVML path runs against :mod:`tests.agent.fake_nvml` rebuilt from each capture; the
``nvidia-smi`` path parses the capture itself. Labels also round-trip through the extender's
label reader (:func:`gpufair.core.labels.from_labels`).
"""

from __future__ import annotations

import dataclasses
import pathlib

import pynvml
import pytest

from gpufair.agent import discovery, nvml_topology
from gpufair.core import labels, topology_matrix
from gpufair.standin import fake_nvml

AMD_CAPTURE = "amd-rocm-showtopo-archer2-4x-mi210-xgmi.txt"


@dataclasses.dataclass(frozen=True)
class Model:
    """What the capture cannot show about the machine's NVLinks (from SOURCES.md)."""

    nvswitches: int = 0
    cpu_nvlinks: int = 0


MODELS: dict[str, Model] = {
    "alcf-polaris-4x-a100-nv4-4numa-2nic.txt": Model(),  # HGX A100 4-GPU: direct links
    "asus-esc8000a-e12-4x-rtx6000ada-4nic.txt": Model(),
    "della-2x-a100-pcie-2numa-2nic.txt": Model(),
    "dgx-a100-8gpu-nv12-12nic-4numa.txt": Model(nvswitches=6),
    "dgx1-v100-8gpu-mlx5.txt": Model(),
    "dgx1-v100-topo-mp-4nic.txt": Model(),
    "hgx-h20-8gpu-nv18-8nic-sglang-issue24966.txt": Model(nvswitches=4),
    "hgx-h200-8gpu-nv18-10nic.txt": Model(nvswitches=4),
    "ibm-power9-traverse-4x-v100-nv3-4nic.txt": Model(cpu_nvlinks=3),  # V100: 3 to GPU, 3 to CPU
    "issue-8x-rtx4090-all-sys-2numa-2nic-go-gpuallocator17.txt": Model(),
    "pcie-8x-quadro-rtx6000-pix-pxb.txt": Model(),
    "princeton-adroit-4x-a100-pcie-2numa-interleaved-affinity.txt": Model(),
    "princeton-della-4x-a100-sxm4-nv4-2numa.txt": Model(),
    "puget-threadripper-pro-wrx90-2x-rtx6000ada-2nic.txt": Model(),
    "vastai-8x-rtx4090-pcie-2numa.txt": Model(),
    "vastai-8x-v100-sxm2-dgx1-style-nic0.txt": Model(),
}
NVSWITCH_CAPTURES = sorted(name for name, model in MODELS.items() if model.nvswitches)


def _capture(shared_data: pathlib.Path, name: str) -> pathlib.Path:
    return shared_data / "topology" / name


def _machine(shared_data: pathlib.Path, name: str) -> fake_nvml.Machine:
    matrix = topology_matrix.parse(_capture(shared_data, name).read_text())
    model = MODELS[name]
    return fake_nvml.machine_from_capture(
        matrix, nvswitches=model.nvswitches, cpu_nvlinks=model.cpu_nvlinks
    )


def _via_nvml(
    machine: fake_nvml.Machine, tmp_path: pathlib.Path, driver: fake_nvml.Driver
) -> discovery.Discovery:
    nvml = fake_nvml.FakeNvml(machine, driver=driver)
    found = discovery.Discoverer(
        source=discovery.Source.NVML,
        nvml=nvml,
        node_root=machine.write_sysfs(tmp_path / "node"),
    )()
    assert nvml.initialised == nvml.shut_down == 1
    return found


def test_every_nvidia_capture_is_modelled(shared_data: pathlib.Path) -> None:
    names = {path.name for path in (shared_data / "topology").glob("*.txt")}
    assert names == {*MODELS, AMD_CAPTURE}


@pytest.mark.parametrize("driver", list(fake_nvml.Driver), ids=lambda driver: driver.value)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_nvml_and_nvidia_smi_agree(
    shared_data: pathlib.Path, tmp_path: pathlib.Path, name: str, driver: fake_nvml.Driver
) -> None:
    path = _capture(shared_data, name)
    text = path.read_text()
    via_nvml = _via_nvml(_machine(shared_data, name), tmp_path, driver)
    via_smi = discovery.Discoverer(source=discovery.Source.NVIDIA_SMI, run_smi=lambda: text)()
    via_file = discovery.Discoverer(from_file=path)()

    assert via_nvml.source is discovery.Source.NVML
    assert via_smi.source is discovery.Source.NVIDIA_SMI
    assert via_nvml.topology == via_smi.topology == via_file.topology
    published = labels.to_labels(via_nvml.topology)
    assert published == labels.to_labels(via_smi.topology)
    assert labels.from_labels(published) == via_nvml.topology


@pytest.mark.parametrize("driver", list(fake_nvml.Driver), ids=lambda driver: driver.value)
@pytest.mark.parametrize("name", NVSWITCH_CAPTURES)
def test_nvswitch_machine_is_one_island_though_no_link_ends_on_a_gpu(
    shared_data: pathlib.Path, tmp_path: pathlib.Path, name: str, driver: fake_nvml.Driver
) -> None:
    machine = _machine(shared_data, name)
    gpu_addresses = set(machine.pci)
    assert all(link.remote not in gpu_addresses for links in machine.links for link in links)

    found = _via_nvml(machine, tmp_path, driver)

    assert found.topology.nvlink_islands() == (tuple(range(machine.gpu_count)),)


def test_nvlinks_to_power9_cpus_join_no_gpus(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    machine = _machine(shared_data, "ibm-power9-traverse-4x-v100-nv3-4nic.txt")
    for driver in fake_nvml.Driver:
        found = _via_nvml(machine, tmp_path / driver.value, driver)
        assert found.topology.nvlink_islands() == ((0, 1), (2, 3))
        assert found.topology.numa_nodes() == ((0, 1), (2, 3))
        assert [gpu.numa for gpu in found.topology.gpus] == [0, 0, 8, 8]


def test_legacy_driver_finds_numa_nodes_from_cpu_affinity_alone(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    machine = _machine(shared_data, "dgx-a100-8gpu-nv12-12nic-4numa.txt")
    found = _via_nvml(machine, tmp_path, fake_nvml.Driver.LEGACY)
    assert [gpu.numa for gpu in found.topology.gpus] == [3, 3, 1, 1, 7, 7, 5, 5]


def test_numa_is_unknown_when_neither_nvml_nor_the_host_says(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    machine = _machine(shared_data, "vastai-8x-v100-sxm2-dgx1-style-nic0.txt")
    nvml = fake_nvml.FakeNvml(machine, driver=fake_nvml.Driver.LEGACY)
    found = discovery.Discoverer(
        source=discovery.Source.NVML, nvml=nvml, node_root=tmp_path / "no-sysfs"
    )()
    assert [gpu.numa for gpu in found.topology.gpus] == [None] * 8
    assert found.topology.nvlink_islands() == ((0, 1, 2, 3), (4, 5, 6, 7))


def test_nvml_constants_are_the_real_bindings_values() -> None:
    assert {level.name: level.value for level in nvml_topology.NvmlTopologyLevel} == {
        "INTERNAL": pynvml.NVML_TOPOLOGY_INTERNAL,
        "SINGLE": pynvml.NVML_TOPOLOGY_SINGLE,
        "MULTIPLE": pynvml.NVML_TOPOLOGY_MULTIPLE,
        "HOSTBRIDGE": pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
        "NODE": pynvml.NVML_TOPOLOGY_NODE,
        "SYSTEM": pynvml.NVML_TOPOLOGY_SYSTEM,
    }
    assert {kind.name: kind.value for kind in nvml_topology.NvLinkDeviceType} == {
        "GPU": pynvml.NVML_NVLINK_DEVICE_TYPE_GPU,
        "IBMNPU": pynvml.NVML_NVLINK_DEVICE_TYPE_IBMNPU,
        "SWITCH": pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
        "UNKNOWN": pynvml.NVML_NVLINK_DEVICE_TYPE_UNKNOWN,
    }


def test_amd_capture_is_refused_clearly(shared_data: pathlib.Path) -> None:
    source = discovery.Discoverer(from_file=_capture(shared_data, AMD_CAPTURE))
    with pytest.raises(discovery.TopologyFileError, match="rocm-smi") as error:
        source()
    assert error.value.line == 1
    assert str(error.value).startswith(f"{_capture(shared_data, AMD_CAPTURE)}:1: this is AMD")
    assert "NVIDIA topology only" in error.value.reason
