"""``gpufair demo``: the whole system on a laptop, with a burst of GPU jobs from three tenants.

What runs (every piece but the scheduler driver is its own process, logs in the work dir):

    stand-in API server   python -m gpufair.standin.apiserver
                                                         kmock + gpufair.standin; kubelet emulated
    gpufair operator      gpufair operator --webhook-…   quotas, pools, metering, admission,
                                                         reclaim; the admission webhook (HTTPS)
    gpufair extender      gpufair extender               filter, prioritize, preempt, bind
    GPU nodes             python -m gpufair.standin.gpunodes
                                                         per node: kubelet's device manager,
                                                         NVIDIA's plugin (fake NVML), the agent's
                                                         device-plugin proxy and PodResources
                                                         reconciler (gpufair.dev/gpus-confirmed)
    scheduler driver      a thread of this process       kube-scheduler's calls to the extender
    this process          the admin and the workload     applies CRDs, nodes, pool, quotas;
                                                         submits pods; finishes them after their
                                                         simulated run time; shows the picture

The demo creates pods as a user would (no scheduler name, no gate): the operator's real
admission webhook, served over HTTPS with a certificate made by ``openssl``
(:mod:`gpufair.standin.webhook`, shared with the e2e scenarios), sends them to gpufair's scheduler
behind the admission gate. Without ``openssl`` (or with ``--no-webhook``) the operator runs with
``--dev`` (no webhook) and the demo creates its pods as the webhook would leave them.
Ctrl-C (or SIGTERM) stops everything: the driver thread, then the operator and the extender,
then the stand-in; each gets SIGTERM, then SIGKILL after 10 s.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import enum
import json
import logging
import pathlib
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client import parser as prometheus_parser
from rich.console import Console
from rich.live import Live

from gpufair import captures
from gpufair.api import crdgen, names
from gpufair.core import topology
from gpufair.demo import cluster, tracker, view, workload
from gpufair.standin import gpunodes, kube, launch, processes, scheduler, webhook

logger = logging.getLogger("gpufair.demo")

REFRESH_SECONDS = 0.5
PLAIN_EVERY_SECONDS = 5.0
RESUBMIT_DELAY_SECONDS = 1.0  # a Job controller recreating an evicted pod
STATUS_EVERY_SECONDS = 1.0
WIDE_GPUS = 8  # the summary says how many pods of this size (a whole island) got one island


@dataclasses.dataclass(frozen=True)
class Options:
    duration: float = 75.0
    live: bool = True
    keep_running: bool = False
    workdir: pathlib.Path | None = None
    topology_dir: pathlib.Path | None = None
    """The ``nvidia-smi topo -m`` captures of the demo's nodes (default: ``../shared/data/topology``
    beside a checkout, see :func:`gpufair.captures.default_dir`)."""
    seed: int = 7
    summary_json: pathlib.Path | None = None
    tick: float = 1.0
    webhook: bool = True
    """Run the operator's admission webhook (falls back to ``--dev`` without ``openssl``)."""


class AdmissionMode(enum.StrEnum):
    WEBHOOK = "webhook"  # the operator's webhook gates the pods the demo creates as a user
    DEV = "dev"  # ``operator --dev``: the demo creates its pods already gated


class SetupError(RuntimeError):
    """Something the demo needs is missing or did not start; the message says what and where."""


@dataclasses.dataclass
class _Cluster:
    standin: launch.StandInServer
    api: kube.Api
    operator_metrics: str
    extender_url: str


