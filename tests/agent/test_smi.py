"""``nvidia-smi topo -m``: a missing tool or "no devices" means no GPU; other failures fail."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from gpufair.agent import smi


def _fake_run(
    monkeypatch: pytest.MonkeyPatch, *, returncode: int = 0, stdout: str = "", stderr: str = ""
) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_returns_the_matrix_text(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_run(monkeypatch, stdout="\tGPU0\nGPU0\t X \n")
    assert smi.run_topo() == "\tGPU0\nGPU0\t X \n"
    assert calls == [["/usr/bin/nvidia-smi", "topo", "-m"]]


def test_missing_tool_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(smi.SmiUnavailableError, match="nvidia-smi not found on PATH"):
        smi.run_topo()


@pytest.mark.parametrize(
    "said",
    [
        "No devices were found",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.",
    ],
    ids=["no-devices", "no-driver"],
)
def test_no_gpu_answers_are_unavailable(monkeypatch: pytest.MonkeyPatch, said: str) -> None:
    _fake_run(monkeypatch, returncode=6, stdout=said)
    with pytest.raises(smi.SmiUnavailableError, match="exited 6"):
        smi.run_topo()


def test_other_failures_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, returncode=15, stderr="Unable to determine the device handle: GPU lost")
    with pytest.raises(smi.SmiError, match="GPU lost"):
        smi.run_topo()


def test_a_hung_tool_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(smi.SmiError, match="timed out after 5s"):
        smi.run_topo(timeout=5)
