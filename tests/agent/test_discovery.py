"""Choosing the source: ``auto`` falls back from NVML to nvidia-smi; no GPU says what was tried."""

from __future__ import annotations

import pathlib

import pynvml
import pytest

from gpufair.agent import discovery, smi
from gpufair.core import topology_matrix
from gpufair.standin import fake_nvml

TEXT = "\tGPU0\tGPU1\tNUMA Affinity\nGPU0\t X \tNV4\t0\nGPU1\tNV4\t X \t0\n"
NO_LIBRARY = fake_nvml.FakeNvml(None, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def _smi_text() -> str:
    return TEXT


def _smi_missing() -> str:
    raise smi.SmiUnavailableError("nvidia-smi not found on PATH")


def _smi_broken() -> str:
    raise smi.SmiError("nvidia-smi topo -m exited 15: GPU lost")


def _nvml_machine() -> fake_nvml.FakeNvml:
    return fake_nvml.FakeNvml(fake_nvml.machine_from_capture(topology_matrix.parse(TEXT)))


def test_auto_uses_nvml_when_it_works(tmp_path: pathlib.Path) -> None:
    found = discovery.Discoverer(nvml=_nvml_machine(), run_smi=_smi_missing, node_root=tmp_path)()
    assert found.source is discovery.Source.NVML
    assert found.topology.nvlink_islands() == ((0, 1),)


def test_auto_falls_back_to_nvidia_smi_and_says_why(tmp_path: pathlib.Path) -> None:
    found = discovery.Discoverer(nvml=NO_LIBRARY, run_smi=_smi_text, node_root=tmp_path)()
    assert found.source is discovery.Source.NVIDIA_SMI
    assert found.topology.nvlink_islands() == ((0, 1),)
    assert found.notes == ("NVML did not start: NVML Shared Library Not Found",)


def test_no_gpu_anywhere_names_both_sources(tmp_path: pathlib.Path) -> None:
    source = discovery.Discoverer(nvml=NO_LIBRARY, run_smi=_smi_missing, node_root=tmp_path)
    with pytest.raises(discovery.NoGpuError) as error:
        source()
    assert str(error.value) == (
        "NVML did not start: NVML Shared Library Not Found; nvidia-smi not found on PATH"
    )


def test_nvml_without_devices_is_no_gpu(tmp_path: pathlib.Path) -> None:
    source = discovery.Discoverer(
        source=discovery.Source.NVML, nvml=fake_nvml.FakeNvml(None), node_root=tmp_path
    )
    with pytest.raises(discovery.NoGpuError, match="NVML found no GPU"):
        source()


def test_explicit_nvml_does_not_fall_back(tmp_path: pathlib.Path) -> None:
    source = discovery.Discoverer(
        source=discovery.Source.NVML, nvml=NO_LIBRARY, run_smi=_smi_text, node_root=tmp_path
    )
    with pytest.raises(discovery.NoGpuError, match="NVML did not start"):
        source()


def test_explicit_nvidia_smi_does_not_ask_nvml(tmp_path: pathlib.Path) -> None:
    nvml = _nvml_machine()
    found = discovery.Discoverer(
        source=discovery.Source.NVIDIA_SMI, nvml=nvml, run_smi=_smi_text, node_root=tmp_path
    )()
    assert found.source is discovery.Source.NVIDIA_SMI
    assert nvml.initialised == 0


def test_broken_nvidia_smi_is_a_discovery_error_not_no_gpu(tmp_path: pathlib.Path) -> None:
    source = discovery.Discoverer(source=discovery.Source.NVIDIA_SMI, run_smi=_smi_broken)
    with pytest.raises(discovery.DiscoveryError, match="GPU lost"):
        source()


def test_unreadable_nvidia_smi_output_is_a_discovery_error() -> None:
    source = discovery.Discoverer(source=discovery.Source.NVIDIA_SMI, run_smi=lambda: "garbage\n")
    with pytest.raises(discovery.DiscoveryError, match="line 1"):
        source()


def test_from_file_wins_over_every_source(tmp_path: pathlib.Path) -> None:
    capture = tmp_path / "topo.txt"
    capture.write_text(TEXT)
    found = discovery.Discoverer(from_file=capture, nvml=NO_LIBRARY, run_smi=_smi_missing)()
    assert found.source is discovery.Source.FILE
    assert found.topology.nvlink_islands() == ((0, 1),)


class _LostGpu(fake_nvml.FakeNvml):
    def nvmlDeviceGetPciInfo(self, handle: object) -> object:  # noqa: N802
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)


def test_auto_falls_back_when_nvml_fails_on_a_gpu(tmp_path: pathlib.Path) -> None:
    lost = _LostGpu(_nvml_machine().machine)
    found = discovery.Discoverer(nvml=lost, run_smi=_smi_text, node_root=tmp_path)()
    assert found.source is discovery.Source.NVIDIA_SMI
    assert found.notes == ("NVML query failed: GPU is lost",)


def test_a_gpu_nvml_saw_is_never_reported_as_no_gpu(tmp_path: pathlib.Path) -> None:
    lost = _LostGpu(_nvml_machine().machine)
    source = discovery.Discoverer(nvml=lost, run_smi=_smi_missing, node_root=tmp_path)
    with pytest.raises(discovery.DiscoveryError) as error:
        source()
    assert str(error.value) == "NVML query failed: GPU is lost; nvidia-smi not found on PATH"
