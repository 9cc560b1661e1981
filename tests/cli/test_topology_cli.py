"""``gpufair topology parse``: JSON or labels from a capture or stdin; errors name FILE:LINE."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
from tests.builders.topology import topo_text

from gpufair import cli

H200 = "hgx-h200-8gpu-nv18-10nic.txt"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_of_a_capture(shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_data / "topology" / "dgx1-v100-topo-mp-4nic.txt"
    code, out, err = run(["topology", "parse", str(path), "-o", "json"], capsys)
    assert (code, err) == (0, "")
    shape = json.loads(out)
    assert shape["nvlink_islands"] == []
    assert shape["pcie_switch_groups"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert shape["gpus"][5] == {"index": 5, "numa": 1, "pcie_switch": 2, "nvlink_island": None}


def test_json_is_the_default(shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["topology", "parse", str(shared_data / "topology" / H200)], capsys)
    assert code == 0
    assert json.loads(out)["nvlink_islands"] == [list(range(8))]


def test_labels_of_a_capture(shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_data / "topology" / "ibm-power9-traverse-4x-v100-nv3-4nic.txt"
    code, out, _ = run(["topology", "parse", str(path), "--output", "labels"], capsys)
    assert code == 0
    assert out.splitlines() == [
        "gpufair.dev/topology-schema=v1",
        "gpufair.dev/gpu-count=4",
        "gpufair.dev/gpu-0.numa=0",
        "gpufair.dev/gpu-0.nvlink=0",
        "gpufair.dev/gpu-1.numa=0",
        "gpufair.dev/gpu-1.nvlink=0",
        "gpufair.dev/gpu-2.numa=8",
        "gpufair.dev/gpu-2.nvlink=1",
        "gpufair.dev/gpu-3.numa=8",
        "gpufair.dev/gpu-3.nvlink=1",
    ]


def test_stdin(
    shared_data: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (shared_data / "topology" / H200).read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = run(["topology", "parse", "-", "-o", "labels"], capsys)
    assert code == 0
    assert "gpufair.dev/gpu-7.nvlink=0" in out.splitlines()


def test_malformed_file_names_file_and_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "topo.txt"
    path.write_text(topo_text(["X NV4", "NV4 ZZZ"]))
    code, out, err = run(["topology", "parse", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"gpufair: {path}:3: ")
    assert "'ZZZ'" in err


def test_malformed_stdin_is_named_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("not a matrix\n"))
    code, _, err = run(["topology", "parse", "-"], capsys)
    assert code == 2
    assert err.startswith("gpufair: <stdin>:1: ")


def test_amd_capture_is_refused(
    shared_data: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_data / "topology" / "amd-rocm-showtopo-archer2-4x-mi210-xgmi.txt"
    code, _, err = run(["topology", "parse", str(path)], capsys)
    assert code == 2
    assert "rocm-smi" in err


def test_missing_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.txt"
    code, _, err = run(["topology", "parse", str(path)], capsys)
    assert code == 2
    assert err.strip() == f"gpufair: {path}: No such file or directory"


def test_unknown_output_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["topology", "parse", "-", "-o", "yaml"])
    assert exit_info.value.code == 2
