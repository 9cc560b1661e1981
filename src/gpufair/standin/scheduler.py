"""Play kube-scheduler (v1.36) against the gpufair extender, for the e2e suite and the demo.

No kube-scheduler binary runs on these machines, so this driver does what the second scheduler
configured by the Helm chart does for pods with ``spec.schedulerName: gpufair-scheduler``, and
talks to the extender exactly as ``ARCHITECTURE.md`` §6 says kube-scheduler does:

1. Queue: pending pods of this scheduler with no ``spec.nodeName`` and no scheduling gates,
   highest ``spec.priority`` first, then oldest (the ``PrioritySort`` plugin; within one second
   of ``creationTimestamp``, the order in which the driver first saw them).
2. Its own filters first (a subset of the default plugins): ``NodeUnschedulable``,
   ``TaintToleration`` (NoSchedule/NoExecute; a not-Ready node counts as tainted
   ``node.kubernetes.io/not-ready``), ``NodeAffinity`` (``nodeSelector`` and required
   ``matchExpressions``), ``NodeResourcesFit`` for extended resources (``nvidia.com/gpu``: the
   node's allocatable minus what non-terminal pods bound there request). The extender is called
   only when some node passes these.
3. ``POST {extender}/filter`` with ``{"Pod": pod, "Nodes": null, "NodeNames": [...]}``
   (``nodeCacheCapable: true``). A non-200 answer, a transport error, a timeout (5 s) or a
   non-empty ``Error`` fails the cycle. ``FailedNodes`` and ``FailedAndUnresolvableNodes`` give
   the reasons; a null ``NodeNames`` means every node was filtered out.
4. With no feasible node: the pod's ``PodScheduled`` condition becomes ``False``/``Unschedulable``
   and a ``FailedScheduling`` Warning event is recorded (core/v1, cut at 1,024 characters; the
   condition is not), both with kube-scheduler's text: ``0/3 nodes are available: 1 Insufficient
   nvidia.com/gpu, 2 <extender reason>. preemption: 0/3 nodes are available: ...``, reasons
   grouped by identical text and sorted. Then ``DefaultPreemption``: on nodes rejected only for
   resources, lower-priority pods are dry-run removed (and reprieved where they still fit); if
   some node has victims, ``POST {extender}/preempt`` with ``NodeNameToMetaVictims`` (UIDs),
   whose answer may only narrow them; the chosen node's victims are deleted (after a
   ``DisruptionTarget`` condition) and the preemptor gets ``status.nominatedNodeName``. A pod
   rejected only by the extender never reaches the preempt verb. Because the status update
   requeues the pod, a rejection is followed by a second filter call about 30 ms later.
5. One feasible node: no prioritize call. Several: ``POST {extender}/prioritize`` (same args);
   an error there is ignored (all scores 0). The best score wins; ties go to the first node in
   ``NodeNames`` order (kube-scheduler picks at random among ties; ``tie_break="random"``).
6. ``POST {extender}/bind`` with ``{"PodName", "PodNamespace", "PodUID", "Node"}`` (the extender
   is the binder); an error answer or a non-empty ``Error`` is a failed binding
   (``FailedScheduling``: ``Binding rejected: ...``). On success a ``Scheduled`` event says
   ``Successfully assigned ns/pod to node``.
7. A pod that requests none of the extender's ``managedResources`` never reaches the extender
   (kube-scheduler's ``IsInterested``): its own filters decide and its default binder creates
   the ``pods/binding``.

Everything else kube-scheduler does (scoring plugins, inter-pod affinity, volume binding,
backoff timers, PDB-aware victim choice) is out of scope and documented in ``docs/e2e.md``.
Plain synchronous ``httpx``: call :meth:`SchedulerDriver.schedule_pending` from a test, or
:meth:`SchedulerDriver.run` in a thread from the demo; the e2e suite imports it directly.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from gpufair.api import names
from gpufair.k8s import pods as k8s_pods

SCHEDULER_NAME = names.SCHEDULER_NAME
EVENT_NOTE_LIMIT = 1024
TERMINAL_PHASES = ("Succeeded", "Failed")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"

logger = logging.getLogger("gpufair.standin.scheduler")

Json = dict[str, Any]


class ExtenderError(RuntimeError):
    """The extender answered with an error, a non-200 status, or not at all."""


@dataclasses.dataclass(frozen=True)
class Preemption:
    """What the preemption step did: the node nominated and the victims deleted (``ns/name``)."""

    node: str
    victims: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One scheduling cycle of one pod."""

    namespace: str
    name: str
    node: str | None
    message: str
    candidates: tuple[str, ...] = ()
    feasible: tuple[str, ...] = ()
    scores: Mapping[str, int] = dataclasses.field(default_factory=dict)
    preemption: Preemption | None = None
    error: bool = False

    @property
    def scheduled(self) -> bool:
        return self.node is not None

    @property
    def pod(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class _Filtered:
    feasible: tuple[str, ...]
    reasons: dict[str, str]  # node -> reason text
    unresolvable: frozenset[str]  # nodes preemption cannot help


class SchedulerDriver:
    """kube-scheduler's cycle for the pods of one scheduler name, against one extender."""

    def __init__(
        self,
        *,
        api_url: str,
        extender_url: str,
        scheduler_name: str = SCHEDULER_NAME,
        timeout: float = 5.0,
        preemption: bool = True,
        requeue_on_status_update: bool = True,
        tie_break: str = "first",
        namespaces: Iterable[str] | None = None,
        api_headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
        managed_resources: Iterable[str] = (names.DEFAULT_GPU_RESOURCE,),
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.extender_url = extender_url.rstrip("/")
        self.scheduler_name = scheduler_name
        self.timeout = timeout
        self.preemption = preemption
        self.requeue_on_status_update = requeue_on_status_update
        if tie_break not in ("first", "random"):
            raise ValueError("tie_break is 'first' or 'random'")
        self.tie_break = tie_break
        # Tests that share one stand-in schedule only their own namespaces; None means all.
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self._http = http or httpx.Client(timeout=timeout)
        self._own_http = http is None
        self._api_headers = dict(api_headers or {})
        self.managed_resources = frozenset(managed_resources)
        self._first_seen: dict[str, int] = {}
        # (pod uid, reason, message) -> (event name, count) of the events this driver sent
        self._sent_events: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._round: tuple[list[Json], list[Json]] | None = None  # (nodes, pods) this round

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> SchedulerDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the queue

    def pending_pods(self) -> list[Json]:
        """Pods this scheduler would pop, in queue order."""
        pods = self._api_get(
            "/api/v1/pods",
            params={"fieldSelector": f"spec.schedulerName={self.scheduler_name},spec.nodeName="},
        )["items"]
        ready = [
            pod
            for pod in pods
            if not (pod.get("spec") or {}).get("schedulingGates")
            and not pod["metadata"].get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
            and (self.namespaces is None or pod["metadata"]["namespace"] in self.namespaces)
        ]
        for pod in ready:  # queue add time: the resourceVersion when first seen
            self._first_seen.setdefault(
                pod["metadata"]["uid"], int(pod["metadata"].get("resourceVersion") or 0)
            )
        ready.sort(
            key=lambda p: (
                -_priority(p),
                p["metadata"].get("creationTimestamp", ""),
                self._first_seen[p["metadata"]["uid"]],
            )
        )
        return ready

    def schedule_pending(self) -> list[Attempt]:
        """One cycle for every pod in the queue, in order; returns what happened to each.

        Nodes and pods are listed once per round (like the scheduler's informer cache) and the
        cache is updated after each binding, so a burst of pods costs one list, not one per pod.
        """
        self._round = self._list_cluster()
        try:
            return [self.schedule(pod) for pod in self.pending_pods()]
        finally:
            self._round = None

    def run(
        self,
        stop: threading.Event,
        *,
        interval: float = 0.2,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        """Schedule until ``stop`` is set (for the demo: run it in a thread)."""
        while not stop.is_set():
            try:
                for attempt in self.schedule_pending():
                    if on_attempt is not None:
                        on_attempt(attempt)
            except httpx.HTTPError as exc:  # the API server is restarting or gone
                logger.warning("scheduling cycle failed: %s", exc)
            stop.wait(interval)

    # ------------------------------------------------------------------ one cycle

    def schedule(self, pod: Json) -> Attempt:
        attempt, requeued = self._cycle(pod)
        if not (requeued and self.requeue_on_status_update):
            return attempt
        # kube-scheduler's own status update (the PodScheduled condition) is a pod update, which
        # requeues the pod: a rejection is followed by a second cycle about 30 ms later.
        time.sleep(0.03)
        fresh = self._read_pod(pod)
        if fresh is None or (fresh.get("spec") or {}).get("nodeName"):
            return attempt
        return self._cycle(fresh)[0]

    def _cycle(self, pod: Json) -> tuple[Attempt, bool]:
        """One scheduling cycle; also says whether it changed the pod's status (a requeue)."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        nodes, pods = self._round if self._round is not None else self._list_cluster()
        own = self._own_filters(pod, nodes, pods)
        candidates = own.feasible
        if not self.managed_resources.intersection(_requests(pod)):
            return self._default_cycle(pod, len(nodes), own), False
        try:
            filtered = (
                self._extender_filter(pod, candidates)
                if candidates
                else _Filtered((), {}, frozenset())
            )
        except ExtenderError as exc:
            message = f"running extender filter: {exc}"
            changed = self._record_failure(pod, message)
            return Attempt(
                namespace, name, None, message, candidates=candidates, error=True
            ), changed
        reasons = {**own.reasons, **filtered.reasons}
        unresolvable = own.unresolvable | filtered.unresolvable
        if not filtered.feasible:
            message = fit_error(len(nodes), reasons)
            preemption: Preemption | None = None
            post_filter = ""
            if self.preemption:
                preemption, post_filter = self._preempt(pod, nodes, pods, reasons, unresolvable)
            if post_filter:
                message = f"{message} {post_filter}"
            changed = self._record_failure(pod, message)
            attempt = Attempt(
                namespace, name, None, message, candidates=candidates, preemption=preemption
            )
            return attempt, changed and preemption is None

        scores: dict[str, int] = {}
        if len(filtered.feasible) > 1:
            scores = self._extender_prioritize(pod, filtered.feasible)
        node = self._select(filtered.feasible, scores)
        try:
            self._extender_bind(pod, node)
        except ExtenderError as exc:
            message = f"Binding rejected: {exc}"
            changed = self._record_failure(pod, message)
            return Attempt(
                namespace,
                name,
                None,
                message,
                candidates=candidates,
                feasible=filtered.feasible,
                scores=scores,
                error=True,
            ), changed
        message = f"Successfully assigned {namespace}/{name} to {node}"
        self._record_event(pod, "Normal", "Scheduled", message)
        self._assume_bound(pod, node)
        return Attempt(
            namespace,
            name,
            node,
            message,
            candidates=candidates,
            feasible=filtered.feasible,
            scores=scores,
        ), False

    def _select(self, feasible: Sequence[str], scores: Mapping[str, int]) -> str:
        best = max(scores.get(node, 0) for node in feasible)
        tied = [node for node in feasible if scores.get(node, 0) == best]
        return random.choice(tied) if self.tie_break == "random" else tied[0]

    # ------------------------------------------------------------------ kube-scheduler's plugins

    def _own_filters(self, pod: Json, nodes: list[Json], pods: list[Json]) -> _Filtered:
        feasible: list[str] = []
        reasons: dict[str, str] = {}
        unresolvable: set[str] = set()
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            node_name = node["metadata"]["name"]
            reason = _unresolvable_reason(pod, node)
            if reason is not None:
                reasons[node_name] = reason
                unresolvable.add(node_name)
                continue
            short = _insufficient(pod, node, _bound_to(pods, node_name))
            if short:
                reasons[node_name] = ", ".join(f"Insufficient {r}" for r in short)
                continue
            feasible.append(node_name)
        return _Filtered(tuple(feasible), reasons, frozenset(unresolvable))

    # ------------------------------------------------------------------ extender verbs

    def _extender_call(self, verb: str, payload: Json) -> Any:
        url = f"{self.extender_url}/{verb}"
        try:
            answer = self._http.post(url, json=payload, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ExtenderError(f'Post "{url}": {exc!r}') from exc
        if answer.status_code != 200:
            raise ExtenderError(f"{verb} answered HTTP {answer.status_code}: {answer.text[:300]}")
        try:
            return answer.json()
        except ValueError as exc:
            raise ExtenderError(f"{verb} answered non-JSON: {answer.text[:300]}") from exc

    def _extender_filter(self, pod: Json, names: Sequence[str]) -> _Filtered:
        result = self._extender_call(
            "filter", {"Pod": pod, "Nodes": None, "NodeNames": list(names)}
        )
        if result.get("Error"):
            raise ExtenderError(str(result["Error"]))
        passed = result.get("NodeNames") or []
        unknown = set(passed) - set(names)
        if unknown:
            raise ExtenderError(f"filter returned nodes it was not given: {sorted(unknown)}")
        reasons = {str(k): str(v) for k, v in (result.get("FailedNodes") or {}).items()}
        hard = {str(k): str(v) for k, v in (result.get("FailedAndUnresolvableNodes") or {}).items()}
        reasons.update(hard)
        return _Filtered(tuple(n for n in names if n in passed), reasons, frozenset(hard))

    def _extender_prioritize(self, pod: Json, names: Sequence[str]) -> dict[str, int]:
        try:
            result = self._extender_call(
                "prioritize", {"Pod": pod, "Nodes": None, "NodeNames": list(names)}
            )
        except ExtenderError as exc:
            logger.warning("prioritize failed (ignored, as kube-scheduler does): %s", exc)
            return {}
        scores: dict[str, int] = {}
        for entry in result or []:
            if entry.get("Host") in names:
                scores[entry["Host"]] = int(entry.get("Score", 0))
        return scores

    def _default_cycle(self, pod: Json, total: int, own: _Filtered) -> Attempt:
        """A pod the extender is not interested in: kube-scheduler's filters and binder only."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if not own.feasible:
            message = fit_error(total, own.reasons)
            self._record_failure(pod, message)
            return Attempt(namespace, name, None, message, candidates=own.feasible)
        node = self._select(own.feasible, {})
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        answer = self._http.post(
            f"{self.api_url}{_pod_path(pod)}/binding", json=binding, headers=self._api_headers
        )
        answer.raise_for_status()
        message = f"Successfully assigned {namespace}/{name} to {node}"
        self._record_event(pod, "Normal", "Scheduled", message)
        self._assume_bound(pod, node)
        return Attempt(namespace, name, node, message, candidates=own.feasible)

    def _extender_bind(self, pod: Json, node: str) -> None:
        metadata = pod["metadata"]
        result = self._extender_call(
            "bind",
            {
                "PodName": metadata["name"],
                "PodNamespace": metadata["namespace"],
                "PodUID": metadata["uid"],
                "Node": node,
            },
        )
        if (result or {}).get("Error"):
            raise ExtenderError(str(result["Error"]))

    # ------------------------------------------------------------------ preemption

    def _preempt(
        self,
        pod: Json,
        nodes: list[Json],
        pods: list[Json],
        reasons: Mapping[str, str],
        unresolvable: frozenset[str],
    ) -> tuple[Preemption | None, str]:
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return None, "preemption: not eligible due to preemptionPolicy=Never."
        by_name = {n["metadata"]["name"]: n for n in nodes}
        candidates: dict[str, list[Json]] = {}
        outcome: dict[str, str] = {}
        for node_name in sorted(by_name):
            if node_name in unresolvable or node_name not in reasons:
                outcome[node_name] = "Preemption is not helpful for scheduling"
                continue
            victims = _victims(pod, by_name[node_name], _bound_to(pods, node_name))
            if victims:
                candidates[node_name] = victims
            else:
                outcome[node_name] = "No preemption victims found for incoming pod"
        if candidates:
            meta = {
                node: {
                    "Pods": [{"UID": v["metadata"]["uid"]} for v in victims],
                    "NumPDBViolations": 0,
                }
                for node, victims in candidates.items()
            }
            try:
                answer = self._extender_call(
                    "preempt",
                    {"Pod": pod, "NodeNameToVictims": None, "NodeNameToMetaVictims": meta},
                )
            except ExtenderError as exc:
                return None, f"preemption: running extender preempt: {exc}"
            narrowed = _narrow(candidates, (answer or {}).get("NodeNameToMetaVictims") or {})
            for node in candidates:
                if node not in narrowed:
                    outcome[node] = "No preemption victims found for incoming pod"
            if narrowed:
                node = min(narrowed, key=lambda n: (*_victim_cost(narrowed[n]), n))
                self._evict_victims(pod, node, narrowed[node])
                names = tuple(
                    f"{v['metadata']['namespace']}/{v['metadata']['name']}" for v in narrowed[node]
                )
                return Preemption(node, names), ""
        return None, "preemption: " + fit_error(len(nodes), outcome)

    def _evict_victims(self, pod: Json, node: str, victims: list[Json]) -> None:
        preemptor = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        for victim in victims:
            path = _pod_path(victim)
            condition: Json = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": f"{self.scheduler_name}: preempting to accommodate a higher "
                "priority pod",
                "lastTransitionTime": _now(),
            }
            self._api_patch(f"{path}/status", {"status": {"conditions": [condition]}})
            self._record_event(
                victim,
                "Normal",
                "Preempted",
                f"Preempted by pod {pod['metadata']['uid']} on node {node}",
            )
            answer = self._http.delete(self.api_url + path, headers=self._api_headers)
            if answer.status_code not in (200, 202, 404):
                answer.raise_for_status()
            logger.info("preempted %s for %s on %s", _pod_path(victim), preemptor, node)
        self._api_patch(f"{_pod_path(pod)}/status", {"status": {"nominatedNodeName": node}})
        if self._round is not None:
            self._round = self._list_cluster()

    # ------------------------------------------------------------------ recording

    def _record_failure(self, pod: Json, message: str) -> bool:
        """Condition and event of a failed cycle; returns whether the pod's status changed."""
        self._record_event(pod, "Warning", "FailedScheduling", message)
        condition: Json = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
        }
        current: Json = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            {},
        )
        if all(current.get(k) == v for k, v in condition.items()):
            return False  # as podutil.UpdatePodCondition: nothing to write
        condition.update(lastProbeTime=None, lastTransitionTime=_now())
        self._api_patch(f"{_pod_path(pod)}/status", {"status": {"conditions": [condition]}})
        return True

    def _record_event(self, pod: Json, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event; a repeat of the same one bumps its ``count`` like the recorder,
        which remembers the events it sent (client-go's EventCorrelator) and never lists them:
        kube-scheduler's role (``system:kube-scheduler``) may create and patch events only."""
        metadata = pod["metadata"]
        namespace = metadata["namespace"]
        note = (
            message
            if len(message) <= EVENT_NOTE_LIMIT
            else (message[: EVENT_NOTE_LIMIT - 3] + "...")
        )
        now = _now()
        events_path = f"/api/v1/namespaces/{namespace}/events"
        key = (metadata["uid"], reason, note)
        sent = self._sent_events.get(key)
        if sent is not None:
            name, count = sent
            self._sent_events[key] = (name, count + 1)
            self._api_patch(f"{events_path}/{name}", {"count": count + 1, "lastTimestamp": now})
            return
        event_name = f"{metadata['name']}.{uuid.uuid4().hex[:16]}"
        event_body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name,
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": metadata["name"],
                "namespace": namespace,
                "uid": metadata["uid"],
            },
            "reason": reason,
            "message": note,
            "type": kind,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.scheduler_name},
            "reportingComponent": self.scheduler_name,
            "reportingInstance": f"{self.scheduler_name}-e2e",
            "action": "Scheduling" if reason != "Preempted" else "Preempting",
        }
        answer = self._http.post(
            self.api_url + events_path, json=event_body, headers=self._api_headers
        )
        answer.raise_for_status()
        self._sent_events[key] = (event_name, 1)

    # ------------------------------------------------------------------ API access

    def _list_cluster(self) -> tuple[list[Json], list[Json]]:
        nodes: list[Json] = self._api_get("/api/v1/nodes")["items"]
        pods: list[Json] = self._api_get("/api/v1/pods")["items"]
        return nodes, pods

    def _assume_bound(self, pod: Json, node: str) -> None:
        """Count a bound pod on its node for the rest of the round (the scheduler's assume)."""
        if self._round is None:
            return
        bound = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
        pods = [p for p in self._round[1] if p["metadata"]["uid"] != pod["metadata"]["uid"]]
        self._round = (self._round[0], [*pods, bound])

    def _read_pod(self, pod: Json) -> Json | None:
        answer = self._http.get(self.api_url + _pod_path(pod), headers=self._api_headers)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        result: Json = answer.json()
        return result

    def _api_get(self, path: str, *, params: Mapping[str, str] | None = None) -> Json:
        answer = self._http.get(self.api_url + path, params=params, headers=self._api_headers)
        answer.raise_for_status()
        result: Json = answer.json()
        return result

    def _api_patch(self, path: str, patch: Json) -> None:
        headers = {**self._api_headers, "Content-Type": "application/strategic-merge-patch+json"}
        answer = self._http.patch(self.api_url + path, content=json.dumps(patch), headers=headers)
        if answer.status_code != 404:  # the pod may be gone meanwhile
            answer.raise_for_status()


