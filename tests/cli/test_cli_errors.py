"""Bad input on the command line gets one line naming what was wrong, never a traceback."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from gpufair import cli


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        pytest.param(
            ["crds", "--output-dir", "{here}/crds"],
            1,
            "gpufair crds: [Errno 20] Not a directory",
            id="crds-under-a-file",
        ),
        pytest.param(
            ["simulate", "--trace", "{missing}/philly.csv", "--policy", "gpufair"],
            2,
            "gpufair simulate: --trace: {missing}/philly.csv: no such file",
            id="simulate-missing-trace",
        ),
        pytest.param(
            ["simulate", "--trace", "{here}", "--policy", "gpufair"],
            2,
            "gpufair simulate: --topology-dir:",
            id="simulate-trace-outside-the-shared-data",
        ),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    exit_code: int,
    message: str,
) -> None:
    missing = tmp_path / "missing"
    (tmp_path / "data.csv").write_text("timestamp,duration,num_gpus,gpu_time,cluster\n")
    here = tmp_path / "data.csv"

    def fill(text: str) -> str:
        return text.format(missing=missing, here=here)

    assert cli.main([fill(arg) for arg in argv]) == exit_code
    err = capsys.readouterr().err
    assert err.startswith(fill(message))
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("component", ["operator", "extender"])
def test_a_component_without_cluster_credentials_says_so_and_exits(
    tmp_path: pathlib.Path, component: str
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KUBERNETES_SERVICE", "GPUFAIR_"))
    }
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    args = ["--standalone", "--dev"] if component == "operator" else ["--port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "gpufair", component, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"gpufair {component}: cannot start:")
    assert "Traceback" not in done.stderr
