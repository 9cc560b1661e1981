"""The image's install, reproduced: the wheel built and installed into a fresh venv as the
Dockerfile does (:mod:`tests.packaging.wheel`), and every component able to start from it.

What that catches that an editable install cannot: a module or data file missing from
the wheel, a runtime dependency only the test extra brought in, and matplotlib (the ``sim``
extra) creeping back into the runtime install.
"""

from __future__ import annotations

import pathlib

import pytest
from tests.packaging import wheel
from tests.packaging.wheel import Install

COMPONENTS = ("operator", "extender", "agent", "crds", "whatif", "simulate", "topology")
DEMO_EXTRA_PACKAGES = ("gpufair.demo.", "gpufair.standin.")
"""Modules that need the ``demo`` extra (kmock, httpx): the stand-in cluster and the demo."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    root = tmp_path_factory.mktemp("image")
    return wheel.install(root, str(wheel.build(root)))


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_help_runs_from_the_wheel(installed: Install, component: str) -> None:
    result = wheel.run(installed.gpufair, component, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: gpufair {component}")


def test_every_module_imports_without_the_test_or_sim_extras(installed: Install) -> None:
    """``--help`` alone imports little (the CLI imports components lazily); this imports every
    module but ``__main__`` (it runs the CLI) and those that need the ``demo`` extra (see
    :func:`test_the_demo_without_its_extra_names_the_extra`; ``e2e/test_demo.py`` runs the demo
    from the wheel with the extra)."""
    script = (
        "import importlib, pkgutil, gpufair\n"
        "failed = []\n"
        "for module in pkgutil.walk_packages(gpufair.__path__, 'gpufair.'):\n"
        f"    skipped = module.name.startswith({DEMO_EXTRA_PACKAGES})\n"
        "    if module.name.endswith('.__main__') or skipped:\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(module.name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{module.name}: {error!r}')\n"
        "print('\\n'.join(failed))\n"
    )
    result = wheel.run(installed.python, "-c", script, cwd=installed.venv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_runtime_install_has_no_matplotlib(installed: Install) -> None:
    result = wheel.run(installed.python, "-c", "import matplotlib", cwd=installed.venv)
    assert result.returncode != 0
    assert "No module named 'matplotlib'" in result.stderr


def test_simulate_without_matplotlib_names_the_extra(
    installed: Install, tmp_path: pathlib.Path
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,submit_time\n")
    result = wheel.run(
        installed.gpufair, "simulate", "--trace", str(trace), "-o", str(tmp_path / "out")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpufair simulate: plots need matplotlib, which comes with the 'sim' extra: "
        "pip install 'gpufair[sim]' (or pass --no-plots)"
    ]


def test_the_demo_without_its_extra_names_the_extra(installed: Install) -> None:
    result = wheel.run(installed.gpufair, "demo", cwd=installed.venv)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "gpufair demo: needs the demo extra (httpx, kmock missing):"
        " pip install 'gpufair[demo]' (in a checkout: make demo)"
    )


def test_the_runtime_install_has_no_stand_in_dependencies(installed: Install) -> None:
    result = wheel.run(installed.python, "-c", "import kmock", cwd=installed.venv)
    assert result.returncode != 0
    assert "No module named 'kmock'" in result.stderr
