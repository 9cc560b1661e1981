"""``gpufair bench extender``: what one pod costs the extender on a large cluster.

Builds a synthetic cluster of 8-GPU nodes whose topologies are the real 8-GPU machines in
``../shared/data/topology/`` (parsed with the same parser the node agent uses, published as the
same labels), fills it to a realistic occupancy with pods of mixed sizes placed by the real
placement code, and then schedules pods the way kube-scheduler does: ``filter`` with the names
(``nodeCacheCapable``) of the nodes its own resource check passes (or of every node),
``prioritize`` with the nodes that passed, ``bind`` to the best one.
Between pods, one running pod finishes, so occupancy stays level and free sets keep changing.

Each verb is timed twice on the same cluster: in-process (wire bytes in, wire bytes out, through
the same handlers the routes call) and over HTTP through uvicorn on localhost, called by a minimal
keep-alive HTTP/1.1 client (:class:`_Client`) so the client's own cost stays out. The budget shown
beside the figures is kube-scheduler's own: its upstream CI accepts 180 pods/s for pods with
extended resources on 5,000 nodes, i.e. about 5.5 ms per pod for the whole scheduling cycle.
The API writes of bind go to an in-memory stand-in (the API server's latency is not the
extender's), whose watch thread confirms each binding to the cache as a real watch would.
Over HTTP the extender runs in its own (forked) process, as it does beside kube-scheduler.

Beside it, in the same run, a *null extender* is timed: the same app, routes, HTTP stack and
decoding, answering every node passes (score 0, bind ``{"Error": ""}``), sent the very request
bodies the extender got, whose answers the client decodes as it decodes the extender's. It is
the floor of the wire format; the report gives the ratio. Every figure is the median over
``runs`` runs, each on a freshly built cluster. A separate process measures the extender's
memory (RSS) with a large cache (:func:`measure_rss`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import multiprocessing
import os
import pathlib
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import uvicorn

from gpufair import captures
from gpufair.api import extender_wire as wire
from gpufair.api import names
from gpufair.core import labels, placement, topology
from gpufair.extender import app as extender_app
from gpufair.extender import runtime, settings
from gpufair.k8s import pods
from gpufair.state import cache

BUDGET_MS_PER_POD = 1000 / 180
"""kube-scheduler's upstream CI floor: 180 pods/s with extended resources on 5,000 nodes."""

SIZES = (1, 1, 1, 1, 1, 2, 2, 4, 4, 8)
"""Pod sizes in GPUs, drawn uniformly: half single-GPU pods, a tenth whole-node jobs."""

OCCUPANCY = 0.7
"""Share of GPUs allocated before measuring (busy production clusters run at 60-80%)."""

TENANTS = 4
VERBS = ("filter", "prioritize", "bind")

RSS_NODES = 10_000
RSS_PODS = 80_000
"""The cache size at which :func:`measure_rss` reads the extender's memory by default."""


Event = tuple[str, Any, str] | None
"""``("bound", pod, node)`` from bind, ``("finished", uid, "")`` from the driver, ``None``: stop."""


