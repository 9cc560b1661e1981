"""Start the stand-in API server (``e2e/standin``) as a separate localhost process.

Used by the ``apiserver`` fixture and usable from the demo::

    server = apiserver.start(workdir=pathlib.Path("/tmp/demo"))
    server.url, server.kubeconfig   # http://127.0.0.1:PORT, a kubeconfig file
    server.env()                    # {"KUBECONFIG": ...} for subprocesses
    server.stop()
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import time

from e2e.harness import processes


@dataclasses.dataclass
class StandInServer:
    component: processes.Component
    url: str
    kubeconfig: pathlib.Path

    def env(self) -> dict[str, str]:
        """What a subprocess needs to reach the stand-in (kubectl, kopf, the official client)."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    @property
    def log_path(self) -> pathlib.Path:
        return self.component.log_path

    def stop(self) -> int | None:
        return self.component.stop()


def start(*, workdir: pathlib.Path, kubelet: bool = True, timeout: float = 20.0) -> StandInServer:
    """Start ``python -m e2e.standin`` on a free port; returns once ``/readyz`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    url_file = workdir / "standin.url"
    kubeconfig = workdir / "kubeconfig"
    url_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "e2e.standin",
        "--port",
        "0",
        "--url-file",
        str(url_file),
        "--kubeconfig",
        str(kubeconfig),
    ]
    if not kubelet:
        argv.append("--no-kubelet")
    component = processes.start(
        argv,
        name="standin",
        log_dir=workdir,
        env={"PYTHONPATH": _pythonpath()},
        ready_log=r"standin: serving on ",
        ready_timeout=timeout,
        cwd=processes.REPO_ROOT,
    )
    deadline = time.monotonic() + timeout
    while not url_file.exists():
        if time.monotonic() > deadline:
            component.stop()
            raise processes.ComponentError(f"the stand-in wrote no URL to {url_file}")
        time.sleep(0.02)
    url = url_file.read_text().strip()
    component.ready_url = f"{url}/readyz"
    component.wait_ready()
    return StandInServer(component=component, url=url, kubeconfig=kubeconfig)


def _pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH")
    root = str(processes.REPO_ROOT)
    return f"{root}{os.pathsep}{existing}" if existing else root
