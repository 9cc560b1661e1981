"""Build the project's wheel as the Dockerfile does and install it into a fresh venv.

The Dockerfile copies ``pyproject.toml``, ``README.md`` and ``src`` into a build stage, runs
``pip wheel .`` and installs the wheels into a clean Python; :func:`build` and :func:`install`
do the same in a temporary directory (dependencies from pip's cache or PyPI, as the image build
would get them). ``tests/packaging/test_wheel.py`` checks the runtime install (no extras);
``e2e/test_demo.py`` runs ``gpufair demo`` from a wheel installed with the ``demo`` extra.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE_COPIES = ("pyproject.toml", "README.md", "src")
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


def clean_env() -> dict[str, str]:
    """This process's environment without what would let the checkout leak into the venv."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def run(
    *argv: str, timeout: float = 60, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=clean_env()
    )


def checked(*argv: str, timeout: float = INSTALL_TIMEOUT) -> None:
    result = run(*argv, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(argv)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


def build(root: pathlib.Path) -> pathlib.Path:
    """The wheel built from a copy of what the Dockerfile copies; returns its path."""
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
    checked(
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
    return wheel


def install(root: pathlib.Path, requirement: str) -> Install:
    """A fresh venv in ``root/venv`` with ``requirement`` (the wheel's path, with extras in
    brackets if any) installed."""
    venv = root / "venv"
    checked(sys.executable, "-m", "venv", str(venv))
    checked(
        str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement
    )
    return Install(venv)