class _Api:
    """The API server behind bind, in the extender's process: pending pods are synthesised
    from their names (``job-<n>-g<gpus>-t<tenant>``), writes are recorded, and a watch thread
    applies the events (a binding confirmed, a pod finished) to the cache as a real watch does.

    ``events`` is a multiprocessing queue, so the driver can feed it across the fork and wait
    (``join``) until the extender has applied everything, whichever process it runs in.
    """

    def __init__(self, cluster: Cluster, events: Any) -> None:
        self.cluster = cluster
        self.events = events
        self.notes: dict[tuple[str, str], dict[str, str | None]] = {}
        self._finished_early: set[str] = set()
        self._thread = threading.Thread()

    def start(self) -> None:
        """Start the watch thread (again in a forked process, where threads do not survive)."""
        self._thread = threading.Thread(target=self._watch, name="bench-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.events.put(None)
        self._thread.join(5)

    def read_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        del namespace  # implied by the name
        _, number, gpus, tenant = name.split("-")
        return _pod(int(number), int(gpus[1:]), int(tenant[1:]))

    def bind_pod(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None:
        del uid  # pods are known by name here
        self.notes[(namespace, name)] = dict(annotations)
        self.events.put(("bound", self.read_pod(namespace, name), node))

    def _watch(self) -> None:
        while True:
            event: Event = self.events.get()
            try:
                if event is None:
                    return
                what, subject, node = event
                if what == "bound" and subject["metadata"]["uid"] in self._finished_early:
                    self._finished_early.discard(subject["metadata"]["uid"])
                elif what == "bound":
                    meta = subject["metadata"]
                    notes = self.notes[(meta["namespace"], meta["name"])]
                    gpus = pods.parse_gpus(str(notes[names.GPUS_ANNOTATION]))
                    confirmed = _bound(subject, node, sorted(gpus))
                    self.cluster.state.upsert(cache.Kind.POD, confirmed)
                    self.cluster.running[meta["uid"]] = confirmed
                elif subject in self.cluster.running:
                    self.cluster.state.delete(cache.Kind.POD, self.cluster.running.pop(subject))
                else:  # the driver's event overtook the extender's own (two queue feeders)
                    self._finished_early.add(subject)
            finally:
                self.events.task_done()


class _SchedulerView:
    """kube-scheduler's own bookkeeping: GPUs requested per node. Its ``NodeResourcesFit``
    filter sends the extender only nodes with enough free GPUs by count; the extender then
    judges which GPUs, topology, pools and limits."""

    def __init__(self, cluster: Cluster, node_names: Sequence[str]) -> None:
        self.node_names = list(node_names)
        self.free = dict.fromkeys(node_names, 8)
        self.running: dict[str, tuple[str, int]] = {}
        for uid, pod in cluster.running.items():
            gpus = pods.gpu_request(pod)
            node = str(pod["spec"]["nodeName"])
            self.running[uid] = (node, gpus)
            self.free[node] -= gpus

    def feasible(self, gpus: int) -> list[str]:
        return [name for name in self.node_names if self.free[name] >= gpus]

    def bound(self, uid: str, node: str, gpus: int) -> None:
        self.running[uid] = (node, gpus)
        self.free[node] -= gpus

    def finish_one(self, rng: random.Random) -> str:
        uid = rng.choice(list(self.running))
        node, gpus = self.running.pop(uid)
        self.free[node] += gpus
        return uid


def _node(name: str, topo: topology.NodeTopology) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"bench/pool": "gpu", **labels.to_labels(topo)}},
        "spec": {},
        "status": {"allocatable": {names.DEFAULT_GPU_RESOURCE: "8"}},
    }


def _pod(number: int, gpus: int, tenant: int) -> dict[str, Any]:
    amount = {names.DEFAULT_GPU_RESOURCE: str(gpus)}
    return {
        "metadata": {
            "name": f"job-{number}-g{gpus}-t{tenant}",
            "namespace": f"tenant-{tenant}",
            "uid": f"uid-{number}",
            "creationTimestamp": None,
        },
        "spec": {
            "containers": [{"name": "main", "resources": {"requests": amount, "limits": amount}}],
            "schedulerName": names.SCHEDULER_NAME,
            "priority": 0,
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def _bound(pod: dict[str, Any], node: str, gpus: Sequence[int]) -> dict[str, Any]:
    metadata = {**pod["metadata"], "annotations": {names.GPUS_ANNOTATION: pods.format_gpus(gpus)}}
    return {
        "metadata": metadata,
        "spec": {**pod["spec"], "nodeName": node},
        "status": {"phase": "Running"},
    }


@dataclasses.dataclass
class Cluster:
    state: cache.ClusterCache
    running: dict[str, dict[str, Any]]
    """uid -> bound pod, for finishing one between measured pods."""
    topologies: int
    occupancy: float


def _pool_and_tenants() -> cache.ClusterCache:
    """A synced cache with the benchmark's pool and tenants, and no node yet."""
    state = cache.ClusterCache()
    state.replace(
        cache.Kind.GPU_POOL,
        [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.GPU_POOL_KIND,
                "metadata": {"name": "gpu"},
                "spec": {"nodeSelector": {"matchLabels": {"bench/pool": "gpu"}}},
            }
        ],
    )
    state.replace(
        cache.Kind.TENANT_QUOTA,
        [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.TENANT_QUOTA_KIND,
                "metadata": {"name": f"t{t}"},
                "spec": {"namespaces": [f"tenant-{t}"], "pools": [{"name": "gpu"}]},
            }
            for t in range(TENANTS)
        ],
    )
    state.replace(cache.Kind.NAMESPACE, [])
    return state


