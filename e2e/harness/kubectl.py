"""``kubectl`` against the stand-in, as a callable: ``kubectl("get", "pods", "-A")``.

kubectl is the machine's (``/usr/bin/kubectl``; ``scripts/ensure-tools.sh`` installs it where
missing). Each call gets the stand-in's kubeconfig and a private discovery cache directory, so
nothing is read from or written to the user's ``~/.kube``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any


class KubectlError(RuntimeError):
    def __init__(self, args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited with {result.returncode}\n"
            f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}"
        )
        self.result = result


def find_binary() -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        raise FileNotFoundError(
            "kubectl is not installed; run scripts/ensure-tools.sh (make tools) to install it"
        )
    return binary


class Kubectl:
    """Run kubectl with the stand-in's kubeconfig; raises :class:`KubectlError` on failure."""

    def __init__(self, *, kubeconfig: pathlib.Path, cache_dir: pathlib.Path) -> None:
        self.binary = find_binary()
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            self.binary,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**_base_env(), **(env or {})},
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result)
        return result

    def json(self, *args: str) -> Any:
        """``kubectl ARGS -o json``, parsed."""
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str | pathlib.Path, *extra: str) -> str:
        """``kubectl apply -f`` a file or a YAML text; returns kubectl's output."""
        if isinstance(manifest, pathlib.Path):
            return self("apply", "-f", str(manifest), *extra).stdout
        return self("apply", "-f", "-", *extra, input=manifest).stdout


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # the --kubeconfig flag decides
    return env
