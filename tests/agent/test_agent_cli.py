"""``gpufair agent``: dry runs print labels, no GPU exits 1 (or idles), bad usage exits 2."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import threading

import pynvml
import pytest

from gpufair import cli
from gpufair.core import labels, topology, topology_matrix
from gpufair.standin import fake_nvml

H200 = "hgx-h200-8gpu-nv18-10nic.txt"
AMD = "amd-rocm-showtopo-archer2-4x-mi210-xgmi.txt"


class _NoDriver(fake_nvml.FakeNvml):
    """NVML on a node without the NVIDIA driver; tells the test each time it is asked."""

    def __init__(self) -> None:
        super().__init__(None, init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self.asked = threading.Semaphore(0)

    def nvmlInit(self) -> None:  # noqa: N802
        self.asked.release()
        super().nvmlInit()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> _NoDriver:
    """A node without NVIDIA GPU: NVML has no driver and nvidia-smi is not on PATH."""
    nvml = _NoDriver()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return nvml


@pytest.fixture
def kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """Credentials for an API server that is never called."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


def test_dry_run_prints_the_labels_of_a_capture(
    shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = shared_data / "topology" / H200
    assert cli.main(["agent", "--dry-run", "--from-file", str(capture)]) == 0
    out, err = capsys.readouterr()
    node = topology.from_matrix(topology_matrix.parse(capture.read_text()))
    assert out.splitlines() == [f"{key}={value}" for key, value in labels.to_labels(node).items()]
    assert f"8 GPUs from {capture}" in err


def test_dry_run_refuses_the_amd_capture_naming_file_and_line(
    shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = shared_data / "topology" / AMD
    assert cli.main(["agent", "--dry-run", "--from-file", str(capture)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{capture}:1: this is AMD `rocm-smi --showtopo` output" in err


def test_dry_run_of_a_missing_file_is_a_usage_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["agent", "--dry-run", "--from-file", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt: No such file or directory" in capsys.readouterr().err


def test_dry_run_without_gpu_says_what_was_tried(
    no_gpu: _NoDriver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["agent", "--dry-run"]) == 1
    assert capsys.readouterr().err.strip() == (
        "gpufair agent: no NVIDIA GPU on this node: NVML did not start: Driver Not Loaded; "
        "nvidia-smi not found on PATH"
    )


def test_agent_without_gpu_exits_1_before_touching_the_api(
    no_gpu: _NoDriver, kubeconfig: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert cli.main(["agent", "--node-name", "n1"]) == 1
    assert "no NVIDIA GPU on this node (NVML did not start: Driver Not Loaded" in caplog.text
    assert "--idle-without-gpu" in caplog.text


def test_idle_without_gpu_waits_until_sigterm(
    no_gpu: _NoDriver, kubeconfig: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    def stop_after_first_check() -> None:
        no_gpu.asked.acquire()
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_first_check)
    stopper.start()
    code = cli.main(["agent", "--node-name", "n1", "--idle-without-gpu", "--interval", "3600"])
    stopper.join()
    assert code == 0
    assert "idling, re-checking every 3600s and on SIGHUP" in caplog.text
    assert "SIGTERM: stopping" in caplog.text


def test_node_name_comes_from_the_downward_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_NAME", "gpu-node-7")
    args = cli.build_parser().parse_args(["agent"])
    assert args.node_name == "gpu-node-7"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["agent"], "pass --node-name or set NODE_NAME", id="no-node"),
        pytest.param(
            ["agent", "--dry-run", "--from-file", "x.txt", "--source", "nvml"],
            "--from-file and --source exclude each other",
            id="file-and-source",
        ),
    ],
)
def test_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0", "-5", "soon"])
def test_interval_must_be_a_positive_number(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["agent", "--dry-run", "--interval", interval])
    assert exit_info.value.code == 2
    assert "--interval" in capsys.readouterr().err


def test_the_proxy_without_pod_resources_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["agent", "--node-name", "gpu-1", "--device-plugin-proxy"]) == 2
    _, err = capsys.readouterr()
    assert "--device-plugin-proxy needs --pod-resources-socket" in err
