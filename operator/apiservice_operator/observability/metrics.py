"""Prometheus metrics of the operator, named by the Prometheus conventions.

All metrics live in one registry of their own, so a test or a second operator in the same
process starts from zero, and the default process collectors are added to it explicitly.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from apiservice_operator import __version__

# prometheus-client adds a `_created` gauge next to every counter and histogram series, which
# doubles the series count and which Prometheus's text format does not need.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RECONCILES = Counter(
    "apiservice_operator_reconciles",
    "Reconcile passes of ApiServices, by result: ready, progressing, stalled, suspended, error.",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "apiservice_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass of an ApiService, in seconds.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
CHILD_APPLIES = Counter(
    "apiservice_operator_child_applies",
    "Child objects handled by reconcile passes, by kind and outcome: "
    "applied, unchanged, created, deleted, failed.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
APISERVICES = Gauge(
    "apiservice_operator_apiservices",
    "ApiServices known to the operator, by the status of their Ready condition.",
    ["ready"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "apiservice_operator_api_errors",
    "Failed Kubernetes API requests, by HTTP status code (0 for a connection failure).",
    ["code"],
    registry=REGISTRY,
)
BUILD_INFO = Info(
    "apiservice_operator_build",
    "Version of the running operator.",
    registry=REGISTRY,
)
BUILD_INFO.info({"version": __version__})