def build_cluster(
    node_count: int, topologies: Mapping[str, topology.NodeTopology], *, seed: int
) -> Cluster:
    """A synced cache of ``node_count`` nodes filled to :data:`OCCUPANCY` by real placement."""
    rng = random.Random(seed)
    shapes = list(topologies.values())
    state = _pool_and_tenants()
    nodes = [_node(f"node-{i:05d}", shapes[i % len(shapes)]) for i in range(node_count)]
    state.replace(cache.Kind.NODE, nodes)
    free = {n["metadata"]["name"]: frozenset(range(8)) for n in nodes}
    topo_of = {n["metadata"]["name"]: shapes[i % len(shapes)] for i, n in enumerate(nodes)}
    names_ = list(free)
    target = int(OCCUPANCY * 8 * node_count)
    used = 0
    running: dict[str, dict[str, Any]] = {}
    bound_pods: list[dict[str, Any]] = []
    number = 0
    misses = 0
    while used < target and misses < 1000:
        gpus = rng.choice(SIZES)
        name = rng.choice(names_)
        choice = placement.choose(topo_of[name], free=free[name], count=gpus)
        if not isinstance(choice, placement.Choice):
            misses += 1
            continue
        misses = 0
        free[name] = free[name] - frozenset(choice.gpus)
        used += gpus
        pod = _bound(_pod(number, gpus, number % TENANTS), name, choice.gpus)
        number += 1
        running[pod["metadata"]["uid"]] = pod
        bound_pods.append(pod)
    state.replace(cache.Kind.POD, bound_pods)
    return Cluster(
        state=state,
        running=running,
        topologies=len(shapes),
        occupancy=used / (8 * node_count),
    )


@dataclasses.dataclass
class Timings:
    """Wall-clock samples per verb (ms), and CPU time spent by the extender (ms per pod)."""

    samples: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {verb: [] for verb in (*VERBS, "pod")}
    )
    cpu_ms_per_pod: float | None = None

    def add(self, verb: str, seconds: float) -> None:
        self.samples[verb].append(seconds * 1000)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for verb, values in self.samples.items():
            ordered = sorted(values)
            out[verb] = {
                "p50_ms": round(statistics.median(ordered), 3),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
            }
        out["cpu_ms_per_pod"] = (
            round(self.cpu_ms_per_pod, 3) if self.cpu_ms_per_pod is not None else None
        )
        return out


Call = Callable[[str, bytes], bytes]


def _in_process(rt: runtime.Runtime) -> Call:
    codec = wire.ArgsCodec()  # the routes' decoding and encoding

    def call(verb: str, body: bytes) -> bytes:
        if verb == "filter":
            return codec.encode_filter_result(rt.verbs.filter_nodes(rt, codec.decode(body)))
        if verb == "prioritize":
            return wire.encode_scores(rt.verbs.prioritize(rt, codec.decode(body)))
        return wire.encode(rt.verbs.bind(rt, wire.decode(wire.ExtenderBindingArgs, body)))

    return call


