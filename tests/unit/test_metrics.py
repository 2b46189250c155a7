"""The operator's metrics follow the Prometheus naming conventions, as /metrics exposes them."""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest

from apiservice_operator import __version__
from apiservice_operator.observability import metrics
from apiservice_operator.observability.metrics import REGISTRY

PREFIX = "apiservice_operator_"
NAME = re.compile(r"^apiservice_operator_[a-z][a-z0-9_]*$")
BASE_UNITS = ("_seconds", "_bytes", "_ratio")
# Every family the operator exposes: name in the text format, type, and label names.
EXPECTED = {
    "apiservice_operator_reconciles_total": ("counter", {"result": "ready"}),
    "apiservice_operator_reconcile_duration_seconds": ("histogram", {}),
    "apiservice_operator_child_applies_total": (
        "counter",
        {"kind": "Deployment", "outcome": "applied"},
    ),
    "apiservice_operator_apiservices": ("gauge", {"ready": "true"}),
    "apiservice_operator_api_errors_total": ("counter", {"code": "500"}),
    "apiservice_operator_build_info": ("gauge", {"version": __version__}),
}
OBJECTS = {
    "apiservice_operator_reconciles_total": metrics.RECONCILES,
    "apiservice_operator_reconcile_duration_seconds": metrics.RECONCILE_DURATION,
    "apiservice_operator_child_applies_total": metrics.CHILD_APPLIES,
    "apiservice_operator_apiservices": metrics.APISERVICES,
    "apiservice_operator_api_errors_total": metrics.API_ERRORS,
}


def exposition() -> str:
    """Return the registry in Prometheus's text format, as the /metrics endpoint serves it."""
    return generate_latest(REGISTRY).decode()


def declared(kind: str) -> dict[str, str]:
    """Map each of the operator's family names to its HELP text or TYPE from the exposition."""
    pattern = re.compile(rf"^# {kind} ({PREFIX}\S+) (.*)$", re.MULTILINE)
    return dict(pattern.findall(exposition()))


@pytest.fixture(autouse=True)
def one_series_each() -> None:
    # A labelled metric appears in the exposition only once it has a series. labels() also
    # raises ValueError when the label names differ from the expected ones.
    for name, metric in OBJECTS.items():
        labels = EXPECTED[name][1]
        if labels:
            metric.labels(**labels)


def test_expected_families_exist() -> None:
    assert declared("TYPE") == {name: kind for name, (kind, _) in EXPECTED.items()}


def test_every_family_has_help() -> None:
    for name, text in declared("HELP").items():
        assert len(text) > 20, name
        assert text.endswith("."), name


def test_names_are_snake_case() -> None:
    for name in declared("TYPE"):
        assert NAME.match(name), name


def test_counters_end_in_total() -> None:
    for name, kind in declared("TYPE").items():
        assert name.endswith("_total") == (kind == "counter"), name


def test_histograms_name_their_unit() -> None:
    histograms = [name for name, kind in declared("TYPE").items() if kind == "histogram"]

    assert histograms
    for name in histograms:
        assert name.endswith(BASE_UNITS), name


def test_no_created_series() -> None:
    assert "_created" not in exposition()


def test_build_info_has_version() -> None:
    sample = f'apiservice_operator_build_info{{version="{__version__}"}} 1.0'

    assert sample in exposition().splitlines()
