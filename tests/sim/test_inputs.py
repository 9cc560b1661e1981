"""Reading the simulator's inputs: traces, tenant weights, placement profiles, topologies."""

from __future__ import annotations

import datetime
import pathlib

import pytest

from gpufair.core import topology
from gpufair.sim import runner, slowdown, tenants, trace

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def write(tmp_path: pathlib.Path, text: str, name: str = "trace.csv") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trace_is_sorted_by_submit_time_and_windowed(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2017-10-09 07:01:55,66.0,1,66.0,b\n"
        + "2017-10-09 06:13:03,2951.0,2,5902.0,a\n"
        + "2017-10-10 00:00:00,10.0,8,80.0,c\n"
        + "\n",
    )
    loaded = trace.load(path)
    assert [job.tenant for job in loaded.jobs] == ["a", "b", "c"]
    assert [job.job_id for job in loaded.jobs] == [0, 1, 2]
    assert loaded.jobs[0].submit == 0
    assert loaded.jobs[1].submit == 48 * 60 + 52
    windowed = trace.load(
        path,
        start=trace.parse_time("2017-10-09 07:00:00"),
        end=trace.parse_time("2017-10-10"),
    )
    assert [job.tenant for job in windowed.jobs] == ["b"]
    assert windowed.jobs[0].submit == 115


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param("2017-10-09 07:01:55,66.0,zero,66.0,b", "trace.csv:2: num_gpus", id="gpus"),
        pytest.param("2017-10-09 07:01:55,66.0,0,0,b", "num_gpus: must be at least 1", id="0"),
        pytest.param("yesterday,66.0,1,66.0,b", "trace.csv:2: timestamp", id="time"),
        pytest.param("2017-10-09 07:01:55,-1,1,66.0,b", "duration: negative", id="duration"),
        pytest.param("2017-10-09 07:01:55,1,1,1,", "cluster: empty", id="tenant"),
    ],
)
def test_bad_trace_rows_name_line_and_field(tmp_path: pathlib.Path, row: str, message: str) -> None:
    with pytest.raises(trace.TraceError, match=message):
        trace.load(write(tmp_path, HEADER + row + "\n"))


def test_trace_without_tenant_column_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(trace.TraceError, match="missing column"):
        trace.load(write(tmp_path, "timestamp,duration,num_gpus\n"))


def test_the_philly_trace_loads_whole(shared_data: pathlib.Path) -> None:
    loaded = trace.load(shared_data / "traces/philly/philly.csv")
    assert len(loaded.jobs) == 82_247
    assert all(a.submit <= b.submit for a, b in zip(loaded.jobs, loaded.jobs[1:], strict=False))
    assert round(loaded.gpu_seconds / 3600) == 978_078


def test_vc_sizes_scale_to_the_simulated_cluster(shared_data: pathlib.Path) -> None:
    specs = {
        spec.name: spec
        for spec in tenants.load(
            shared_data / "traces/philly/philly_vc_nodes_heliosartifact.csv",
            capacity=704,
            tenants=["6214e9", "23dbec"],
        )
    }
    assert specs["6214e9"].weight == 64
    assert specs["6214e9"].guaranteed == 128  # 64 machines of 2,816 GPUs' 352, at 704 GPUs
    assert specs["ed69ec"].guaranteed == 16
    assert specs["23dbec"].weight == 1
    assert specs["23dbec"].guaranteed == 0
    assert sum(spec.guaranteed for spec in specs.values()) <= 704


def test_weights_file_with_guarantees_and_limits(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "tenant,weight,guaranteed,limit\na,2,8,16\nb,1,,\n", "w.csv")
    specs = tenants.load(path, capacity=32, tenants=["a", "b", "c"])
    assert [(s.name, s.weight, s.guaranteed, s.limit) for s in specs] == [
        ("a", 2, 8, 16),
        ("b", 1, 0, None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("tenant,weight\na,0\n", "w.csv:2: weight: must be > 0", id="weight"),
        pytest.param("tenant,weight,guaranteed,limit\na,1,8,4\n", "below guaranteed", id="lim"),
        pytest.param("tenant,weight,guaranteed\na,1,2.5\n", "whole number", id="frac"),
        pytest.param("name,share\na,1\n", "expected columns", id="columns"),
    ],
)
def test_bad_weights_files_are_refused(tmp_path: pathlib.Path, text: str, message: str) -> None:
    with pytest.raises(tenants.TenantFileError, match=message):
        tenants.load(write(tmp_path, text, "w.csv"), capacity=32, tenants=["a"])


def test_measured_profiles_give_a_cross_machine_penalty(shared_data: pathlib.Path) -> None:
    model = slowdown.load_profiles(shared_data / "placement-profiles")
    assert len(model.profiles) == 6
    assert all(profile.cross_machine >= 1 for profile in model.profiles)
    assert max(profile.cross_machine for profile in model.profiles) > 1.5
    bert = next(p for p in model.profiles if p.name == "bert")
    job = model.profiles.index(bert)
    level = topology.LinkLevel
    assert model.factor(job_id=job, gpus=1, machines=1, level=level.SELF) == 1
    assert model.factor(job_id=job, gpus=4, machines=1, level=level.NVLINK) == 1
    pix = model.factor(job_id=job, gpus=4, machines=1, level=level.PIX)
    sys = model.factor(job_id=job, gpus=4, machines=1, level=level.SYS)
    spread = model.factor(job_id=job, gpus=4, machines=2, level=level.NVLINK)
    assert 1 < pix < sys < spread == bert.cross_machine
    assert model.factor(job_id=job, gpus=16, machines=2, level=level.SYS) == 1
    assert model.factor(job_id=job, gpus=16, machines=4, level=level.SYS) == bert.extra_machines


def test_consolidated_profile_placements() -> None:
    assert slowdown.consolidated(4) == "4"
    assert slowdown.consolidated(9) == "441"


def test_topologies_are_parsed_by_core(shared_data: pathlib.Path) -> None:
    types = runner.load_machine_types(shared_data / "topology", runner.DEFAULT_TOPOLOGIES)
    assert [machine.size for machine in types] == [8, 8]
    assert types[0].topology.nvlink_islands() == ((0, 1, 2, 3), (4, 5, 6, 7))
    with pytest.raises(runner.TopologyError, match="unknown topology 'nope'"):
        runner.load_machine_types(shared_data / "topology", ["nope"])


def test_warm_up_jobs_are_replayed_but_not_measured(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2017-10-08 12:00:00,10.0,1,10.0,early\n"
        + "2017-10-09 06:00:00,10.0,1,10.0,a\n"
        + "2017-10-09 07:00:00,10.0,1,10.0,b\n",
    )
    loaded = trace.load(
        path,
        start=trace.parse_time("2017-10-09"),
        warmup=datetime.timedelta(days=1),
    )
    assert [job.tenant for job in loaded.jobs] == ["early", "a", "b"]
    assert loaded.measure_from == 86400
    assert [job.tenant for job in loaded.measured] == ["a", "b"]
    assert loaded.jobs[0].submit == 12 * 3600