def _schedule(
    call: Call,
    view: _SchedulerView,
    events: Any,
    *,
    pods_to_schedule: int,
    first_number: int,
    rng: random.Random,
    every_node: bool,
    cpu_clock: Callable[[], float] = time.thread_time,
    cpu_per_call: bool = True,
    record: list[tuple[bytes, bytes, bytes]] | None = None,
) -> Timings:
    """Schedule pods one by one as kube-scheduler does: filter (the nodes its own filters
    passed, or ``every_node``), prioritize (the nodes the extender passed), bind to the best.
    After each pod one running pod finishes, so occupancy stays level.

    Only the calls are timed; building requests and reading answers is the scheduler's work.
    ``cpu_clock`` reads the CPU seconds the extender has used: unlike wall time it does not
    grow when other jobs share the machine's cores. With ``cpu_per_call`` (in-process: this
    thread's clock) it is read around each call; otherwise (over HTTP: the server process, all
    its threads) once around the whole run, so it includes what the extender does between
    calls (applying watch events). Before each pod the extender has applied every earlier event.
    ``record`` collects the bodies of every measured pod (for :func:`_replay`).
    """
    timings = Timings()
    cpu = 0.0

    def timed(verb: str, body: bytes) -> tuple[bytes, float]:
        nonlocal cpu
        before = cpu_clock() if cpu_per_call else 0.0
        began = time.perf_counter()
        answer = call(verb, body)
        elapsed = time.perf_counter() - began
        if cpu_per_call:
            cpu += cpu_clock() - before
        return answer, elapsed

    run_started = cpu_clock()
    measured = 0
    for number in range(first_number, first_number + pods_to_schedule):
        gpus = rng.choice(SIZES)
        pod = _pod(number, gpus, number % TENANTS)
        events.join()
        candidates = view.node_names if every_node else view.feasible(gpus)
        if not candidates:
            continue
        pod_json = _go_json(pod)
        filter_body = f'{{"Pod":{pod_json},"Nodes":null,"NodeNames":{_go_json(candidates)}}}'
        raw, filter_took = timed("filter", filter_body.encode())
        passed = json.loads(raw)["NodeNames"] or []
        if not passed:
            timings.add("filter", filter_took)
            continue
        prioritize_body = f'{{"Pod":{pod_json},"Nodes":null,"NodeNames":{_go_json(passed)}}}'
        raw, prioritize_took = timed("prioritize", prioritize_body.encode())
        scores = json.loads(raw)
        best = max(scores, key=lambda entry: entry["Score"])["Host"]
        meta = pod["metadata"]
        bind_body = _go_json(
            {
                "PodName": meta["name"],
                "PodNamespace": meta["namespace"],
                "PodUID": meta["uid"],
                "Node": best,
            }
        ).encode()
        raw, bind_took = timed("bind", bind_body)
        error = json.loads(raw)["Error"]
        if error:
            raise RuntimeError(f"bind of {meta['name']} to {best} failed: {error}")
        if record is not None:
            record.append((filter_body.encode(), prioritize_body.encode(), bind_body))
        measured += 1
        timings.add("filter", filter_took)
        timings.add("prioritize", prioritize_took)
        timings.add("bind", bind_took)
        timings.add("pod", filter_took + prioritize_took + bind_took)
        view.bound(meta["uid"], best, gpus)
        events.put(("finished", view.finish_one(rng), ""))
    events.join()
    if not cpu_per_call:
        cpu = cpu_clock() - run_started
    timings.cpu_ms_per_pod = cpu * 1000 / measured if measured else None
    return timings


def _go_json(value: Any) -> str:
    """JSON as Go's ``encoding/json`` writes it (no spaces), as kube-scheduler sends it."""
    return json.dumps(value, separators=(",", ":"))


def _replay(
    call: Call, bodies: Sequence[tuple[bytes, bytes, bytes]], cpu_clock: Callable[[], float]
) -> Timings:
    """Send the recorded bodies of every pod again, in order (the null extender's run).

    Each answer is decoded, as :func:`_schedule` (and kube-scheduler) decodes every answer: on a
    machine with few cores the client's work between calls competes with the server's, so a
    client that skipped it would make the null extender look faster than the same server is
    under the real client (measured: the null's per-pod p50 at 5,000 nodes 1.24 ms without
    decoding, 2.78 ms with it, at load ~5 on 2 CPUs)."""
    timings = Timings()
    started = cpu_clock()
    for pod_bodies in bodies:
        took = 0.0
        for verb, body in zip(VERBS, pod_bodies, strict=True):
            began = time.perf_counter()
            answer = call(verb, body)
            elapsed = time.perf_counter() - began
            json.loads(answer)
            timings.add(verb, elapsed)
            took += elapsed
        timings.add("pod", took)
    if bodies:
        timings.cpu_ms_per_pod = (cpu_clock() - started) * 1000 / len(bodies)
    return timings


def _pass_all(_: runtime.Runtime, args: wire.ExtenderArgs) -> wire.ExtenderFilterResult:
    return wire.ExtenderFilterResult(
        node_names=args.node_names, failed_nodes={}, failed_and_unresolvable_nodes={}
    )


def _zero(_: runtime.Runtime, args: wire.ExtenderArgs) -> wire.Scores:
    return wire.Scores.grouped({0: args.candidate_names()})


def _no_victims(
    _: runtime.Runtime, args: wire.ExtenderPreemptionArgs
) -> wire.ExtenderPreemptionResult:
    return wire.ExtenderPreemptionResult(node_name_to_meta_victims=args.proposals())


