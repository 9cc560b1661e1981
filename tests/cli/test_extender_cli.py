"""``gpufair bench extender`` prints figures; ``gpufair extender`` refuses bad settings."""

from __future__ import annotations

import json
import pathlib

import pytest

from gpufair import cli


def test_bench_extender_reports_every_verb_in_process_and_over_http(
    capsys: pytest.CaptureFixture[str], shared_data: pathlib.Path
) -> None:
    code = cli.main(
        [
            "bench",
            "extender",
            "--nodes",
            "40,80",
            "--pods",
            "5",
            "--runs",
            "2",
            "--every-node",
            "40",
            "--memory",
            "50,300",
            "--topology-dir",
            str(shared_data / "topology"),
            "-o",
            "json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["budget_ms_per_pod"] == pytest.approx(1000 / 180, abs=0.01)
    assert report["runs_per_figure"] == 2
    assert [(run["nodes"], run["candidates"]) for run in report["runs"]] == [
        (40, "nodes with enough free GPUs by count"),
        (80, "nodes with enough free GPUs by count"),
        (40, "every node"),
    ]
    assert "hgx-h200-8gpu-nv18-10nic" in report["topologies"]
    for run in report["runs"]:
        assert 0.5 < run["occupancy"] <= 0.8
        for path in ("in_process", "http", "null_http"):
            for verb in ("filter", "prioritize", "bind", "pod"):
                figures = run[path][verb]
                assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert run["null_ratio"]["p50_ms"] > 0
    memory = report["memory"]
    assert (memory["nodes"], memory["gpu_pods"]) == (50, 300)
    assert memory["before_building_mb"] < memory["rss_mb"] <= memory["peak_rss_mb"]


def test_bench_table_names_the_budget(
    capsys: pytest.CaptureFixture[str], shared_data: pathlib.Path
) -> None:
    assert (
        cli.main(
            [
                "bench",
                "extender",
                "--nodes",
                "30",
                "--pods",
                "3",
                "--runs",
                "1",
                "--every-node",
                "none",
                "--memory",
                "none",
                "--topology-dir",
                str(shared_data / "topology"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "5.56 ms per pod" in out
    assert "in-process" in out
    assert "http" in out
    assert "null" in out
    assert "HTTP per pod / null" in out


@pytest.mark.parametrize("nodes", ["", "ten", "0,5"])
def test_bench_rejects_bad_node_counts(nodes: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "extender", "--nodes", nodes])
    assert exit_info.value.code == 2


def test_bench_without_captures_is_a_clear_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "extender", "--nodes", "10", "--topology-dir", str(tmp_path)]) == 2
    assert "no 8-GPU nvidia-smi topo -m captures" in capsys.readouterr().err


def test_extender_rejects_an_invalid_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["extender", "--port", "70000"]) == 2
    assert "extender_port" in capsys.readouterr().err
