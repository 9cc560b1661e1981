"""Issue 13 deliverable 4: every extender endpoint under generated requests, well formed or not.

10,000 requests per endpoint per run (2,000 Hypothesis examples, each expanded into 5
requests), sent straight into the ASGI app (no HTTP client: ~0.3 ms a request). Checked for
every request: no 5xx, an answer within 5 s (kube-scheduler's timeout), and for a malformed
body a 400 whose text names the wire type and what is wrong. Afterwards the cache is exactly
as before: the pod writer refuses every binding, so a bind that got as far as assuming GPUs
must forget them.

Each draw is kube-scheduler's own shape with hostile values (unicode and huge names,
negative, fractional and absurd GPU requests, ``null`` where Go sends nil, unknown nodes,
thousands of candidates), sent as is, with a key dropped or replaced by junk, and cut short;
plus arbitrary JSON and raw bytes.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import cluster, kube

from gpufair.extender import app as extender_app
from gpufair.extender import settings as extender_settings

EXAMPLES = 2_000
PER_EXAMPLE = 5
PER_ENDPOINT = EXAMPLES * PER_EXAMPLE
TIMEOUT_SECONDS = 5.0
NODES = ["n1", "n2", "busy", "cpu"]
VERBS = {
    "/filter": "ExtenderArgs",
    "/prioritize": "ExtenderArgs",
    "/preempt": "ExtenderPreemptionArgs",
    "/bind": "ExtenderBindingArgs",
}
PROBES = ("/healthz", "/readyz", "/metrics")

sent: collections.Counter[str] = collections.Counter()


class RefusingWriter(cluster.FakeWriter):
    """Reads any pod the request names (as the fuzzed pod itself), refuses every binding."""

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        if name.startswith("missing"):
            return None
        return kube.pod(name, namespace=namespace, gpus=1 + len(name) % 4)


# -- strategies ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
names_ = st.sampled_from([*NODES, "unknown", ""]) | st.text(min_size=0, max_size=40)
quantities = (
    st.sampled_from(["1", "8", "0", "-1", "0.5", "500m", "1e3", "1Ki", "2**64", "", "x", "NaN"])
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | json_values
)


@st.composite
def pods(draw: st.DrawFn) -> Any:
    """A pod as kube-scheduler sends it, with hostile values in the places gpufair reads."""
    pod: dict[str, Any] = kube.pod(
        draw(st.sampled_from(["train", "missing-x"]) | st.text(min_size=1, max_size=20)),
        namespace=draw(st.sampled_from(["team-a", "team-b", "nobody"]) | st.text(max_size=10))
        or "ns",
        gpus=None,
    )
    resources = draw(
        st.dictionaries(
            st.sampled_from(["nvidia.com/gpu", "cpu", "example.com/gpu"]) | st.text(max_size=12),
            quantities,
            max_size=3,
        )
    )
    container = pod["spec"]["containers"][0]
    container["resources"] = draw(
        st.sampled_from(
            [{"limits": resources}, {"requests": resources, "limits": resources}, resources]
        )
    )
    for path, value in draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        ("spec",),
                        ("spec", "containers"),
                        ("spec", "initContainers"),
                        ("spec", "nodeSelector"),
                        ("spec", "affinity"),
                        ("spec", "priority"),
                        ("spec", "overhead"),
                        ("metadata", "annotations"),
                        ("metadata", "uid"),
                        ("metadata", "labels"),
                        ("status",),
                    ]
                ),
                json_values,
            ),
            max_size=2,
        )
    ):
        target = pod
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[path[-1]] = value
    return pod


candidates = st.lists(names_, max_size=6) | st.just([f"n{i}" for i in range(3000)])


@st.composite
def filter_bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {"Pod": draw(pods())}
    node_names = draw(candidates)
    if draw(st.booleans()):
        body["NodeNames"] = node_names
        body["Nodes"] = None
    else:
        items = [{"metadata": {"name": n}} for n in node_names[:6]]
        body["Nodes"] = draw(st.sampled_from([{"items": items}, {"items": None}, {}]))
    return body


@st.composite
def preempt_bodies(draw: st.DrawFn) -> Any:
    victims = st.dictionaries(
        names_,
        st.none()
        | st.fixed_dictionaries(
            {
                "Pods": st.none() | st.lists(st.fixed_dictionaries({"UID": st.text(max_size=8)})),
                "NumPDBViolations": st.integers(min_value=-(2**40), max_value=2**40),
            }
        ),
        max_size=4,
    )
    key = draw(st.sampled_from(["NodeNameToMetaVictims", "NodeNameToVictims"]))
    return {"Pod": draw(pods()), key: draw(victims)}


bind_bodies = st.fixed_dictionaries(
    {
        "PodName": st.sampled_from(["train", "missing-x"]) | st.text(max_size=20),
        "PodNamespace": st.sampled_from(["team-a", "team-b"]) | st.text(max_size=10),
        "PodUID": st.text(max_size=10),
        "Node": names_,
    }
)
WELL_FORMED = {
    "/filter": filter_bodies(),
    "/prioritize": filter_bodies(),
    "/preempt": preempt_bodies(),
    "/bind": bind_bodies,
}


@st.composite
def batches(draw: st.DrawFn, path: str) -> list[bytes]:
    """Five requests from one draw: the body as kube-scheduler would shape it, the same with
    one key dropped or replaced by junk, cut short, arbitrary JSON, and raw bytes."""
    body = draw(WELL_FORMED[path])
    junk = draw(json_values)
    whole = json.dumps(body).encode()
    mangled = dict(body)
    key = draw(st.sampled_from(sorted(mangled)))
    if draw(st.booleans()):
        del mangled[key]
    else:
        mangled[key] = junk
    cut = draw(st.integers(min_value=0, max_value=max(0, len(whole) - 1)))
    return [
        whole,
        json.dumps(mangled).encode(),
        whole[:cut],
        json.dumps(junk).encode(),
        draw(st.binary(max_size=48)),
    ]


# -- the app, called as ASGI -----------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.state = cluster.cluster(
            nodes=[
                kube.node("n1", kube.dgx1()),
                kube.node("n2", kube.nvswitch()),
                kube.node("busy", kube.dgx1()),
                kube.node("cpu", None, pool_label=None, allocatable=0),
            ],
            pods=[kube.pod("held", gpus=8, node="busy", bound=list(range(8)))],
            quotas=[kube.quota("team-a", pools={"h100": (4, 6)}), kube.quota("team-b")],
        )
        self.app = extender_app.create_app(
            extender_settings.ExtenderSettings(watch=False),
            state=self.state,
            writer=RefusingWriter(self.state, fail_bind="409 Conflict: refused by the fuzz"),
        )
        self.loop = asyncio.new_event_loop()

    def call(
        self, method: str, path: str, body: bytes = b"", query: bytes = b""
    ) -> tuple[int, bytes]:
        return self.loop.run_until_complete(
            asyncio.wait_for(self._call(method, path, body, query), TIMEOUT_SECONDS)
        )

    async def _call(self, method: str, path: str, body: bytes, query: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8888),
            "app": self.app,
        }
        chunks = [{"type": "http.request", "body": body, "more_body": False}]
        status = [0]
        out: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if chunks:
                return chunks.pop()
            await asyncio.sleep(3600)  # a disconnect never comes
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status[0], b"".join(out)

    def picture(self) -> tuple[Any, ...]:
        snapshot = self.state.snapshot()
        return (
            {name: (view.free, view.hidden) for name, view in snapshot.nodes.items()},
            dict(snapshot.usage),
            dict(snapshot.assumed),
            self.state.pod_count(),
        )


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    made = Harness()
    before = made.picture()
    yield made
    assert made.picture() == before, "fuzzing changed the cache"
    made.loop.close()
    print(f"\nextender fuzz: requests per endpoint {dict(sorted(sent.items()))}")
    assert all(sent[path] >= PER_ENDPOINT for path in [*VERBS, *PROBES])


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_verb(harness: Harness, path: str, body: bytes) -> None:
    status, answer = harness.call("POST", path, body)
    sent[path] += 1
    assert status in (200, 400), (status, answer[:300], body[:300])
    if status == 400:
        text = answer.decode()
        assert text.startswith(f"{VERBS[path]}: "), text
        assert "Traceback" not in text
        return
    decoded = json.loads(answer)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    assert parsed is not None, f"{body[:100]!r} was not JSON but answered 200"
    if path == "/bind":
        assert decoded["Error"], "the writer refuses every binding"


@pytest.mark.parametrize("path", list(VERBS))
def test_every_verb_answers_generated_bodies_without_5xx(harness: Harness, path: str) -> None:
    @FUZZ
    @given(batches(path))
    def run(batch: list[bytes]) -> None:
        for body in batch:
            check_verb(harness, path, body)

    run()


methods = st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
queries = st.binary(max_size=40) | st.text(max_size=40).map(str.encode)


@pytest.mark.parametrize("path", PROBES)
def test_probes_and_metrics_answer_any_method_and_query(harness: Harness, path: str) -> None:
    @FUZZ
    @given(
        st.lists(
            st.tuples(methods, queries, st.binary(max_size=32)),
            min_size=PER_EXAMPLE,
            max_size=PER_EXAMPLE,
        )
    )
    def run(batch: list[tuple[str, bytes, bytes]]) -> None:
        for method, query, body in batch:
            status, answer = harness.call(method, path, body, query)
            sent[path] += 1
            if method == "GET":  # HEAD too is 405: FastAPI's GET routes take GET only
                assert status == 200, (method, status, answer[:200])
            else:
                assert status == 405, (method, status, answer[:200])

    run()


def test_a_verb_called_with_the_wrong_method_is_405(harness: Harness) -> None:
    for path in VERBS:
        assert harness.call("GET", path)[0] == 405
        assert harness.call("PUT", path, b"{}")[0] == 405
