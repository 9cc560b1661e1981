"""The chart's Grafana dashboards and alert rules, evaluated by a real Prometheus.

``tests/helm/test_dashboards.py`` checks statically that every query names declared metrics and
labels; this test runs them. A real ``prometheus`` (Debian package, installed by
``scripts/ensure-tools.sh``) scrapes the operator's and the extender's ``/metrics`` every second
and loads the chart's alert rules. A small scenario gives every metric family samples: one
DGX-1 node in a pool, tenant *a* (a guarantee and a soft GPU-hour budget) and tenant *b* (limit
1, ``onLimit: Reject``); GPU pods submitted through the operator's webhook and placed by the
scheduler driver through the extender, a pod of *b* denied at its limit, a malformed filter
call; all of it twice, the second wave after Prometheus has scraped the first, so that rate()
sees counters grow. Then every panel query of every dashboard, with Grafana's variables
expanded to the scenario's values, must be valid PromQL and return at least one series with a
number (not NaN), except the few listed in :data:`NO_DATA` with the reason; every variable
query must list the scenario's values; every alert expression must be valid PromQL and
evaluate without error as a loaded rule.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
import yaml
from tests.helm import chart_files

from e2e.harness import processes, scenario, waiting

pytestmark = pytest.mark.e2e

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
PROMETHEUS = "prometheus"
"""Debian's ``/usr/bin/prometheus``."""

JOBS = ("gpufair-operator", "gpufair-extender")

GRAFANA_BUILTINS = {
    "__rate_interval": "1m",  # Grafana: max(4 * scrape interval, step + scrape interval)
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
}

NO_DATA: Mapping[tuple[str, str, str], str] = {
    ("tenants", "Preemptions per hour by reason", "A"): (
        "no reclaim in this scenario: nobody waits below its guarantee, so nothing is evicted"
    ),
    ("tenants", "Evictions refused per hour", "A"): (
        "no eviction is attempted, so none is refused (needs a PodDisruptionBudget and reclaim)"
    ),
    ("extender", "Preemptions per hour by reason (operator)", "A"): (
        "the same counter as the tenants' preemption panel: no reclaim in this scenario"
    ),
    ("extender", "Reconcile errors per minute by stage", "A"): (
        "the counter has a stage label, so it has no series until a pass or a write fails"
    ),
    ("extender", "Pod group members per hour: bound on / off their plan, plan dropped", "A"): (
        "the counter has an outcome label, so it has no series until a pod group member is"
        " filtered off its plan or bound; this scenario runs no pod group"
    ),
}
"""Panel queries (dashboard, panel title, refId) that legitimately return nothing here."""

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")
_THRESHOLD = re.compile(r"\{\{\s*\$t\.(\w+)\s*\}\}")


# ---------------------------------------------------------------------------------------------
# the chart's queries


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted(chart_files.DASHBOARDS.glob("*.json"))
    }