class Demo:
    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.components: list[processes.Component] = []
        self.cluster: _Cluster | None = None
        self.tracker: tracker.Tracker | None = None
        self.workdir: pathlib.Path | None = None
        self.own_workdir = False
        self.stop_driver = threading.Event()
        self.driver_thread: threading.Thread | None = None
        self.binds: queue.Queue[tuple[str, str, float]] = queue.Queue()
        self.started_at = 0.0
        self.last_frame: view.Frame | None = None
        self.quotas: dict[str, dict[str, Any]] = {}
        self.pool: dict[str, Any] = {}
        self.preemptions: dict[str, int] = {}
        self.topologies: dict[str, topology.NodeTopology] = {}
        self.tenants = cluster.tenants()
        self.jobs: list[workload.Job] = []
        self.submitted = 0
        self.admission = AdmissionMode.WEBHOOK if options.webhook else AdmissionMode.DEV
        self.gated_by_webhook = 0  # created without the gate, answered with it
        self.webhook_port = 0

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        topology_dir = self.options.topology_dir or captures.default_dir()
        for spec in cluster.NODES:
            self.topologies[spec.name] = captures.load(cluster.capture_path(topology_dir, spec))
        if self.options.workdir is not None:
            self.workdir = self.options.workdir.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="gpufair-demo-"))
            self.own_workdir = True
        self._log_to(self.workdir / "demo.log")
        say = self._say
        say(f"[bold]gpufair demo[/] — work dir {self.workdir} (every process logs there)")

        server = launch.start(workdir=self.workdir, quiet=True)
        self.components.append(server.component)
        api = kube.Api(server.url)
        say(f"  stand-in API server  {server.url}   KUBECONFIG={server.kubeconfig}")
        self._apply(api)
        self._start_gpu_nodes(server, topology_dir)
        env = {**server.env(), "GPUFAIR_STATUS_INTERVAL_SECONDS": "2"}
        extender_port, metrics_port = processes.free_port(), processes.free_port()
        admission_args = self._admission_arguments()
        extender_url = f"http://127.0.0.1:{extender_port}"
        operator_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        self._start(
            "extender",
            ["extender", "--host", "127.0.0.1", "--port", str(extender_port)],
            env=env,
            ready_url=f"{extender_url}/readyz",
            cwd=self.workdir,
        )
        self._start(
            "operator",
            [
                "operator",
                *admission_args,
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(metrics_port),
                "--tick",
                str(self.options.tick),
            ],
            # Every demo component calls the stand-in as its admin, so the webhook must let
            # that user write gpufair's annotations (bind's gpufair.dev/gpus, ...).
            env={**env, "GPUFAIR_TRUSTED_USERS": json.dumps([launch.ADMIN_USER])},
            ready_url=operator_metrics,
            cwd=self.workdir,
        )
        self.cluster = _Cluster(server, api, operator_metrics, extender_url)
        if self.admission is AdmissionMode.WEBHOOK:
            with self.console.status("waiting for the operator's webhook to be registered"):
                webhook.wait_registered(
                    lambda: self._webhook_configuration(api), timeout=60.0, check=self._check_alive
                )
            say(
                f"  admission webhook    https://{webhook.HOST}:{self.webhook_port}"
                f" (MutatingWebhookConfiguration {webhook.CONFIGURATION})"
            )
        else:
            say("  admission webhook    none (operator --dev): pods are created already gated")
        say(f"  operator /metrics    {operator_metrics}")
        say(f"  extender /metrics    {extender_url}/metrics")
        with self.console.status("waiting for the operator's first pass over the pool"):
            self._wait_pool_status(api, timeout=60.0)
        self.tracker = tracker.Tracker(tenants=self.tenants, topologies=self.topologies)
        self._start_driver(server.url, extender_url)

    def _start_gpu_nodes(self, server: launch.StandInServer, topology_dir: pathlib.Path) -> None:
        """kubelet's device manager, NVIDIA's plugin and the agent's proxy and reconciler for
        every node, in one process (:mod:`gpufair.standin.gpunodes`), as the agent."""
        assert self.workdir is not None
        argv = [sys.executable, "-m", "gpufair.standin.gpunodes", "--api-url", server.url]
        for spec in cluster.NODES:
            argv.append(f"--node={spec.name}={cluster.capture_path(topology_dir, spec)}")
        component = processes.prepare(
            argv,
            name="gpunodes",
            log_dir=self.workdir,
            env=server.env("agent"),
            ready_log=gpunodes.READY_LINE,
            ready_timeout=60.0,
            cwd=self.workdir,
        )
        self.components.append(component)
        with self.console.status("starting the GPU nodes' kubelet device managers and agents"):
            component.start()
        self._say(
            "  GPU nodes            kubelet's device manager, NVIDIA's plugin and the agent's"
            " device-plugin proxy and PodResources reconciler per node (gpunodes.log)"
        )

    def _admission_arguments(self) -> list[str]:
        """The operator's flags: its webhook over HTTPS, or ``--dev`` when that cannot be."""
        assert self.workdir is not None
        if self.admission is AdmissionMode.WEBHOOK:
            try:
                cert, key = webhook.self_signed_certificate(self.workdir / "tls")
            except webhook.CertificateError as exc:
                self._say(
                    f"  note: {exc}; running the operator with --dev (no webhook), the demo"
                    " creates its pods already gated"
                )
                self.admission = AdmissionMode.DEV
            else:
                self.webhook_port = processes.free_port()
                return webhook.operator_arguments(cert=cert, key=key, port=self.webhook_port)
        return ["--dev"]

    @staticmethod
    def _webhook_configuration(api: kube.Api) -> dict[str, Any] | None:
        try:
            return api.get(webhook.CONFIGURATION_PATH)
        except kube.ApiError:  # not written yet (404)
            return None

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def _log_to(self, path: pathlib.Path) -> None:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        demo_logger = logging.getLogger("gpufair.demo")
        demo_logger.addHandler(handler)
        demo_logger.setLevel(logging.INFO)
        demo_logger.propagate = False

    def _start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str],
        ready_url: str,
        cwd: pathlib.Path,
    ) -> processes.Component:
        assert self.workdir is not None
        component = processes.prepare(
            [*processes.gpufair_command(), *args],
            name=name,
            log_dir=self.workdir,
            env=env,
            ready_url=ready_url,
            ready_timeout=60.0,
            cwd=cwd,
        )
        self.components.append(component)  # before start: Ctrl-C during the wait stops it too
        with self.console.status(f"starting gpufair {name}"):
            component.start()
        return component

    def _apply(self, api: kube.Api) -> None:
        crds = api.create_crds(crdgen.definitions())
        api.wait_served(kube.POOLS_PATH)
        api.wait_served(kube.QUOTAS_PATH)
        for tenant in self.tenants:
            api.create("/api/v1/namespaces", {"metadata": {"name": tenant.namespace}})
        shapes = []
        for spec in cluster.NODES:
            topo = self.topologies[spec.name]
            api.create("/api/v1/nodes", cluster.node_object(spec, topo))
            shapes.append(f"{spec.name} ({spec.shape}, {cluster.describe_islands(topo)})")
        for obj in cluster.objects():
            path = kube.POOLS_PATH if obj["kind"] == names.GPU_POOL_KIND else kube.QUOTAS_PATH
            api.create(path, obj)
        self._say(f"  CRDs                 {', '.join(crds)}")
        self._say(f"  nodes                {', '.join(shapes)}")
        self._say(
            "  tenants              "
            + ", ".join(
                f"{t.name} (weight {t.weight:g}, guaranteed {t.guaranteed},"
                f" limit {t.limit if t.limit is not None else 'pool'})"
                for t in self.tenants
            )
        )

    def _wait_pool_status(self, api: kube.Api, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        capacity = sum(len(topo.gpus) for topo in self.topologies.values())
        while time.monotonic() < deadline:
            self._check_alive()
            status = api.get(f"{kube.POOLS_PATH}/{cluster.POOL}").get("status") or {}
            if status.get("capacity") == capacity:
                return
            time.sleep(0.2)
        raise SetupError(
            f"the operator reported no capacity for pool {cluster.POOL} within {timeout:.0f} s;"
            f" see {self.workdir}/operator.log"
        )

    def _start_driver(self, api_url: str, extender_url: str) -> None:
        driver = scheduler.SchedulerDriver(api_url=api_url, extender_url=extender_url)

        def record(attempt: scheduler.Attempt) -> None:
            if attempt.node is not None:
                self.binds.put((attempt.pod, attempt.node, time.monotonic()))

        def loop() -> None:
            with driver:
                while not self.stop_driver.is_set():
                    try:
                        for attempt in driver.schedule_pending():
                            record(attempt)
                    except Exception:  # the API server is going away, or a driver bug: go on
                        logger.exception("scheduling cycle failed")
                    self.stop_driver.wait(0.2)

        self.driver_thread = threading.Thread(target=loop, name="scheduler-driver", daemon=True)
        self.driver_thread.start()

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.running():
                raise SetupError(
                    f"{component.name} exited unexpectedly; log {component.log_path}:\n"
                    + processes.tail(component.log_path, 20)
                )

    # ------------------------------------------------------------------ the burst

    def play(self) -> None:
        assert self.cluster is not None
        assert self.tracker is not None
        duration = self.options.duration
        self.jobs = workload.plan(duration, seed=self.options.seed)
        pending = collections.deque(self.jobs)
        resubmits: list[tuple[float, workload.Job]] = []
        self.started_at = time.monotonic()
        self._say(
            f"  burst                {len(self.jobs)} jobs of 1, 2, 4 and 8 GPUs over"
            f" {duration:.0f} s; Ctrl-C stops everything"
        )
        next_status = next_plain = 0.0
        with self._display() as show:
            while True:
                now = self._now()
                if now >= duration:
                    break
                while pending and pending[0].submit_at <= now:
                    self._submit(pending.popleft(), name=None)
                for due, job in [item for item in resubmits if item[0] <= now]:
                    resubmits.remove((due, job))
                    self._submit(job, name=self.tracker.resubmit_name(job))
                for record in self._observe():
                    resubmits.append((now + RESUBMIT_DELAY_SECONDS, record.job))
                if now >= next_status:
                    self._read_statuses()
                    next_status = now + STATUS_EVERY_SECONDS
                frame = self._frame()
                if self.options.live:
                    show(frame)
                elif now >= next_plain:
                    for line in view.plain_lines(frame):
                        self.console.print(line, highlight=False, soft_wrap=True)
                    next_plain = now + PLAIN_EVERY_SECONDS
                self._check_alive()
                time.sleep(REFRESH_SECONDS)
        self._read_statuses()
        self.last_frame = self._frame()

    @contextlib.contextmanager
    def _display(self) -> Iterator[Callable[[view.Frame], None]]:
        if not self.options.live:
            yield lambda _frame: None
            return
        screen = view.Live()
        with Live(console=self.console, refresh_per_second=4, transient=False) as live:
            yield lambda frame: live.update(screen.render(frame))

    def _now(self) -> float:
        return time.monotonic() - self.started_at

    def _submit(self, job: workload.Job, *, name: str | None) -> None:
        assert self.cluster is not None
        assert self.tracker is not None
        namespace = self.tracker.namespace_of[job.tenant]
        pod_name = name or job.name
        pod = kube.pod_object(
            name=pod_name,
            namespace=namespace,
            gpus=job.gpus,
            labels={cluster.PART_OF_LABEL: cluster.PART_OF, "demo.gpufair.dev/job": job.name},
            annotations={"demo.gpufair.dev/run-seconds": f"{job.run_seconds:.1f}"},
            pregated=self.admission is AdmissionMode.DEV,
        )
        created = self.cluster.api.create(f"/api/v1/namespaces/{namespace}/pods", pod)
        if self.admission is AdmissionMode.WEBHOOK:
            if kube.gated(created):
                self.gated_by_webhook += 1
            else:  # failurePolicy Ignore: the webhook did not answer; no scheduler takes it
                logger.warning("%s/%s was created without the admission gate", namespace, pod_name)
        self.tracker.submitted(
            job, name=pod_name, uid=str(created["metadata"].get("uid", "")), now=self._now()
        )
        self.submitted += 1

    def _observe(self) -> list[tracker.PodRecord]:
        """Bind times from the driver, the pods from the API, finished runs marked Succeeded."""
        assert self.cluster is not None
        assert self.tracker is not None
        while True:
            try:
                key, node, at = self.binds.get_nowait()
            except queue.Empty:
                break
            self.tracker.bound(key, node=node, now=at - self.started_at)
        pods = self.cluster.api.items(
            "/api/v1/pods", params={"labelSelector": f"{cluster.PART_OF_LABEL}={cluster.PART_OF}"}
        )
        now = self._now()
        vanished = self.tracker.observe(pods, now=now)
        for record in self.tracker.due(now=now):
            self._complete(record, now=now)
        return vanished

    def _complete(self, record: tracker.PodRecord, *, now: float) -> None:
        """The container exits 0 after its simulated run time: what a kubelet would report."""
        assert self.cluster is not None
        assert self.tracker is not None
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "train",
                        "ready": False,
                        "restartCount": 0,
                        "image": "registry.example.com/demo/train:latest",
                        "imageID": "",
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "finishedAt": stamp,
                            }
                        },
                    }
                ],
            }
        }
        try:
            self.cluster.api.merge_patch(
                kube.pod_path(record.namespace, record.name) + "/status", patch
            )
        except kube.ApiError as exc:  # evicted a moment ago: the next observation says so
            logger.info("could not finish %s: %s", record.key, exc)
            return
        self.tracker.completed(record, now=now)

    def _read_statuses(self) -> None:
        assert self.cluster is not None
        api = self.cluster.api
        self.quotas = {
            str(item["metadata"]["name"]): item.get("status") or {}
            for item in api.items(kube.QUOTAS_PATH)
        }
        pool = api.get(f"{kube.POOLS_PATH}/{cluster.POOL}")
        self.pool = {"name": cluster.POOL, **(pool.get("status") or {})}
        self.preemptions = self._scrape_preemptions()

    def _scrape_preemptions(self) -> dict[str, int]:
        assert self.cluster is not None
        try:
            text = httpx.get(self.cluster.operator_metrics, timeout=2.0).text
        except httpx.HTTPError:
            return self.preemptions
        counts: dict[str, int] = {}
        for family in prometheus_parser.text_string_to_metric_families(text):
            if family.name != "gpufair_preemptions":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    tenant = sample.labels.get("tenant", "")
                    counts[tenant] = counts.get(tenant, 0) + int(sample.value)
        return counts

    def _frame(self) -> view.Frame:
        assert self.tracker is not None
        now = self._now()
        return view.Frame(
            elapsed=now,
            duration=self.options.duration,
            jobs_total=len(self.jobs),
            jobs_submitted=sum(1 for job in self.jobs if job.submit_at <= now),
            figures=self.tracker.figures(now=now),
            quotas=self.quotas,
            weights={tenant.name: tenant.weight for tenant in self.tenants},
            pool=self.pool,
            node_usage=self.tracker.node_usage(),
            node_shapes={
                spec.name: f"{spec.shape} {cluster.describe_islands(self.topologies[spec.name])}"
                for spec in cluster.NODES
            },
            preemptions=self.preemptions,
        )

    # ------------------------------------------------------------------ the end

    def summarize(self, *, interrupted: bool) -> None:
        assert self.tracker is not None
        frame = self.last_frame or self._frame()
        rows = view.summary_rows(frame)
        title = (
            f"summary after {frame.elapsed:.0f} s (interrupted)"
            if interrupted
            else f"summary after {frame.elapsed:.0f} s"
        )
        self.console.print(view.summary_table(rows, title=title))
        clashes = self.tracker.double_allocations()
        self.console.print(
            "GPUs held by two pods at once: " + ("none" if not clashes else "; ".join(clashes[:5])),
            highlight=False,
        )
        self.console.print(self._admission_line(), highlight=False)
        allocations = view.allocations_line(frame.figures)
        self.console.print(allocations[0].upper() + allocations[1:], highlight=False)
        wide = self.tracker.one_island(gpus=WIDE_GPUS)
        islands = view.islands_line(frame.figures, wide)
        self.console.print(islands[0].upper() + islands[1:], highlight=False)
        self.console.print(
            "GPU-seconds: the operator's metered usage (TenantQuota status); wait: pod created"
            " to bound; one island: multi-GPU pods whose GPUs, as kubelet allocated them"
            " (gpufair.dev/gpus-confirmed), share one NVLink island;"
            " preemptions: pods evicted (the operator's gpufair_preemptions_total).",
            style="dim",
        )
        if self.options.summary_json is not None:
            document = {
                "elapsed_seconds": frame.elapsed,
                "interrupted": interrupted,
                "double_allocations": clashes,
                "admission": {
                    "mode": str(self.admission),
                    "pods_submitted": self.submitted,
                    "pods_gated_by_webhook": self.gated_by_webhook,
                },
                "pool": dict(frame.pool),
                "allocations": {
                    "bound": sum(row.bound for row in rows),
                    "confirmed": sum(row.confirmed for row in rows),
                    "corrected": sum(row.corrected for row in rows),
                },
                "islands": {
                    "multi_gpu_placed": sum(row.multi_gpu_placed for row in rows),
                    "multi_gpu_one_island": sum(row.multi_gpu_one_island for row in rows),
                    "wide_gpus": wide.gpus,
                    "wide_placed": wide.placed,
                    "wide_one_island": wide.one_island,
                },
                "tenants": [dataclasses.asdict(row) for row in rows],
            }
            self.options.summary_json.write_text(json.dumps(document, indent=2, default=str))

    def _admission_line(self) -> str:
        if self.admission is AdmissionMode.DEV:
            return "Admission: operator --dev, no webhook; the demo created its pods already gated"
        return (
            f"Admission: the operator's webhook gated {self.gated_by_webhook} of the"
            f" {self.submitted} pods the demo created without a scheduler name or gate"
        )

    def hold(self) -> None:
        """``--keep-running``: the cluster stays up, pods keep finishing, until Ctrl-C."""
        assert self.cluster is not None
        kubeconfig = self.cluster.standin.kubeconfig
        self.console.print(
            f"\nThe cluster stays up. In another shell:\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  kubectl get tenantquotas,gpupools\n"
            f"  kubectl get pods -A -o wide\n"
            f"  curl -s {self.cluster.operator_metrics} | grep ^gpufair_tenant\n"
            + (
                "GPU pods you create in a tenant's namespace are gated by the webhook and"
                " scheduled too."
                if self.admission is AdmissionMode.WEBHOOK
                else f"Pods you create with schedulerName {names.SCHEDULER_NAME} and the gate"
                f" {names.ADMISSION_GATE} are admitted and scheduled too."
            )
            + " Ctrl-C stops everything.",
            highlight=False,
        )
        while True:
            self._observe()
            self._check_alive()
            time.sleep(REFRESH_SECONDS)

    def shutdown(self) -> None:
        self.stop_driver.set()
        if self.driver_thread is not None:
            self.driver_thread.join(timeout=10)
        if self.cluster is not None:
            self.cluster.api.close()
        # The operator and the extender first (they talk to the stand-in while stopping).
        components = [c for c in self.components if c.name != "standin"]
        stoppers = [threading.Thread(target=c.stop) for c in components]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        for component in self.components:
            if component.name == "standin":
                component.stop()

    def cleanup_workdir(self, *, ok: bool) -> None:
        if self.own_workdir and ok and self.workdir is not None and not self.options.keep_running:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir is not None:
            self.console.print(f"logs kept in {self.workdir}", style="dim")


