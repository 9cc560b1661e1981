"""``gpufair operator``: flags over ``GPUFAIR_*`` environment, bad settings are usage errors."""

from __future__ import annotations

import pytest

from gpufair import cli
from gpufair.cli import operator as operator_cli
from gpufair.operator import settings


def settings_for(argv: list[str]) -> settings.OperatorSettings:
    args = cli.build_parser().parse_args(["operator", *argv])
    return operator_cli.build_settings(args)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFAIR_METRICS_PORT", "9100")
    monkeypatch.setenv("GPUFAIR_TICK_SECONDS", "7")
    config = settings_for(["--metrics-port", "9200", "-n", "team-a", "-n", "team-b"])
    assert config.metrics_port == 9200
    assert config.tick_seconds == 7.0
    assert config.namespaces == ("team-a", "team-b")
    assert not config.clusterwide


@pytest.mark.parametrize(
    ("argv", "standalone", "peering"),
    [
        pytest.param([], False, "gpufair", id="default-peering"),
        pytest.param(["--peering", "gpu"], False, "gpu", id="named-peering"),
        pytest.param(["--standalone"], True, None, id="standalone"),
        pytest.param(["--dev"], True, "gpufair", id="dev-is-standalone"),
    ],
)
def test_peering_choices(argv: list[str], standalone: bool, peering: str | None) -> None:
    config = settings_for(argv)
    assert config.standalone is standalone
    assert config.peering == peering


def test_invalid_settings_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["operator", "--tick", "-1"]) == 2
    assert "tick_seconds" in capsys.readouterr().err
