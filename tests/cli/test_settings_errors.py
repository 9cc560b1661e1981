"""An invalid ``GPUFAIR_*`` setting or flag is one usage error naming the flag and the variable.

In-process: the components' commands build their settings through
:func:`gpufair.cli.errors.invalid_settings`; the subprocess table in ``test_cli_errors.py``
covers the whole path for a few settings, this one every kind of mistake and every mapping.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import pydantic_settings
import pytest

from gpufair import cli
from gpufair.cli import errors
from gpufair.cli import extender as extender_cli
from gpufair.cli import operator as operator_cli
from gpufair.extender import settings as extender_settings
from gpufair.operator import settings as operator_settings


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in os.environ:
        if key.startswith("GPUFAIR_"):
            monkeypatch.delenv(key)


def subcommand_options(command: str) -> set[str]:
    """Every option string of ``gpufair COMMAND``."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        option for action in commands.choices[command]._actions for option in action.option_strings
    }


@pytest.mark.parametrize(
    ("command", "flags", "model"),
    [
        pytest.param(
            "operator", operator_cli._FLAGS, operator_settings.OperatorSettings, id="operator"
        ),
        pytest.param(
            "extender", extender_cli._FLAGS, extender_settings.ExtenderSettings, id="extender"
        ),
    ],
)
def test_each_flag_named_in_an_error_is_a_flag_of_the_command_and_sets_a_field(
    command: str, flags: dict[str, str], model: type[pydantic_settings.BaseSettings]
) -> None:
    assert set(flags) <= set(model.model_fields)
    assert set(flags.values()) <= subcommand_options(command)


def operator_settings_from(argv: list[str]) -> operator_settings.OperatorSettings:
    args = cli.build_parser().parse_args(["operator", *argv])
    return operator_cli.build_settings(args)


@pytest.mark.parametrize(
    ("environment", "argv", "names"),
    [
        pytest.param(
            {"GPUFAIR_METRICS_PORT": "70000"},
            [],
            ["invalid setting metrics_port", "--metrics-port", "GPUFAIR_METRICS_PORT", "70000"],
            id="port-out-of-range",
        ),
        pytest.param(
            {},
            ["--half-life", "0"],
            ["--half-life", "GPUFAIR_HALF_LIFE_SECONDS"],
            id="zero-half-life",
        ),
        pytest.param(
            {"GPUFAIR_STATUS_INTERVAL_SECONDS": "-1"},
            [],
            ["(GPUFAIR_STATUS_INTERVAL_SECONDS)", "greater than or equal to 0"],
            id="setting-without-a-flag",
        ),
        pytest.param(
            {"GPUFAIR_TICK_SECONDS": "soon", "GPUFAIR_WEBHOOK_PORT": "0"},
            [],
            ["GPUFAIR_TICK_SECONDS", "'soon'", "; ", "GPUFAIR_WEBHOOK_PORT", "--webhook-port"],
            id="two-bad-settings-on-one-line",
        ),
        pytest.param(
            {"GPUFAIR_DEV": "maybe"},
            [],
            ["GPUFAIR_DEV", "valid boolean"],
            id="not-a-boolean",
        ),
    ],
)
def test_an_invalid_operator_setting_is_one_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], argv: list[str], names: list[str]
) -> None:
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(errors.UsageError) as raised:
        operator_settings_from(argv)
    message = str(raised.value)
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("variable", "value", "names"),
    [
        pytest.param("GPUFAIR_STALENESS_SECONDS", "0", ["--staleness-bound"], id="zero-staleness"),
        pytest.param(
            "GPUFAIR_WATCH_TIMEOUT_SECONDS", "x", ["(GPUFAIR_WATCH_TIMEOUT_SECONDS)"], id="no-flag"
        ),
        pytest.param(
            "GPUFAIR_LOG_LEVEL", "verbose", ["--log-level", "debug, info"], id="log-level"
        ),
    ],
)
def test_an_invalid_extender_setting_is_one_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, names: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    args = cli.build_parser().parse_args(["extender"])
    with pytest.raises(errors.UsageError) as raised:
        extender_cli.run(args)
    message = str(raised.value)
    assert "\n" not in message
    for name in [variable, *names]:
        assert name in message


@pytest.mark.skipif(
    importlib.util.find_spec("certbuilder") is not None,
    reason="with certbuilder installed kopf self-signs a certificate",
)
def test_the_operator_refuses_a_webhook_without_certificate_before_anything_starts() -> None:
    config = operator_settings.OperatorSettings()
    with pytest.raises(
        errors.UsageError, match=r"--webhook-cert FILE and --webhook-key FILE.*--dev"
    ):
        operator_cli.check_webhook_certificate(config)
    operator_cli.check_webhook_certificate(operator_settings.OperatorSettings(dev=True))