def _raise_interrupt(_signum: int, _frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: Options, *, console: Console | None = None) -> int:
    """Run the demo; 0 when it ran to the end, 130 when interrupted, 1 or 2 on failure."""
    console = console or Console(width=None if Console().is_terminal else 160)
    if options.live and not console.is_terminal:
        options = dataclasses.replace(options, live=False)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C even when started in the background by a shell (which ignores SIGINT there).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    demo = Demo(options, console)
    code = 1
    played = False
    try:
        demo.setup()
        played = True
        demo.play()
        demo.summarize(interrupted=False)
        code = 0
        if options.keep_running:
            demo.hold()
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping the demo cluster", style="bold")
        if played and not options.keep_running and demo.tracker is not None:
            with contextlib.suppress(Exception):
                demo.summarize(interrupted=True)
        code = 0 if (options.keep_running and code == 0) else 130
    except captures.CaptureError as exc:  # before anything started: one line, as a bad flag
        print(f"gpufair demo: {exc}", file=sys.stderr)
        code = 2
    except (
        SetupError,
        webhook.NotRegisteredError,
        processes.ComponentError,
        kube.ApiError,
        FileNotFoundError,
        httpx.HTTPError,
    ) as exc:
        console.print(f"gpufair demo: {exc}", style="red", highlight=False)
        code = 1
    finally:
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            with console.status("stopping the operator, the extender and the stand-in"):
                demo.shutdown()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
        demo.cleanup_workdir(ok=code in (0, 130))
    if demo.components:
        console.print("all demo processes stopped", style="dim")
    return code