def panel_targets(board: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every panel target (collapsed rows included)."""
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target.get("refId", ""), target["expr"]


def variable_queries(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable name, query) of every query variable."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable["name"], query["query"] if isinstance(query, dict) else query


def expand(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with Grafana's variables replaced (``$x``, ``${x}``, ``${x:regex}``)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        raise AssertionError(f"unknown variable ${name} in {expr}")

    return _VARIABLE.sub(value, expr)


def alert_rules() -> list[dict[str, Any]]:
    """The chart's alert rules as Helm renders them with the default thresholds: the
    thresholds come from ``values.yaml``, the rest of the template's actions are stripped
    (``chart_files.skeleton``, which also unwraps the raw ``{{`…`}}`` annotation strings)."""
    thresholds = chart_files.values()["prometheusRule"]["thresholds"]
    text = (chart_files.TEMPLATES / "prometheusrule.yaml").read_text()

    def threshold(match: re.Match[str]) -> str:
        assert match.group(1) in thresholds, f"values.yaml has no threshold {match.group(1)}"
        return str(thresholds[match.group(1)])

    documents = yaml.safe_load_all(chart_files.skeleton(_THRESHOLD.sub(threshold, text)))
    (rule,) = [doc for doc in documents if doc and doc.get("kind") == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    for group in groups:
        for item in group["rules"]:
            assert chart_files.PLACEHOLDER not in item["expr"], f"unrendered: {item['expr']}"
    return groups


# ---------------------------------------------------------------------------------------------
# prometheus


class Prometheus:
    """The HTTP API of the Prometheus this test runs."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (``status`` is ``success`` or ``error``)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)
        body: dict[str, Any] = answer.json()
        return body

    def series(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> set[str]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=5.0).json()
        return {t["labels"]["job"] for t in answer["data"]["activeTargets"] if t["health"] == "up"}

    def scraped_after(self, moment: float) -> bool:
        """Whether the last scrape of every job started after ``moment`` (Unix seconds)."""
        selector = "|".join(JOBS)
        series = self.series(f'timestamp(up{{job=~"{selector}"}})')
        return len(series) == len(JOBS) and all(float(s["value"][1]) > moment for s in series)

    def rules(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/rules", timeout=5.0).json()
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


def host_port(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}"


def start_prometheus(
    *,
    run_process: Callable[..., processes.Component],
    directory: pathlib.Path,
    stack: scenario.Stack,
) -> Prometheus:
    """A ``prometheus`` on a free port scraping the stack every second, with the chart's
    alert rules loaded (evaluated every second); storage in ``directory``."""
    binary = shutil.which(PROMETHEUS)
    if binary is None:
        scenario.missing_tool("prometheus", "no live dashboard check")
    assert stack.operator_metrics_url is not None
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": alert_rules()}))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "gpufair-operator",
                "static_configs": [{"targets": [host_port(stack.operator_metrics_url)]}],
            },
            {
                "job_name": "gpufair-extender",
                "static_configs": [{"targets": [host_port(stack.extender_url)]}],
            },
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    run_process(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        name="prometheus",
        ready_url=f"{url}/-/ready",
    )
    return Prometheus(url)


# ---------------------------------------------------------------------------------------------
# the scenario


@dataclasses.dataclass
class Scenario:
    """Two tenants in one pool on a DGX-1: *a* with a guarantee of 2 and a soft budget, *b*
    with a limit of 1 and ``onLimit: Reject``."""

    stack: scenario.Stack
    k8s: Any
    pool: str
    a: str
    b: str
    namespaces: dict[str, str]
    """Tenant name → its namespace."""

    @classmethod
    def set_up(
        cls,
        *,
        stack: scenario.Stack,
        k8s: Any,
        cleanup: scenario.Cleanup,
        make_gpu_node: Callable[..., dict[str, Any]],
    ) -> Scenario:
        pool, node = scenario.unique("dash"), scenario.unique("n")
        a, b = scenario.unique("tenant-a"), scenario.unique("tenant-b")
        namespaces = {a: cleanup.namespace(), b: cleanup.namespace()}
        make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
        cleanup.apply(scenario.pool_manifest(pool))
        cleanup.apply(
            scenario.quota_manifest(
                a,
                namespaces=[namespaces[a]],
                pools=[{"name": pool, "guaranteed": 2}],
                budget={"gpuHours": 1000, "period": "720h", "enforcement": "Soft"},
            )
        )
        cleanup.apply(
            scenario.quota_manifest(
                b,
                namespaces=[namespaces[b]],
                pools=[{"name": pool, "limit": 1}],
                on_limit="Reject",
            )
        )
        scenario.wait_known(k8s, a, b)
        return cls(stack=stack, k8s=k8s, pool=pool, a=a, b=b, namespaces=namespaces)

    def variables(self) -> dict[str, str]:
        """Values of the dashboards' variables that select this scenario."""
        return {"pool": self.pool, "tenant": f"{self.a}|{self.b}", "verb": ".*"}

    def place(self, pods: Mapping[tuple[str, str], int]) -> None:
        """Submit ``{(tenant, pod name): GPUs}`` through the webhook; schedule until bound."""
        for (tenant, name), gpus in pods.items():
            scenario.submit(self.k8s, self.namespaces[tenant], name, gpus)
        wanted = {(self.namespaces[tenant], name) for tenant, name in pods}

        def bound() -> bool:
            running = scenario.running_on_nodes(self.k8s, self.namespaces.values())
            names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in running}
            return wanted <= names

        with self.stack.driver(self.namespaces.values()) as driver:
            scenario.settle(bound, timeout=30, what=f"{sorted(wanted)} bound", driver=driver)

    def rejected(self, name: str) -> None:
        """*b* is at its limit of 1: the webhook denies one more pod (``onLimit: Reject``)."""
        import kubernetes

        scenario.settle(
            lambda: self.allocated(self.b) == 1, timeout=30, what=f"{self.b} at its limit"
        )
        scenario.wait_passes(self.stack, 1)  # the webhook knows what that pass knew
        with pytest.raises(kubernetes.client.ApiException) as denied:
            scenario.submit(self.k8s, self.namespaces[self.b], name, 1)
        assert denied.value.status == 403, "onLimit: Reject denies the pod over the limit"

    def allocated(self, tenant: str) -> Any:
        return scenario.pool_entry(scenario.quota_status(self.k8s, tenant), self.pool).get(
            "allocated"
        )

    def malformed_filter(self) -> None:
        """A call kube-scheduler would never send: the extender answers 400 and counts an
        error of filter (the errors panels)."""
        answer = httpx.post(f"{self.stack.extender_url}/filter", content=b'{"Pod": 1}')
        assert answer.status_code == 400


# ---------------------------------------------------------------------------------------------
# the test