# -------------------------------------------------------------------- pure helpers


def fit_error(total: int, reasons: Mapping[str, str]) -> str:
    """kube-scheduler's ``FitError`` text: ``0/N nodes are available: 2 reason-a, 1 reason-b.``

    A node can carry several reasons separated by ", " (as the resource-fit plugin reports
    them); each counts once. Entries are ``"<count> <reason>"`` sorted as strings.
    """
    histogram: collections.Counter[str] = collections.Counter()
    for text in reasons.values():
        for reason in _split_reasons(text):
            histogram[reason] += 1
    entries = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{total} nodes are available: {', '.join(entries)}."


def _split_reasons(text: str) -> Iterable[str]:
    if text.startswith("Insufficient "):
        return [part.strip() for part in text.split(", ") if part.strip()]
    return [text]


def _priority(pod: Mapping[str, Any]) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def _pod_path(pod: Mapping[str, Any]) -> str:
    metadata = pod["metadata"]
    return f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bound_to(pods: Iterable[Json], node_name: str) -> list[Json]:
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node_name
        and (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
    ]


def _requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Extended-resource requests as kube-scheduler counts them; a pod whose amounts cannot be
    read asks for nothing here (the extender reports it)."""
    try:
        return k8s_pods.extended_requests(pod)
    except k8s_pods.PodError:
        return {}


def _insufficient(
    pod: Json, node: Json, bound: Iterable[Json], *, ignore: Iterable[Json] = ()
) -> list[str]:
    wanted = _requests(pod)
    if not wanted:
        return []
    skipped = {p["metadata"]["uid"] for p in ignore}
    used: dict[str, int] = collections.defaultdict(int)
    for other in bound:
        if other["metadata"]["uid"] in skipped:
            continue
        for name, value in _requests(other).items():
            used[name] += value
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    short = []
    for name, value in sorted(wanted.items()):
        try:
            free = int(str(allocatable.get(name, 0))) - used[name]
        except ValueError:
            free = 0
        if value > free:
            short.append(name)
    return short


def _unresolvable_reason(pod: Json, node: Json) -> str | None:
    spec = pod.get("spec") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    taints = list((node.get("spec") or {}).get("taints") or [])
    conditions = {
        c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []
    }
    if conditions.get("Ready") != "True":
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    tolerations = spec.get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            value = taint.get("value", "")
            return f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()) or not _required_affinity(spec, labels):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return bool(
        toleration.get("key") == taint.get("key")
        and toleration.get("value", "") == taint.get("value", "")
    )


def _required_affinity(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(_term_matches(term, labels) for term in terms)


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expression in term.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op in ("Gt", "Lt"):
            try:
                number, bound = int(labels.get(key, "")), int(values[0])
            except (ValueError, IndexError):
                return False
            if (op == "Gt" and not number > bound) or (op == "Lt" and not number < bound):
                return False
    return True


def _victims(pod: Json, node: Json, bound: list[Json]) -> list[Json]:
    """kube-scheduler's ``SelectVictimsOnNode``: remove lower-priority pods, reprieve what fits."""
    lower = [
        p
        for p in bound
        if _priority(p) < _priority(pod) and not p["metadata"].get("deletionTimestamp")
    ]
    if not lower or _insufficient(pod, node, bound, ignore=lower):
        return []
    # Reprieve the most important first: higher priority, then older.
    lower.sort(key=lambda p: (-_priority(p), p["metadata"].get("creationTimestamp", "")))
    victims = list(lower)
    for candidate in lower:
        remaining = [v for v in victims if v is not candidate]
        if not _insufficient(pod, node, bound, ignore=remaining):
            victims = remaining
    return victims


def _narrow(
    candidates: Mapping[str, list[Json]], answer: Mapping[str, Any]
) -> dict[str, list[Json]]:
    """Apply the extender's ``NodeNameToMetaVictims``: only nodes and UIDs it was given."""
    narrowed: dict[str, list[Json]] = {}
    for node, meta in answer.items():
        if node not in candidates or meta is None:
            continue
        uids = {p.get("UID") for p in meta.get("Pods") or []}
        by_uid = {v["metadata"]["uid"]: v for v in candidates[node]}
        if not uids <= set(by_uid):
            raise ExtenderError(f"preempt returned victims it was not given on {node}")
        if uids:
            narrowed[node] = [by_uid[uid] for uid in uids]
    return narrowed


def _victim_cost(victims: list[Json]) -> tuple[int, int, int]:
    """kube-scheduler's ``pickOneNodeForPreemption`` order (PDB violations are not counted)."""
    priorities = [_priority(v) for v in victims]
    return (max(priorities), sum(priorities), len(victims))
