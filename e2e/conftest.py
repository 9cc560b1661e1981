"""Fixtures of the end-to-end suite: a stand-in cluster and real component processes.

Session-wide: ``apiserver`` (the stand-in, ``python -m gpufair.standin.apiserver`` on a free port),
``kubeconfig`` (its file; also exported as ``KUBECONFIG``), ``kubectl`` (callable),
``k8s`` (the official client), ``apply_crds`` (``kubectl apply -f crds/*.yaml``).
Per test: ``namespace`` (a fresh namespace, deleted afterwards), ``make_gpu_node`` (nodes from
real topology captures, deleted afterwards), ``run_component`` (``gpufair SUBCOMMAND`` as a
subprocess) and ``run_process`` (any command), stopped afterwards; ``cleanup`` (deletes what a
scenario applied). Per module: ``stack`` (the real operator and extender of the scenario tests).

When a test fails, the tail of every log it used (the stand-in's, and each component's) is
added to the report; all logs stay under the session's temporary directory (the path is printed
in the report header).

``KUBECONFIG`` must be set before ``kubernetes`` is imported, because the official client reads
the variable once, at import time, for ``load_kube_config()``'s default; kopf's login relies on
that default. Subprocesses get it in their environment; in this process the ``apiserver``
fixture sets the variable and also updates the client's already-imported default.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from e2e.harness import apiserver as apiserver_mod
from e2e.harness import kubectl as kubectl_mod
from e2e.harness import nodes, processes, scenario

REPO_ROOT = processes.REPO_ROOT
pytest_plugins = ("e2e.harness.rbac_audit",)  # the RBAC proof runs after every other e2e test
_COMPONENT_IDENTITIES = (
    "operator",
    "extender",
    "agent",
)  # gpufair.standin.apiserver.identity
_LOGS = pytest.StashKey[dict[str, pathlib.Path]]()
_NO_LOGS: dict[str, pathlib.Path] = {}
_SESSION_LOGS: dict[str, pathlib.Path] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        own: dict[str, pathlib.Path] = item.stash.get(_LOGS, _NO_LOGS)
        logs = {**_SESSION_LOGS, **own}
        for name, path in logs.items():
            report.sections.append((f"log of {name} ({path})", processes.tail(path, 80)))


def _register_log(node: pytest.Item | None, name: str, path: pathlib.Path) -> None:
    if node is None:
        _SESSION_LOGS[name] = path
    else:
        node.stash.setdefault(_LOGS, {})[name] = path


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The session's directory for logs, kubeconfig and kubectl's cache."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def apiserver(e2e_workdir: pathlib.Path) -> Iterator[apiserver_mod.StandInServer]:
    """The stand-in API server process (one per session), stopped at the end."""
    server = apiserver_mod.start(workdir=e2e_workdir / "standin")
    _register_log(None, "standin", server.log_path)
    _export_kubeconfig(server.kubeconfig)
    yield server
    server.stop()


def _export_kubeconfig(path: pathlib.Path) -> None:
    os.environ["KUBECONFIG"] = str(path)
    kube_config = sys.modules.get("kubernetes.config.kube_config")
    if kube_config is not None:  # imported already: its default location is stale
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def kubeconfig(apiserver: apiserver_mod.StandInServer) -> pathlib.Path:
    return apiserver.kubeconfig


@pytest.fixture(scope="session")
def kubectl(kubeconfig: pathlib.Path, e2e_workdir: pathlib.Path) -> kubectl_mod.Kubectl:
    """``kubectl(*args, input=None, check=True)``; ``.json(*args)``; ``.apply(path_or_yaml)``."""
    return kubectl_mod.Kubectl(kubeconfig=kubeconfig, cache_dir=e2e_workdir / "kubectl-cache")


@dataclasses.dataclass(frozen=True)
class Clients:
    """The official client, configured for the stand-in, with the APIs the suite uses."""

    api_client: Any
    core: Any  # kubernetes.client.CoreV1Api
    custom: Any  # CustomObjectsApi
    apiextensions: Any  # ApiextensionsV1Api
    coordination: Any  # CoordinationV1Api
    policy: Any  # PolicyV1Api
    events: Any  # EventsV1Api


@pytest.fixture(scope="session")
def k8s(kubeconfig: pathlib.Path) -> Iterator[Clients]:
    import kubernetes

    api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    yield Clients(
        api_client=api_client,
        core=kubernetes.client.CoreV1Api(api_client),
        custom=kubernetes.client.CustomObjectsApi(api_client),
        apiextensions=kubernetes.client.ApiextensionsV1Api(api_client),
        coordination=kubernetes.client.CoordinationV1Api(api_client),
        policy=kubernetes.client.PolicyV1Api(api_client),
        events=kubernetes.client.EventsV1Api(api_client),
    )
    api_client.close()


@pytest.fixture
def namespace(kubectl: kubectl_mod.Kubectl) -> Iterator[str]:
    """A fresh namespace for one test; deleted (with everything in it) afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def apply_crds(kubectl: kubectl_mod.Kubectl) -> Callable[..., list[str]]:
    """``apply_crds(directory=REPO_ROOT / "crds")``: apply every CRD YAML there, return names."""

    def apply(directory: pathlib.Path = REPO_ROOT / "crds") -> list[str]:
        files = sorted(p for p in directory.glob("*.yaml") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no CRD YAML in {directory} (generate with `make crds`)")
        applied: list[str] = []
        for path in files:
            kubectl.apply(path)
            for line in kubectl("get", "-f", str(path), "-o", "name").stdout.split():
                applied.append(line.split("/", 1)[-1])
        return applied

    return apply


@pytest.fixture
def make_gpu_node(k8s: Clients) -> Iterator[Callable[..., dict[str, Any]]]:
    """``make_gpu_node(name, capture_file, **options)``: create a Node (see ``harness.nodes``)."""
    created: list[str] = []

    def make(name: str, capture: str | pathlib.Path, **options: Any) -> dict[str, Any]:
        body = nodes.gpu_node(name, capture, **options)
        k8s.core.create_node(body)
        created.append(name)
        result: dict[str, Any] = k8s.api_client.sanitize_for_serialization(k8s.core.read_node(name))
        return result

    yield make
    for name in created:
        try:
            k8s.core.delete_node(name)
        except Exception as exc:  # already deleted by the test
            if getattr(exc, "status", None) != 404:
                raise


@pytest.fixture
def run_process(
    request: pytest.FixtureRequest,
    apiserver: apiserver_mod.StandInServer,
    e2e_workdir: pathlib.Path,
) -> Iterator[Callable[..., processes.Component]]:
    """``run_process(argv, name=..., ready_url=..., ready_log=..., env=...)``: any command.

    The process gets ``KUBECONFIG`` for the stand-in; it is stopped (SIGTERM, then SIGKILL) when
    the test ends, and its log is shown if the test fails.
    """
    started: list[processes.Component] = []
    log_dir = e2e_workdir / "logs" / request.node.name[:80]

    def run(
        argv: Sequence[str],
        *,
        name: str | None = None,
        ready_url: str | None = None,
        ready_log: str | None = None,
        ready_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> processes.Component:
        label = name or pathlib.Path(argv[0]).name
        if any(c.name == label for c in started):
            label = f"{label}-{len(started)}"
        component = processes.Component(
            name=label,
            argv=tuple(argv),
            log_path=log_dir / f"{label}.log",
            env={**os.environ, "PYTHONUNBUFFERED": "1", **apiserver.env(), **(env or {})},
            cwd=REPO_ROOT,
            ready_url=ready_url,
            ready_log=ready_log,
            ready_timeout=ready_timeout,
        )
        _register_log(request.node, label, component.log_path)
        started.append(component)
        return component.start()

    yield run
    for component in reversed(started):
        component.stop()


@pytest.fixture
def run_component(
    run_process: Callable[..., processes.Component],
    apiserver: apiserver_mod.StandInServer,
) -> Callable[..., processes.Component]:
    """``run_component(["operator", "--port", "8081"], ready_url="http://.../healthz")``.

    Runs ``gpufair ARGS`` (the console script of this environment) like ``run_process``; the
    operator, extender and agent call the stand-in as their own identity (its kubeconfig,
    unless ``env`` names another), so the RBAC proof sees their calls.
    """

    def run(args: Sequence[str], **options: Any) -> processes.Component:
        options.setdefault("name", f"gpufair-{args[0]}" if args else "gpufair")
        if args and args[0] in _COMPONENT_IDENTITIES:
            options["env"] = {**apiserver.env(args[0]), **(options.get("env") or {})}
        return run_process([*processes.gpufair_command(), *args], **options)

    return run


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    apiserver: apiserver_mod.StandInServer,
    kubectl: kubectl_mod.Kubectl,
    apply_crds: Callable[..., list[str]],
    e2e_workdir: pathlib.Path,
) -> Iterator[scenario.Stack]:
    """The module's ``gpufair operator`` and ``gpufair extender`` (:func:`scenario.start_stack`),
    shared by its tests; a module changes the options with ``STACK_OPTIONS = {...}``."""
    apply_crds()
    options: dict[str, Any] = getattr(request.module, "STACK_OPTIONS", {})
    log_dir = e2e_workdir / "logs" / request.module.__name__.rsplit(".", 1)[-1]
    with scenario.start_stack(
        apiserver=apiserver, kubectl=kubectl, log_dir=log_dir, **options
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def _stack_logs(request: pytest.FixtureRequest) -> None:
    """A failing test that uses ``stack`` shows the tails of the components' logs."""
    if "stack" in request.fixturenames:
        scenario.attach_logs(request, request.getfixturevalue("stack"))


@pytest.fixture
def cleanup(kubectl: kubectl_mod.Kubectl, k8s: Any) -> Iterator[scenario.Cleanup]:
    """Deletes what a scenario applied or created through it, at the end of the test."""
    with scenario.Cleanup(kubectl, k8s) as created:
        yield created
