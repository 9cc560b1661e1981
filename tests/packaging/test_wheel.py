"""The image's install, reproduced: the wheel built and installed into a fresh venv as the
Dockerfile does, and every component able to start from it.

The Dockerfile copies ``pyproject.toml``, ``README.md`` and ``src`` into a build stage, runs
``pip wheel .`` and installs the wheels into a clean Python; :func:`installed` does the same in
a temporary directory (dependencies from pip's cache or PyPI, as the image build would get
them). What that catches that an editable install cannot: a module or data file missing from
the wheel, a runtime dependency only the test extra brought in, and matplotlib (the ``sim``
extra) creeping back into the runtime install.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE_COPIES = ("pyproject.toml", "README.md", "src")
COMPONENTS = ("operator", "extender", "agent", "crds", "whatif", "simulate", "topology")
INSTALL_TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class Install:
    venv: pathlib.Path

    @property
    def gpufair(self) -> str:
        return str(self.venv / "bin" / "gpufair")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _run(
    *argv: str, timeout: float = 60, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )


def _checked(*argv: str, timeout: float = INSTALL_TIMEOUT) -> None:
    result = _run(*argv, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(argv)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    root = tmp_path_factory.mktemp("image")
    context = root / "src-context"
    context.mkdir()
    for name in DOCKERFILE_COPIES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, context / name)
    wheels = root / "wheels"
    _checked(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        str(wheels),
        str(context),
    )
    (wheel,) = wheels.glob("gpufair-*.whl")
    venv = root / "venv"
    _checked(sys.executable, "-m", "venv", str(venv))
    _checked(
        str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)
    )
    return Install(venv)


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_help_runs_from_the_wheel(installed: Install, component: str) -> None:
    result = _run(installed.gpufair, component, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: gpufair {component}")


def test_every_module_imports_without_the_test_or_sim_extras(installed: Install) -> None:
    """``--help`` alone imports little (the CLI imports components lazily); this imports every
    module but ``__main__`` (it runs the CLI) and the demo's (it runs from a checkout with the
    test extras, see :func:`test_the_demo_says_it_needs_a_checkout`)."""
    script = (
        "import importlib, pkgutil, gpufair\n"
        "failed = []\n"
        "for module in pkgutil.walk_packages(gpufair.__path__, 'gpufair.'):\n"
        "    if module.name.endswith('.__main__') or module.name.startswith('gpufair.demo.'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(module.name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{module.name}: {error!r}')\n"
        "print('\\n'.join(failed))\n"
    )
    result = _run(installed.python, "-c", script, cwd=installed.venv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_runtime_install_has_no_matplotlib(installed: Install) -> None:
    result = _run(installed.python, "-c", "import matplotlib", cwd=installed.venv)
    assert result.returncode != 0
    assert "No module named 'matplotlib'" in result.stderr


def test_simulate_without_matplotlib_names_the_extra(
    installed: Install, tmp_path: pathlib.Path
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,submit_time\n")
    result = _run(installed.gpufair, "simulate", "--trace", str(trace), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpufair simulate: plots need matplotlib, which comes with the 'sim' extra: "
        "pip install 'gpufair[sim]' (or pass --no-plots)"
    ]


def test_the_demo_says_it_needs_a_checkout(installed: Install) -> None:
    result = _run(installed.gpufair, "demo", cwd=installed.venv)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "make demo" in line