def _bound_nowhere(_: runtime.Runtime, __: wire.ExtenderBindingArgs) -> wire.ExtenderBindingResult:
    return wire.ExtenderBindingResult(error="")


NULL_VERBS = runtime.Verbs(
    filter_nodes=_pass_all, prioritize=_zero, preempt=_no_victims, bind=_bound_nowhere
)
"""The null extender: every node passes and scores 0, bind answers success without writing."""


def _process_cpu_clock(pid: int) -> Callable[[], float]:
    """CPU seconds (user + system) of process ``pid`` so far, from ``/proc`` (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    path = pathlib.Path(f"/proc/{pid}/stat")

    def clock() -> float:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return clock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(app: Any, api: _Api | None, port: int, ready: Any, stack: HttpStack) -> None:
    """The extender's own process: uvicorn serving the app built before the fork."""
    if api is not None:
        api.start()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            http=stack.http,
            loop=stack.loop,
        )
    )
    threading.Thread(target=_signal_when_started, args=(server, ready), daemon=True).start()
    server.run()


def _signal_when_started(server: uvicorn.Server, ready: Any) -> None:
    while not server.started:
        time.sleep(0.01)
    ready.set()


@dataclasses.dataclass(frozen=True)
class HttpStack:
    """uvicorn's HTTP parser and event loop (``auto``: httptools and uvloop when installed, as
    ``gpufair extender`` runs)."""

    http: Literal["auto", "h11", "httptools"] = "auto"
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"

    def resolved(self) -> str:
        """What ``auto`` picks in this environment, e.g. ``httptools + uvloop``."""
        http = self.http
        if http == "auto":
            http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        loop = self.loop
        if loop == "auto":
            loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        return f"uvicorn {uvicorn.__version__} ({http} + {loop})"


class _Client:
    """A minimal HTTP/1.1 client on one keep-alive connection, standing in for kube-scheduler's
    Go client: one ``sendmsg`` of head and body, then the status line, ``Content-Length`` and
    the body from a buffered reader. ``http.client`` parses every response head with the
    ``email`` package, which would add the client's own cost to the figures."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")
        self._host = f"127.0.0.1:{port}"

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._sock.sendmsg([head, body])
        status = int(self._reader.readline().split(b" ", 2)[1])
        length = 0
        while (line := self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, self._reader.read(length)

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


def _over_http(
    app: Any, api: _Api | None, stack: HttpStack
) -> tuple[Call, Callable[[], None], Callable[[], float]]:
    """Serve ``app`` from a forked process (the scheduler and the extender are separate
    processes, and one process would make client and server fight over one GIL)."""
    context = multiprocessing.get_context("fork")
    port = _free_port()
    ready = context.Event()
    process = context.Process(target=_serve, args=(app, api, port, ready, stack), daemon=True)
    if api is not None:
        api.stop()  # the child starts its own watch thread
        api.events.join()
    process.start()
    if not ready.wait(20):
        process.kill()
        raise RuntimeError("uvicorn did not start within 20 s")
    client = _Client(port)

    def call(verb: str, body: bytes) -> bytes:
        status, content = client.post(f"/{verb}", body)
        if status != 200:
            raise RuntimeError(f"/{verb} answered {status}: {content[:200]!r}")
        return content

    def stop() -> None:
        client.close()
        process.terminate()
        process.join(5)

    assert process.pid is not None
    return call, stop, _process_cpu_clock(process.pid)


def _one_run(
    count: int,
    topologies: Mapping[str, topology.NodeTopology],
    *,
    pods_per_run: int,
    seed: int,
    every_node: bool,
    stack: HttpStack,
) -> dict[str, Any]:
    """One run at ``count`` nodes: in-process, over HTTP, and the null extender over HTTP."""
    context = multiprocessing.get_context("fork")
    cluster = build_cluster(count, topologies, seed=seed)
    node_names = sorted(cluster.state.snapshot().nodes)
    view = _SchedulerView(cluster, node_names)
    events = context.JoinableQueue()
    api = _Api(cluster, events)
    api.start()
    app = extender_app.create_app(
        settings.ExtenderSettings(watch=False), state=cluster.state, writer=api
    )
    rt: runtime.Runtime = app.state.runtime
    extender_app.freeze_heap()  # what the app does once its watches have synced
    rng = random.Random(seed)
    local = _in_process(rt)
    common: dict[str, Any] = {"rng": rng, "every_node": every_node}
    # Warm-up: fills the placement memo as a long-running extender's would be.
    _schedule(local, view, events, pods_to_schedule=50, first_number=10**6, **common)
    in_process = _schedule(
        local, view, events, pods_to_schedule=pods_per_run, first_number=2 * 10**6, **common
    )
    events.join()
    snapshot = cluster.state.snapshot()
    bodies: list[tuple[bytes, bytes, bytes]] = []
    remote, stop, server_cpu = _over_http(app, api, stack)
    try:
        _schedule(remote, view, events, pods_to_schedule=20, first_number=3 * 10**6, **common)
        over_http = _schedule(
            remote,
            view,
            events,
            pods_to_schedule=pods_per_run,
            first_number=4 * 10**6,
            cpu_clock=server_cpu,
            cpu_per_call=False,
            record=bodies,
            **common,
        )
    finally:
        stop()
    null_app = extender_app.create_app(
        settings.ExtenderSettings(watch=False), state=cluster.state, answers=NULL_VERBS
    )
    null, stop, null_cpu = _over_http(null_app, None, stack)
    try:
        _replay(null, bodies[:20], null_cpu)
        null_http = _replay(null, bodies, null_cpu)
    finally:
        stop()
    return {
        "gpus": 8 * count,
        "occupancy": round(cluster.occupancy, 3),
        "distinct_node_shapes": len({v.shape_id for v in snapshot.nodes.values()}),
        "in_process": in_process.summary(),
        "http": over_http.summary(),
        "null_http": null_http.summary(),
    }


def _median(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each figure of the summaries (``Timings.summary``) as its median over the runs."""
    out: dict[str, Any] = {}
    for key, value in summaries[0].items():
        if isinstance(value, Mapping):
            out[key] = _median([summary[key] for summary in summaries])
        elif value is None:
            out[key] = None
        else:
            out[key] = round(statistics.median(summary[key] for summary in summaries), 3)
    return out


