"""``gpufair whatif``: fair shares from manifests as ``kubectl apply`` takes them."""

from __future__ import annotations

import io
import json
import pathlib
from typing import Any

import pytest
from tests.builders.manifests import gpu_pool, pool_entry, tenant_quota, yaml_stream

from gpufair import cli

REPO = pathlib.Path(__file__).resolve().parents[2]


def write(tmp_path: pathlib.Path, *objects: dict[str, Any], name: str = "fleet.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml_stream(*objects))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["whatif", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def two_teams() -> list[dict[str, Any]]:
    return [
        gpu_pool("h100"),
        tenant_quota("team-a", weight=2, pools=[pool_entry("h100", guaranteed=16, limit=32)]),
        tenant_quota("team-b", pools=[pool_entry("h100", guaranteed=16)]),
    ]


def test_json_answer_has_the_documented_shape(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both get their 16 guaranteed; of the 32 left, team-a (weight 2) would take 2/3 but stops
    # at its limit of 32, so team-b takes the remaining 16: 32 each.
    fleet = write(tmp_path, *two_teams())
    code, out, _ = run(
        capsys, "-f", fleet, "--capacity", "h100=64",
        "--demand", "team-a/h100=40", "--demand", "team-b/h100=40", "-o", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "pools": {
            "h100": {
                "capacity": 64,
                "overcommitted": False,
                "tenants": {
                    "team-a": {
                        "weight": 2,
                        "guaranteed": 16,
                        "limit": 32,
                        "demand": 40,
                        "fair_share": 32.0,
                    },
                    "team-b": {
                        "weight": 1,
                        "guaranteed": 16,
                        "limit": None,
                        "demand": 40,
                        "fair_share": 32.0,
                    },
                },
            }
        }
    }


def test_table_for_humans_marks_assumed_demand(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write(tmp_path, *two_teams())
    code, out, _ = run(capsys, "-f", fleet, "--capacity", "h100=64", "--demand", "team-b/h100=8")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "pool h100: 64 GPUs, 32 guaranteed"
    header, team_a, team_b = lines[1:4]
    assert header.split() == ["TENANT", "WEIGHT", "GUARANTEED", "LENDABLE", "LIMIT", "DEMAND",
                              "FAIR", "SHARE"]  # fmt: skip
    # team-b wants only 8 of its 16 guaranteed: team-a (no demand given: its limit) gets 32.
    assert team_a.split() == ["team-a", "2", "16", "16", "32", "32*", "32.00"]
    assert team_b.split() == ["team-b", "1", "16", "16", "-", "8", "8.00"]
    assert header.index("FAIR SHARE") == team_a.index("32.00")
    assert "* no demand given" in out


def test_overcommitted_guarantees_are_flagged(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write(tmp_path, *two_teams())
    code, out, _ = run(capsys, "-f", fleet, "--capacity", "h100=24", "-o", "json")
    assert code == 0
    answer = json.loads(out)["pools"]["h100"]
    assert answer["overcommitted"] is True
    assert sum(t["fair_share"] for t in answer["tenants"].values()) == pytest.approx(24)


def test_capacity_and_demand_default_to_the_recorded_status(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, team_a, team_b = two_teams()
    pool["status"] = {"capacity": 40}
    team_b["status"] = {"pools": [{"name": "h100", "demand": 4}]}
    fleet = write(tmp_path, pool, team_a, team_b)
    code, out, _ = run(capsys, "-f", fleet, "-o", "json")
    assert code == 0
    answer = json.loads(out)["pools"]["h100"]
    assert answer["capacity"] == 40
    assert answer["tenants"]["team-b"]["demand"] == 4
    assert answer["tenants"]["team-a"]["demand"] == 32  # no demand anywhere: its limit


def test_reads_directories_lists_and_standard_input(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, team_a, team_b = two_teams()
    (tmp_path / "manifests").mkdir()
    write(tmp_path / "manifests", pool, name="pool.yml")
    write(tmp_path / "manifests", {"apiVersion": "v1", "kind": "List", "items": [team_a]})
    (tmp_path / "manifests" / "notes.txt").write_text("not a manifest")
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml_stream(team_b)))
    code, out, _ = run(
        capsys, "-f", str(tmp_path / "manifests"), "-f", "-", "--capacity", "h100=64", "-o", "json"
    )
    assert code == 0
    assert set(json.loads(out)["pools"]["h100"]["tenants"]) == {"team-a", "team-b"}


def test_examples_shares_stay_within_capacity_and_limits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capacities = {"h100": 64, "a100": 32, "v100": 32, "l40s": 16}
    flags = [f"--capacity={pool}={gpus}" for pool, gpus in capacities.items()]
    code, out, _ = run(capsys, "-f", str(REPO / "crds" / "examples"), *flags, "-o", "json")
    assert code == 0
    pools = json.loads(out)["pools"]
    assert set(pools) == set(capacities)
    for name, answer in pools.items():
        shares = [t["fair_share"] for t in answer["tenants"].values()]
        assert sum(shares) <= capacities[name] + 1e-6
        for tenant in answer["tenants"].values():
            assert tenant["fair_share"] <= (tenant["limit"] or capacities[name]) + 1e-6


@pytest.mark.parametrize(
    ("objects", "argv", "expected"),
    [
        pytest.param(
            [gpu_pool("h100"), tenant_quota("team-a", pools=[pool_entry(guaranteed=40, limit=32)])],
            ["--capacity", "h100=64"],
            "TenantQuota team-a: spec.pools[0].guaranteed: must be <= limit (32)",
            id="invalid-object",
        ),
        pytest.param(
            two_teams(),
            ["--capacity", "h200=64"],
            "gpufair: --capacity h200: no GPUPool h200 in the input (h100)",
            id="unknown-pool-in-capacity",
        ),
        pytest.param(
            two_teams(),
            ["--capacity", "h100=64", "--demand", "team-c/h100=4"],
            "gpufair: --demand team-c/h100: no TenantQuota team-c in the input (team-a, team-b)",
            id="unknown-tenant-in-demand",
        ),
        pytest.param(
            two_teams(),
            ["--capacity", "h100=64", "--demand", "team-a/a100=4"],
            "gpufair: --demand team-a/a100: no GPUPool a100 in the input (h100)",
            id="unknown-pool-in-demand",
        ),
        pytest.param(
            [*two_teams(), gpu_pool("a100")],
            ["--capacity", "h100=64", "--demand", "team-a/a100=4"],
            "gpufair: --demand team-a/a100: TenantQuota team-a has no entry for pool a100",
            id="tenant-without-that-pool",
        ),
        pytest.param(
            two_teams(),
            [],
            "gpufair: no pool has a capacity: pass --capacity POOL=GPUS",
            id="no-capacity",
        ),
    ],
)
def test_bad_input_is_exit_2_with_a_message(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    objects: list[dict[str, Any]],
    argv: list[str],
    expected: str,
) -> None:
    fleet = write(tmp_path, *objects)
    code, out, err = run(capsys, "-f", fleet, *argv)
    assert code == 2
    assert out == ""
    assert expected in err.replace(f"{fleet}: ", "")
    if "spec." in expected:
        assert f"gpufair: {fleet}: {expected}" in err


def test_yaml_errors_name_the_file_and_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: gpufair.dev/v1alpha1\nkind: GPUPool\nspec: [unclosed\n")
    code, _, err = run(capsys, "-f", str(broken), "--capacity", "h100=1")
    assert code == 2
    assert err.startswith(f"gpufair: {broken}: line ")
    assert "invalid YAML" in err


def test_missing_file_is_exit_2(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-f", str(tmp_path / "nope.yaml"), "--capacity", "h100=1")
    assert code == 2
    assert "nope.yaml: cannot read" in err


@pytest.mark.parametrize(
    "flag",
    [
        pytest.param(["--capacity", "h100:64"], id="capacity-without-equals"),
        pytest.param(["--capacity", "h100=-1"], id="negative-capacity"),
        pytest.param(["--demand", "team-a=4"], id="demand-without-pool"),
        pytest.param(["--demand", "team-a/h100=many"], id="demand-not-a-number"),
    ],
)
def test_malformed_flags_are_usage_errors(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    fleet = write(tmp_path, *two_teams())
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["whatif", "-f", fleet, *flag])
    assert exit_info.value.code == 2
    assert "is not" in capsys.readouterr().err


def test_pools_without_capacity_are_skipped_with_a_note(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write(tmp_path, *two_teams(), gpu_pool("a100"))
    code, out, err = run(capsys, "-f", fleet, "--capacity", "h100=8", "-o", "json")
    assert code == 0
    assert list(json.loads(out)["pools"]) == ["h100"]
    assert "gpufair: note: pool a100 skipped: no --capacity a100=GPUS" in err
