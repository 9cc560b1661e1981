"""The Grafana dashboards shipped in the chart query only metrics gpufair declares.

The metric names and label names come from the registries the running processes serve
(``gpufair.operator.metrics.REGISTRY`` and the registry of an extender app), so the metrics
modules stay the one source of truth: renaming a metric or a label there fails here until the
dashboards follow. Every PromQL expression (panel targets and variable queries) is reduced to
its metric names, label matchers, grouping labels and functions by :func:`parse`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import prometheus_client
import prometheus_client.metrics
import prometheus_client.registry
import pytest
from tests.helm import chart_files, render

from gpufair.core import topology
from gpufair.extender import app as extender_app
from gpufair.extender import settings as extender_settings
from gpufair.operator import metrics as operator_metrics

TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container"})
"""Labels Prometheus (or a ServiceMonitor) adds to every scraped series."""

PANEL_TYPES = frozenset({"row", "timeseries", "stat", "bargauge", "table", "gauge"})
"""Panel types built into Grafana (no plugin to install)."""

GRAFANA_BUILTINS = frozenset({"__rate_interval", "__range", "__interval", "__range_s"})

KNOWN_LABEL_VALUES = {"level": frozenset(level.name for level in topology.LinkLevel)}
"""Literal label values a dashboard may match, where gpufair defines the set."""

FUNCTIONS = frozenset(
    {
        "sum", "min", "max", "avg", "count", "group", "topk", "bottomk", "quantile",
        "stddev", "stdvar", "count_values",
        "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
        "histogram_quantile", "label_replace", "label_join", "vector", "scalar", "time",
        "timestamp", "absent", "absent_over_time", "avg_over_time", "max_over_time",
        "min_over_time", "sum_over_time", "count_over_time", "last_over_time",
        "quantile_over_time", "predict_linear", "clamp", "clamp_min", "clamp_max", "abs",
        "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10", "sgn", "sort",
        "sort_desc",
    }
)  # fmt: skip
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan"}
)  # fmt: skip

_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


# -- what gpufair declares ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Declared:
    family: str
    labels: frozenset[str]


def _samples(family: str, kind: str) -> tuple[str, ...]:
    """The series names Prometheus sees for a family of ``kind`` (client_golang suffixes)."""
    if kind == "counter":
        return (f"{family}_total",)
    if kind == "histogram":
        return (f"{family}_bucket", f"{family}_sum", f"{family}_count")
    if kind == "summary":
        return (family, f"{family}_sum", f"{family}_count")
    return (family,)


def _declared_in(registry: prometheus_client.registry.CollectorRegistry) -> dict[str, Declared]:
    found: dict[str, Declared] = {}
    # The registry's collectors: label names are known even before any series exists.
    for collector in list(registry._collector_to_names):
        names: tuple[str, ...] = ()
        if isinstance(collector, prometheus_client.metrics.MetricWrapperBase):
            names = tuple(collector._labelnames)
        for family in collector.collect():
            labels = set(names)
            for sample in family.samples:
                labels.update(sample.labels)
            labels.discard("le")
            for sample_name in _samples(family.name, family.type):
                extra = {"le"} if sample_name.endswith("_bucket") else set()
                found[sample_name] = Declared(family.name, frozenset(labels | extra))
    return found


@functools.cache
def declared() -> dict[str, Declared]:
    """Every series name the operator or the extender can export, with its labels."""
    app = extender_app.create_app(extender_settings.ExtenderSettings(watch=False))
    extender_registry = app.state.runtime.metrics.registry
    return _declared_in(operator_metrics.REGISTRY) | _declared_in(extender_registry)


# -- PromQL, reduced to what the test checks ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Query:
    metrics: frozenset[str]
    matchers: tuple[tuple[str, str, str], ...]
    """(metric, label, value) of each label matcher."""
    grouping: frozenset[str]
    functions: frozenset[str]
    unnamed_selector: bool = False


def parse(expr: str) -> Query:
    """Metric names, matchers, grouping labels and functions of one PromQL expression."""
    label_values = _LABEL_VALUES.match(expr)
    if label_values:  # Grafana's variable query: label_values(<selector>, <label>)
        inner = (
            parse(label_values.group(1))
            if label_values.group(1)
            else Query(frozenset(), (), frozenset(), frozenset())
        )
        return dataclasses.replace(inner, grouping=inner.grouping | {label_values.group(2)})
    matchers: list[tuple[str, str, str]] = []
    unnamed = False
    for selector in _SELECTOR.finditer(expr):
        metric = selector.group(1) or ""
        unnamed = unnamed or not metric
        matchers.extend((metric, m.group(1), m.group(3)) for m in _MATCHER.finditer(selector[2]))
    text = _SELECTOR.sub(lambda m: m.group(1) or "", expr)
    grouping = {
        label.strip()
        for clause in _GROUPING.finditer(text)
        for label in clause.group(1).split(",")
        if label.strip()
    }
    text = _GROUPING.sub(" ", text)
    for pattern in (_RANGE, _STRING, _VARIABLE):
        text = pattern.sub(" ", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    for ident in _IDENTIFIER.finditer(text):
        name = ident.group(1)
        if name in KEYWORDS:
            continue
        if ident.group(2):
            functions.add(name)
        else:
            metrics.add(name)
    return Query(frozenset(metrics), tuple(matchers), frozenset(grouping), frozenset(functions),
                 unnamed)  # fmt: skip


def problems(expr: str, *, legend: str = "") -> list[str]:
    """What is wrong with ``expr`` against the declared metrics (empty: nothing)."""
    catalog = declared()
    query = parse(expr)
    found: list[str] = []
    if query.unnamed_selector:
        found.append("a selector without a metric name")
    found += [f"unknown function {name}()" for name in sorted(query.functions - FUNCTIONS)]
    unknown = sorted(query.metrics - catalog.keys())
    found += [f"metric {name} is declared by neither registry" for name in unknown]
    known = [catalog[name] for name in query.metrics if name in catalog]
    available = TARGET_LABELS.union(*(item.labels for item in known))
    for metric, label, value in query.matchers:
        labels = catalog[metric].labels if metric in catalog else frozenset()
        if metric in catalog and label not in labels | TARGET_LABELS:
            found.append(f"{metric} has no label {label!r} (it has {sorted(labels)})")
        allowed = KNOWN_LABEL_VALUES.get(label)
        if allowed is not None and "$" not in value:
            found += [
                f"{label}={part!r} is not one of {sorted(allowed)}"
                for part in value.split("|")
                if part not in allowed
            ]
    if known:
        found += [
            f"grouping label {label!r} is on none of {sorted(query.metrics)}"
            for label in sorted(query.grouping - available)
        ]
        found += [
            f"legend label {label!r} is on none of {sorted(query.metrics)}"
            for label in _LEGEND.findall(legend)
            if label not in available
        ]
    elif not query.metrics:
        found.append("no metric in the expression")
    return found


# -- the dashboards --------------------------------------------------------------------------


def dashboard_paths() -> list[pathlib.Path]:
    return sorted(chart_files.DASHBOARDS.glob("*.json"))


def load(path: pathlib.Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) of every panel target and every query variable."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target.get('refId')}"
            yield where, target.get("expr", ""), target.get("legendFormat", "")
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield f"variable {variable['name']!r}", text, ""


BOARDS = [pytest.param(path, id=path.stem) for path in dashboard_paths()]


def test_the_chart_ships_the_three_dashboards() -> None:
    assert {path.stem for path in dashboard_paths()} == {"tenants", "pools", "extender"}


@pytest.mark.parametrize("path", BOARDS)
def test_every_query_uses_declared_metrics_and_labels(path: pathlib.Path) -> None:
    board = load(path)
    found = [
        f"{where}: {problem}  [{expr}]"
        for where, expr, legend in expressions(board)
        for problem in problems(expr, legend=legend)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", BOARDS)
def test_dashboard_structure(path: pathlib.Path) -> None:
    board = load(path)
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert board["uid"].startswith("gpufair-")
    assert board["title"]
    assert "datasource" in variables
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        assert panel["type"] in PANEL_TYPES, f"{panel['title']!r}: {panel['type']}"
        grid = panel["gridPos"]
        assert grid["w"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']!r} has no query"
        assert panel.get("description"), f"{panel['title']!r} says nothing about what it answers"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        if "repeat" in panel:
            assert panel["repeat"] in variables, panel["title"]
        text = json.dumps(panel["targets"]) + panel["title"]
        used = {match.group(1) for match in _VARIABLE.finditer(text)}
        assert used <= variables | GRAFANA_BUILTINS, f"{panel['title']!r}: {used - variables}"


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in dashboard_paths()]
    assert len(uids) == len(set(uids))


def test_every_declared_metric_is_on_a_dashboard() -> None:
    """A new metric gets a panel (or this test names the one nobody can see)."""
    used = {
        name for path in dashboard_paths() for _, expr, _ in expressions(load(path))
        for name in parse(expr).metrics
    }  # fmt: skip
    families = {item.family for item in declared().values()}
    seen = {declared()[name].family for name in used if name in declared()}
    unseen = sorted(families - seen)
    assert not unseen, f"no dashboard panel shows {unseen}: add one in helm/gpufair/dashboards/"


# -- the checker itself can fail -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        pytest.param("rate(gpufair_nope_total[5m])", "gpufair_nope_total", id="unknown-metric"),
        pytest.param(
            "sum(rate(gpufair_tenant_gpu_seconds[5m]))",
            "gpufair_tenant_gpu_seconds is declared",
            id="counter-without-total",
        ),
        pytest.param(
            "gpufair_queue_wait_seconds", "gpufair_queue_wait_seconds", id="histogram-bare-name"
        ),
        pytest.param(
            'gpufair_pool_free_gpus{tenant="a"}', "no label 'tenant'", id="label-not-on-metric"
        ),
        pytest.param(
            "sum by (verb) (gpufair_pool_free_gpus)", "grouping label 'verb'", id="bad-grouping"
        ),
        pytest.param(
            'gpufair_extender_placements_total{level="NVLINK4"}', "'NVLINK4'", id="bad-level"
        ),
        pytest.param("rat(gpufair_pool_free_gpus[5m])", "unknown function rat()", id="typo-fn"),
        pytest.param('{__name__="gpufair_pool_free_gpus"}', "without a metric name", id="unnamed"),
        pytest.param("label_values(gpufair_pool_free_gpus, tenant)", "'tenant'", id="variable"),
    ],
)
def test_checker_rejects(expr: str, complaint: str) -> None:
    assert any(complaint in problem for problem in problems(expr)), problems(expr)


@pytest.mark.parametrize(
    "expr",
    [
        pytest.param(
            "histogram_quantile(0.95, sum by (le, tenant) "
            '(rate(gpufair_queue_wait_seconds_bucket{tenant=~"$tenant"}[$__rate_interval])))',
            id="histogram-quantile",
        ),
        pytest.param(
            'sum by (pool) (rate(gpufair_extender_placements_total{level=~"SELF|NVLINK"}[5m]))',
            id="level-alternation",
        ),
        pytest.param("1 - gpufair_pool_free_gpus / (gpufair_pool_capacity_gpus > 0)", id="math"),
        pytest.param("label_values(gpufair_pool_capacity_gpus, pool)", id="variable"),
        pytest.param(
            "(gpufair_tenant_waiting_pods > 0) and on (tenant, pool) gpufair_tenant_borrowed_gpus",
            id="and-on",
        ),
    ],
)
def test_checker_accepts(expr: str) -> None:
    assert problems(expr) == []


def test_catalog_knows_both_processes() -> None:
    catalog = declared()
    assert "gpufair_tenant_gpu_seconds_total" in catalog
    assert "gpufair_extender_request_duration_seconds_bucket" in catalog
    assert "gpufair_extender_cache_synced" in catalog
    assert catalog["gpufair_queue_wait_seconds_bucket"].labels == {"tenant", "pool", "le"}


# -- the suggested alerts use the same metrics -----------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    (rule,) = render.find(
        render.render_chart({"prometheusRule": {"enabled": True}}), "PrometheusRule"
    )
    return [item for group in rule["spec"]["groups"] for item in group["rules"]]


def test_alert_rules_use_declared_metrics_and_labels() -> None:
    rules = alert_rules()
    assert rules
    found = [
        f"alert {rule['alert']}: {problem}" for rule in rules for problem in problems(rule["expr"])
    ]
    assert not found, "\n".join(found)


def test_alert_rules_are_named_and_explained() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        assert rule["alert"].startswith("Gpufair"), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_the_chart_ships_each_dashboard_file_unchanged_in_a_labelled_configmap() -> None:
    """What Grafana's sidecar loads is the JSON these tests check, not a templated variant."""
    configmaps = render.find(render.render_chart({}), "ConfigMap")
    shipped = {
        key: json.loads(text)
        for configmap in configmaps
        if configmap["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, text in configmap["data"].items()
    }
    assert shipped == {f"gpufair-{path.name}": load(path) for path in dashboard_paths()}
