"""The Grafana dashboard in docs/grafana queries only metrics that the operator exposes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apiservice_operator.observability.metrics import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "apiservice-operator.json"
# Sample names that each metric type adds to its family name in Prometheus's text format.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "info": ("_info",),
    "gauge": ("",),
    "unknown": ("",),
}
# Parts of PromQL that look like metric names but are not: strings, label matchers, ranges,
# the label lists of by/without/on/ignoring/group_*, numbers and durations such as 5m, and
# Grafana's $variables.
NOT_NAMES = re.compile(
    r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]"
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    r"|\b\d[\w.]*"
    r"|\$\{?\w+\}?"
)
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
REQUIRED_METRICS = {
    "apiservice_operator_reconciles_total",
    "apiservice_operator_reconcile_duration_seconds_bucket",
    "apiservice_operator_child_applies_total",
    "apiservice_operator_apiservices",
    "apiservice_operator_api_errors_total",
    "apiservice_operator_build_info",
}


def exposed_names() -> set[str]:
    """Return every sample name that the registry can expose, series or not."""
    names = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """Return the metric names that a PromQL expression selects."""
    stripped = NOT_NAMES.sub(" ", expr)
    names = set()
    for match in IDENTIFIER.finditer(stripped):
        followed_by_call = stripped[match.end() :].lstrip().startswith("(")
        if not followed_by_call and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Yield every panel, including those inside collapsed rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


@pytest.fixture(scope="module")
def exprs(dashboard: dict[str, Any]) -> list[str]:
    found = [
        target["expr"]
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


def test_metric_names_parse() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{job=~"$job", x!="y"}'
        "[$__rate_interval]))) / on (job) group_left (version) b_info and c_total offset 5m"
    )

    assert metric_names(expr) == {"a_seconds_bucket", "b_info", "c_total"}


def test_label_values_parse() -> None:
    assert metric_names("label_values(apiservice_operator_build_info, job)") == {
        "apiservice_operator_build_info",
        "job",
    }


def test_exprs_use_exposed_metrics(exprs: list[str]) -> None:
    exposed = exposed_names()

    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        # label_values(metric, label) names a label as its second argument.
        if expr.startswith("label_values("):
            names -= {expr.rsplit(",", 1)[1].strip(" )")}
        assert names, expr
        assert names <= exposed, f"{sorted(names - exposed)} in {expr}"


def test_dashboard_covers_every_metric(exprs: list[str]) -> None:
    used = set().union(*(metric_names(expr) for expr in exprs))

    assert used >= REQUIRED_METRICS


def test_panels_use_datasource_variable(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard["panels"])]

    assert len(ids) == len(set(ids))
    for panel in panels(dashboard["panels"]):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), panel["title"]