def run(
    node_counts: Sequence[int],
    *,
    pods_per_run: int = 200,
    runs: int = 5,
    topology_dir: pathlib.Path | None = None,
    seed: int = 1,
    every_node: Sequence[int] = (),
    stack: HttpStack | None = None,
    rss: tuple[int, int] | None = (RSS_NODES, RSS_PODS),
) -> dict[str, Any]:
    """Measure every node count in-process, over HTTP and against the null extender (and with
    every node sent to filter at the counts in ``every_node``); each figure is the median of
    ``runs`` runs. ``rss``: (nodes, GPU pods) of the memory measurement, ``None`` to skip it."""
    stack = stack or HttpStack()
    topologies = captures.load_dir(topology_dir or captures.default_dir())
    report: dict[str, Any] = {
        "budget_ms_per_pod": round(BUDGET_MS_PER_POD, 2),
        "budget_source": "kube-scheduler upstream CI: 180 pods/s with extended resources on "
        "5,000 nodes",
        "topologies": sorted(topologies),
        "pods_per_run": pods_per_run,
        "runs_per_figure": runs,
        "http_stack": stack.resolved(),
        "runs": [],
    }
    plan = [(count, False) for count in node_counts]
    plan += [(count, True) for count in every_node]
    for count, all_nodes in plan:
        results = [
            _one_run(
                count,
                topologies,
                pods_per_run=pods_per_run,
                seed=seed + number,
                every_node=all_nodes,
                stack=stack,
            )
            for number in range(runs)
        ]
        row = {
            "nodes": count,
            "candidates": "every node" if all_nodes else "nodes with enough free GPUs by count",
            **_median(results),
        }
        row["null_ratio"] = {
            figure: round(row["http"]["pod"][figure] / row["null_http"]["pod"][figure], 2)
            for figure in ("p50_ms", "p99_ms")
        }
        report["runs"].append(row)
    if rss is not None:
        report["memory"] = measure_rss(*rss, topology_dir=topology_dir)
    return report