def test_every_dashboard_query_and_alert_rule_runs_on_a_live_prometheus(
    stack: scenario.Stack,
    k8s: Any,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
    run_process: Callable[..., processes.Component],
    tmp_path: pathlib.Path,
) -> None:
    # Started first: it has scraped every counter before it grows in the second wave.
    prometheus = start_prometheus(
        run_process=run_process, directory=tmp_path / "prometheus", stack=stack
    )
    world = Scenario.set_up(stack=stack, k8s=k8s, cleanup=cleanup, make_gpu_node=make_gpu_node)
    variables = world.variables()

    # First wave: every metric family gets its series (placements SELF and NVLINK, an
    # admission per pod, a rejection at the limit, an error of filter).
    world.place({(world.a, "a1"): 1, (world.a, "a2"): 2, (world.b, "b1"): 1})
    world.rejected("b2")
    world.malformed_filter()
    first_wave = time.time()
    waiting.wait_for(
        lambda: prometheus.targets_up() >= set(JOBS),
        timeout=30,
        interval=0.5,
        what=f"Prometheus scraping {', '.join(JOBS)}",
    )
    waiting.wait_for(
        lambda: prometheus.scraped_after(first_wave),
        timeout=30,
        interval=0.5,
        what="a scrape of both targets after the first wave",
    )
    # Second wave: the same counters grow again, so rate() is above 0 and the quantiles of
    # rate()s are numbers, not NaN.
    world.place({(world.a, "a3"): 1})
    world.rejected("b3")
    world.malformed_filter()

    boards = dashboards()
    queries = {
        (board, title, ref): expand(expr, variables)
        for board, body in boards.items()
        for title, ref, expr in panel_targets(body)
    }
    assert set(NO_DATA) <= set(queries), f"NO_DATA names no panel: {set(NO_DATA) - set(queries)}"

    # Valid PromQL: the API parses every query (an error is immediate, no need to wait).
    invalid = {
        key: body.get("error")
        for key, expr in queries.items()
        if (body := prometheus.query(expr))["status"] != "success"
    }
    assert not invalid, "invalid PromQL:\n" + "\n".join(
        f"{key}: {error}\n    {queries[key]}" for key, error in invalid.items()
    )

    # Data: at least one series with a number (not NaN). Gauges have it after one scrape,
    # rate() and increase() after the scrape that follows the second wave: poll.
    missing = {key for key in queries if key not in NO_DATA}

    def has_numbers(expr: str) -> bool:
        return any(not math.isnan(float(s["value"][1])) for s in prometheus.series(expr))

    def all_have_data() -> bool:
        missing.difference_update({key for key in missing if has_numbers(queries[key])})
        return not missing

    try:
        waiting.wait_for(all_have_data, timeout=30, interval=0.5, what="data in every panel")
    except waiting.WaitTimeoutError:
        pytest.fail(
            "panel queries without a number"
            " (fix the query, or list it in NO_DATA with the reason):\n"
            + "\n".join(f"{key}\n    {queries[key]}" for key in sorted(missing))
        )

    # Variables: each lists the scenario's values (label_values(<selector>, <label>)).
    expected = {
        "pool": {variables["pool"]},
        "tenant": set(variables["tenant"].split("|")),
        "verb": {"filter", "bind"},
    }
    for board, body in boards.items():
        for name, query in variable_queries(body):
            parsed = _LABEL_VALUES.match(query)
            assert parsed, f"{board} ${name}: not label_values(<selector>, <label>): {query}"
            assert parsed.group(1), f"{board} ${name}: label_values without a selector"
            assert name in expected, f"{board} ${name}: say in this test what it should list"
            selector, label = expand(parsed.group(1), variables), parsed.group(2)
            listed = {
                s["metric"].get(label)
                for s in prometheus.series(f"group by ({label}) ({selector})")
            }
            assert expected[name] <= listed, f"{board} ${name} lists {sorted(map(str, listed))}"

    # Alerts: valid PromQL as queries, and evaluated without error as loaded rules.
    groups = alert_rules()
    alerts = {item["alert"]: item["expr"] for group in groups for item in group["rules"]}
    bad = {
        name: body.get("error")
        for name, expr in alerts.items()
        if (body := prometheus.query(expr))["status"] != "success"
    }
    assert not bad, f"invalid alert expressions: {bad}"

    def rules_evaluated() -> list[dict[str, Any]] | None:
        loaded = prometheus.rules()
        evaluated = [r for r in loaded if not r.get("lastEvaluation", "").startswith("0001")]
        return loaded if len(evaluated) == len(alerts) else None

    loaded = waiting.wait_for(
        rules_evaluated, timeout=15, interval=0.5, what="every alert rule evaluated"
    )
    assert {r["name"] for r in loaded} == set(alerts)
    failing = {r["name"]: r.get("lastError") for r in loaded if r["health"] != "ok"}
    assert not failing, f"alert rules failing to evaluate: {failing}"
