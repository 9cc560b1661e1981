"""``gpufair simulate`` end to end on a small hand-made trace with the shared topologies."""

from __future__ import annotations

import json
import pathlib

import pytest

from gpufair import cli

ROWS = [
    "2017-10-09 06:00:00,3600,1,3600,a",
    "2017-10-09 06:00:10,1800,4,7200,b",
    "2017-10-09 06:01:00,600,8,4800,a",
    "2017-10-09 06:02:00,1200,2,2400,c",
    "2017-10-09 06:03:00,900,16,14400,b",
]


@pytest.fixture
def trace_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n" + "\n".join(ROWS) + "\n")
    return path


def simulate(shared_data: pathlib.Path, trace: pathlib.Path, *extra: str) -> int:
    return cli.main(
        [
            "simulate",
            "--trace",
            str(trace),
            "--topology-dir",
            str(shared_data / "topology"),
            "--profiles",
            str(shared_data / "placement-profiles"),
            "--quiet",
            *extra,
        ]
    )


def test_report_has_every_policy(
    shared_data: pathlib.Path, trace_file: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "out"
    code = simulate(shared_data, trace_file, "--nodes", "3", "-o", str(out))
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["policies"]) == ["gpufair", "default", "quota", "kueue-tas", "gang-binpack"]
    for figures in report["policies"].values():
        assert figures["finished"] == figures["jobs"] == len(ROWS)
        assert set(figures["tenants"]) == {"a", "b", "c"}
    assert {goal["verdict"] for goal in report["goals"]} <= {"met", "missed"}
    markdown = (out / "report.md").read_text()
    assert "| queue wait p95 |" in markdown
    assert "## Goals (issue 17)" in markdown
    policies = ("gpufair", "default", "quota", "kueue-tas", "gang-binpack")
    for image in (*(f"share-{name}.png" for name in policies), "comparison.png"):
        assert (out / image).stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--topology", "no-such-box"], "unknown topology", id="topology"),
        pytest.param(["--policy", "fifo"], "--policy", id="policy"),
        pytest.param(["--start", "tomorrow"], "--start", id="start"),
        pytest.param(["--start", "2020-01-01"], "no jobs", id="empty"),
        pytest.param(["--nodes", "0"], "at least one machine", id="nodes"),
    ],
)
def test_bad_options_exit_2_with_a_reason(
    shared_data: pathlib.Path,
    trace_file: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code = simulate(shared_data, trace_file, "-o", str(tmp_path / "out"), "--no-plots", *args)
    assert code == 2
    assert message in capsys.readouterr().err
