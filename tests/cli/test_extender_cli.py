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
            "--topology-dir",
            str(shared_data / "topology"),
            "-o",
            "json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["budget_ms_per_pod"] == pytest.approx(1000 / 180, abs=0.01)
    assert [run["nodes"] for run in report["runs"]] == [40, 80]
    assert "hgx-h200-8gpu-nv18-10nic" in report["topologies"]
    for run in report["runs"]:
        assert 0.5 < run["occupancy"] <= 0.8
        for path in ("in_process", "http"):
            for verb in ("filter", "prioritize", "bind", "pod"):
                figures = run[path][verb]
                assert 0 < figures["p50_ms"] <= figures["p99_ms"]


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