def measure_rss(
    node_count: int, pod_count: int, *, topology_dir: pathlib.Path | None = None
) -> dict[str, Any]:
    """The extender's resident memory with ``node_count`` nodes and ``pod_count`` bound GPU pods
    in its cache (one GPU each, spread over the nodes), measured in a fresh process: after the
    lists are applied and the heap frozen (what stays) and at its peak (the lists included)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_rss_child, args=(child, node_count, pod_count, topology_dir), daemon=True
    )
    process.start()
    figures: dict[str, Any] = parent.recv()
    process.join(30)
    return figures


def _memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from ``/proc`` (Linux)."""
    fields = dict(
        line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _rss_child(
    pipe: Any, node_count: int, pod_count: int, topology_dir: pathlib.Path | None
) -> None:
    started, _ = _memory_mb()
    shapes = list(captures.load_dir(topology_dir or captures.default_dir()).values())
    state = _pool_and_tenants()
    names_ = [f"node-{i:05d}" for i in range(node_count)]
    state.replace(
        cache.Kind.NODE, [_node(name, shapes[i % len(shapes)]) for i, name in enumerate(names_)]
    )
    pods_ = [
        _bound(_pod(number, 1, number % TENANTS), names_[node], [gpu])
        for number, (gpu, node) in zip(
            range(pod_count), itertools.product(range(8), range(node_count)), strict=False
        )
    ]
    state.replace(cache.Kind.POD, pods_)
    del pods_
    app = extender_app.create_app(settings.ExtenderSettings(watch=False), state=state)
    extender_app.freeze_heap()
    rt: runtime.Runtime = app.state.runtime
    args = wire.ExtenderArgs(pod=_pod(0, 1, 0), node_names=names_)
    rt.verbs.filter_nodes(rt, args)
    rt.verbs.prioritize(rt, args)
    current, peak = _memory_mb()
    pipe.send(
        {
            "nodes": node_count,
            "gpu_pods": state.pod_count(),
            "rss_mb": round(current, 1),
            "peak_rss_mb": round(peak, 1),
            "before_building_mb": round(started, 1),
        }
    )


def render(report: Mapping[str, Any]) -> str:
    """The report as an aligned table."""
    budget = report["budget_ms_per_pod"]
    lines = [
        f"gpufair extender benchmark: {report['pods_per_run']} pods per run, median of "
        f"{report['runs_per_figure']} runs; topologies: {', '.join(report['topologies'])}",
        f"budget: {budget} ms per pod ({report['budget_source']}); HTTP: {report['http_stack']}",
        "wall-clock p50/p99 per call; CPU/pod: the extender's CPU time per pod (mean; in-process"
        " its calls, over HTTP its whole process), which other jobs on the machine do not inflate;"
        " null: the same HTTP stack and decoding answering every node passes, sent the same"
        " bodies, its answers decoded by the client too (the floor of the wire format)",
        "",
        f"{'nodes':>6} {'path':<11} {'filter':>13} {'prioritize':>13} {'bind':>13} "
        f"{'per pod':>13} {'of budget':>9} {'CPU/pod':>9} {'of budget':>9}",
    ]
    for run_ in report["runs"]:
        for path in ("in_process", "http", "null_http"):
            figures = run_[path]

            def cell(verb: str, figures: Mapping[str, Any] = figures) -> str:
                return f"{figures[verb]['p50_ms']:.2f}/{figures[verb]['p99_ms']:.2f}"

            cpu = figures.get("cpu_ms_per_pod")
            cpu_cells = f"{cpu:>6.2f} ms {cpu / budget:>9.0%}" if cpu is not None else ""
            lines.append(
                f"{run_['nodes']:>6} {path.replace('_http', '').replace('_', '-'):<11} "
                f"{cell('filter'):>13} {cell('prioritize'):>13} {cell('bind'):>13} "
                f"{cell('pod'):>13} {figures['pod']['p50_ms'] / budget:>9.0%} {cpu_cells}"
            )
        ratio = run_["null_ratio"]
        lines.append(
            f"{'':>6} candidates: {run_['candidates']}; occupancy {run_['occupancy']:.0%}, "
            f"{run_['distinct_node_shapes']} distinct node shapes; HTTP per pod / null: "
            f"p50 {ratio['p50_ms']:.2f}x, p99 {ratio['p99_ms']:.2f}x"
        )
    memory = report.get("memory")
    if memory is not None:
        lines.append(
            f"memory: {memory['rss_mb']:.0f} MB resident with {memory['nodes']} nodes and "
            f"{memory['gpu_pods']} GPU pods cached (peak {memory['peak_rss_mb']:.0f} MB while "
            f"applying the lists; {memory['before_building_mb']:.0f} MB before building)"
        )
    return "\n".join(lines)
