"""Start the stand-in Kubernetes API server (:mod:`gpufair.standin.apiserver`) as a separate
localhost process: ``python -m gpufair.standin.apiserver``, with the interpreter running this
code, so it works from a checkout and from an installed wheel (``gpufair[demo]``) alike.

``gpufair demo`` and the e2e suite (``e2e/harness/apiserver.py`` adds the chart's RBAC) both
start it here::

    server = launch.start(workdir=pathlib.Path("/tmp/demo"))
    server.url, server.kubeconfig   # http://127.0.0.1:PORT, a kubeconfig file
    server.env()                    # {"KUBECONFIG": ...} for subprocesses (the admin)
    server.env("operator")          # the same as the operator's identity (apiserver/identity.py)
    server.stop()
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

from gpufair.standin import processes

ADMIN = "admin"
"""The identity of the admin's kubeconfig (the others are named after the components)."""
ADMIN_USER = "kubernetes-admin"
"""The username the stand-in gives the admin's token (``gpufair/standin/apiserver/identity.py``)."""


@dataclasses.dataclass
class StandInServer:
    component: processes.Component
    url: str
    kubeconfig: pathlib.Path

    audit_log: pathlib.Path | None = None

    def env(self, identity: str = ADMIN) -> dict[str, str]:
        """What a subprocess needs to reach the stand-in (kubectl, kopf, the official client)
        as ``identity``: ``admin``, or a component (``operator``, ``extender``, ``agent``,
        ``scheduler``) whose calls the stand-in records under that component's user."""
        return {"KUBECONFIG": str(self.kubeconfig_of(identity))}

    def kubeconfig_of(self, identity: str) -> pathlib.Path:
        """The kubeconfig of ``identity``, which the stand-in wrote beside the admin's."""
        if identity == ADMIN:
            return self.kubeconfig
        return self.kubeconfig.with_name(f"{self.kubeconfig.name}.{identity}")

    @property
    def log_path(self) -> pathlib.Path:
        return self.component.log_path

    def stop(self) -> int | None:
        return self.component.stop()


def start(
    *,
    workdir: pathlib.Path,
    kubelet: bool = True,
    quiet: bool = False,
    timeout: float = 20.0,
    audit_log: pathlib.Path | None = None,
    rbac: pathlib.Path | None = None,
    bookmark_seconds: float | None = None,
    watch_events: int | None = None,
) -> StandInServer:
    """Start ``python -m gpufair.standin.apiserver`` on a free port; returns once ``/readyz``
    answers.
    With ``audit_log`` the stand-in records there who made which call; with ``rbac`` (YAML of
    roles and bindings) it refuses the components' calls they do not allow. ``bookmark_seconds``
    and ``watch_events``: how often quiet watches get a BOOKMARK, how many events per resource a
    watch can resume from (fault tests make both small)."""
    workdir.mkdir(parents=True, exist_ok=True)
    url_file = workdir / "standin.url"
    kubeconfig = workdir / "kubeconfig"
    url_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "gpufair.standin.apiserver",
        "--port",
        "0",
        "--url-file",
        str(url_file),
        "--kubeconfig",
        str(kubeconfig),
    ]
    if not kubelet:
        argv.append("--no-kubelet")
    if quiet:
        argv.append("--quiet")
    if audit_log is not None:
        argv += ["--audit-log", str(audit_log)]
    if rbac is not None:
        argv += ["--rbac", str(rbac)]
    if bookmark_seconds is not None:
        argv += ["--bookmark-seconds", str(bookmark_seconds)]
    if watch_events is not None:
        argv += ["--watch-events", str(watch_events)]
    component = processes.prepare(
        argv,
        name="standin",
        log_dir=workdir,
        ready_log=r"standin: serving on ",
        ready_timeout=timeout,
    )
    try:  # whatever interrupts the start (Ctrl-C included) leaves no process behind
        component.start()
        deadline = time.monotonic() + timeout
        while not url_file.exists():
            if time.monotonic() > deadline:
                raise processes.ComponentError(f"the stand-in wrote no URL to {url_file}")
            time.sleep(0.02)
        url = url_file.read_text().strip()
        component.ready_url = f"{url}/readyz"
        component.wait_ready()
    except BaseException:
        component.stop()
        raise
    return StandInServer(component=component, url=url, kubeconfig=kubeconfig, audit_log=audit_log)
