"""Metrics, logs, Events and health probes of a real operator process on the local cluster.

The tests in this module share one operator that logs at DEBUG, so that Kopf's own DEBUG lines,
which include object bodies and diffs, are part of the secret-leak check. It replaces the
session's operator for this module, because two operators on one cluster would both reconcile.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from apiservice_operator import __version__
from tests.support.apiservices import example, wait_condition, wait_ready
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

MANAGED = "catalog"  # the minimal example, with managed PostgreSQL and Redis
EXTERNAL = "orders"  # the external-databases example
EXTERNAL_SECRETS = ("orders-postgres", "orders-redis")
# Every secret value of the cycle: generated ones, and the external URLs with their passwords.
SECRET_LABELS = {
    *(
        f"{MANAGED}-credentials/{key}"
        for key in (
            "POSTGRES_PASSWORD",
            "REDIS_PASSWORD",
            "JWT_SECRET",
            "DATABASE_URL",
            "REDIS_URL",
        )
    ),
    *(
        f"{EXTERNAL}-credentials/{key}"
        for key in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")
    ),
    *(f"{name}/url" for name in EXTERNAL_SECRETS),
    *(f"{name}/url password" for name in EXTERNAL_SECRETS),
}
# Log lines that a reconcile pass writes; each must name the object and the handler.
PASS_EVENTS = {
    "reconcile started",
    "reconciled",
    "reconcile stalled",
    "reconcile failed, retrying",
    "applied child",
    "deleted child",
    "created credentials secret",
}
OBJECT_FIELDS = ("namespace", "name", "uid", "generation", "handler")


@pytest.fixture(scope="module")
def debug_operator(
    cluster: Cluster,
    crd_installed: Path,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """Run an operator at DEBUG in place of the session's one; `running_operator` restarts it."""
    operator.stop()
    process = OperatorProcess(
        cluster=cluster,
        log_path=tmp_path_factory.mktemp("debug-operator") / "log",
        extra_args=("--log-level", "DEBUG"),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


# Helpers.


def sample(text: str, name: str, **labels: str) -> float:
    """Return one sample's value from the text format, or 0 when the series does not exist."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return 0.0


def renamed(documents: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    """Rename the documents of one kind, so two examples can share a namespace."""
    for document in documents:
        if document["kind"] == kind:
            document["metadata"]["name"] = name
    return documents


def external_example() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Return the external-databases example with fresh passwords in its URL Secrets."""
    urls = {
        "orders-postgres": (
            f"postgresql://orders:{secrets.token_urlsafe(18)}@postgres.db.example:5432/orders"
            "?sslmode=require"
        ),
        "orders-redis": f"rediss://:{secrets.token_urlsafe(18)}@redis.cache.example:6380/0",
    }
    documents = example("external-databases")
    for document in documents:
        if document["kind"] == "Secret":
            document["stringData"] = {"url": urls[document["metadata"]["name"]]}
    return documents, urls


def secret_values(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """Decode a Secret's data."""
    data = cluster.get_json(f"secret/{name}", "-n", namespace)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def patch_spec(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    patch = json.dumps({"spec": spec})
    cluster.kubectl("patch", "apisvc", name, "-n", namespace, "--type=merge", "-p", patch)


def log_lines(process: OperatorProcess) -> list[dict[str, Any]]:
    """Parse every line of the operator's log; a line that is not JSON fails the test."""
    lines = []
    for number, text in enumerate(process.logs().splitlines(), start=1):
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as error:
            raise AssertionError(f"log line {number} is not JSON: {text[:300]!r}") from error
    return lines


def deleted_names(lines: list[dict[str, Any]], namespace: str) -> set[str]:
    """Return the names of the ApiServices whose delete handler has logged in a namespace."""
    return {
        line["name"]
        for line in lines
        if line.get("namespace") == namespace and line["event"].startswith("apiservice deleted")
    }


def forms(value: str) -> set[str]:
    """Return a secret value as it would appear in a log or an Event: plain or in base64."""
    return {value, base64.b64encode(value.encode()).decode()}


# Metrics.


def test_metrics_count_reconciles(
    cluster: Cluster, namespace: str, debug_operator: OperatorProcess
) -> None:
    before = debug_operator.metrics()
    external, _ = external_example()
    cluster.apply(renamed(example("minimal"), "ApiService", MANAGED), namespace)
    cluster.apply(external, namespace)
    wait_ready(cluster, namespace, MANAGED)
    wait_ready(cluster, namespace, EXTERNAL)
    deployments = len(cluster.get_json("deployments", "-n", namespace)["items"])

    def counted() -> str | None:
        text = debug_operator.metrics()
        ready_gauge = sample(text, "apiservice_operator_apiservices", ready="true")
        return text if ready_gauge >= 2 else None

    after = wait_for(counted, timeout=10, description="both ApiServices in the ready gauge")

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert deployments == 8  # api, worker, postgres, redis, edge + api, worker, edge
    assert delta("apiservice_operator_reconciles_total", result="ready") >= 2
    assert delta("apiservice_operator_reconcile_duration_seconds_count") >= 2
    assert delta("apiservice_operator_reconcile_duration_seconds_sum") > 0
    applied = delta("apiservice_operator_child_applies_total", kind="Deployment", outcome="applied")
    assert applied >= deployments
    assert delta("apiservice_operator_child_applies_total", kind="Secret", outcome="created") >= 2
    assert sample(after, "apiservice_operator_apiservices", ready="true") >= 2
    assert sample(after, "apiservice_operator_build_info", version=__version__) == 1


# Logs and Events.


def run_full_cycle(cluster: Cluster, namespace: str) -> dict[str, set[str]]:
    """Create, break, repair, edit and delete two ApiServices; return the secret values seen."""
    external, urls = external_example()
    missing = [doc for doc in external if doc["metadata"]["name"] == "orders-postgres"]
    cluster.apply(renamed(example("minimal"), "ApiService", MANAGED), namespace)
    cluster.apply([doc for doc in external if doc not in missing], namespace)
    wait_condition(cluster, namespace, EXTERNAL, "Stalled")
    cluster.apply(missing, namespace)
    wait_ready(cluster, namespace, EXTERNAL)
    wait_ready(cluster, namespace, MANAGED)

    for name in (MANAGED, EXTERNAL):
        patch_spec(cluster, namespace, name, {"logLevel": "DEBUG", "api": {"replicas": 3}})
    for name in (MANAGED, EXTERNAL):
        wait_ready(cluster, namespace, name)

    values: dict[str, set[str]] = {}
    for name in (MANAGED, EXTERNAL):
        for key, value in secret_values(cluster, namespace, f"{name}-credentials").items():
            values[f"{name}-credentials/{key}"] = forms(value)
    for secret_name, url in urls.items():
        password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        values[f"{secret_name}/url"] = forms(url)
        values[f"{secret_name}/url password"] = forms(password)

    for name in (MANAGED, EXTERNAL):
        cluster.kubectl("delete", "apisvc", name, "-n", namespace, "--timeout=60s")
    return values


@pytest.fixture(scope="module")
def full_cycle(cluster: Cluster, debug_operator: OperatorProcess) -> Iterator[dict[str, Any]]:
    """Run the full cycle once in its own namespace and collect what it left behind."""
    namespace = f"t-observability-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=30s"
    )
    try:
        values = run_full_cycle(cluster, namespace)
        # The deleted handler reacts to the DELETED watch event, which may come after kubectl
        # delete returns.
        wait_for(
            lambda: deleted_names(log_lines(debug_operator), namespace) == {MANAGED, EXTERNAL},
            timeout=30,
            description="the delete handler's log lines",
        )
        yield {
            "namespace": namespace,
            "values": values,
            "logs": debug_operator.logs(),
            "lines": log_lines(debug_operator),
            "events": cluster.get_json("events", "-n", namespace),
        }
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_logs_contain_no_secret(full_cycle: dict[str, Any]) -> None:
    logs = full_cycle["logs"]

    assert set(full_cycle["values"]) == SECRET_LABELS
    for label, forms_of_value in full_cycle["values"].items():
        for form in forms_of_value:
            assert form not in logs, f"{label} appears in the operator's log"


def test_events_contain_no_secret(full_cycle: dict[str, Any]) -> None:
    events = json.dumps(full_cycle["events"])

    assert full_cycle["events"]["items"]
    for label, forms_of_value in full_cycle["values"].items():
        for form in forms_of_value:
            assert form not in events, f"{label} appears in an Event"


def test_pass_lines_name_object_and_handler(full_cycle: dict[str, Any]) -> None:
    namespace = full_cycle["namespace"]
    lines = [
        line
        for line in full_cycle["lines"]
        if line.get("namespace") == namespace and line["event"] in PASS_EVENTS
    ]
    seen = {(line["name"], line["event"]) for line in lines}

    assert (MANAGED, "reconciled") in seen
    assert (EXTERNAL, "reconciled") in seen
    assert (EXTERNAL, "reconcile stalled") in seen
    assert (MANAGED, "reconcile started") in seen
    assert (MANAGED, "created credentials secret") in seen
    for line in lines:
        missing = [field for field in OBJECT_FIELDS if line.get(field) in (None, "")]
        assert not missing, f"{line['event']!r} lacks {missing}: {line}"
        assert isinstance(line["generation"], int), line
        assert line["level"] in ("debug", "info", "warning"), line
        assert line["timestamp"].endswith("Z"), line
        assert line["logger"].startswith("apiservice_operator."), line


def test_generation_and_handler_follow_changes(full_cycle: dict[str, Any]) -> None:
    namespace = full_cycle["namespace"]
    ours = [line for line in full_cycle["lines"] if line.get("namespace") == namespace]
    started = [
        line for line in ours if line["event"] == "reconcile started" and line["name"] == MANAGED
    ]
    stalled = [line for line in ours if line["event"] == "reconcile stalled"]

    assert started[0]["handler"] == "create"
    assert started[0]["generation"] == 1
    assert any(line["handler"] == "update" and line["generation"] == 2 for line in started)
    assert len({line["uid"] for line in started}) == 1
    assert stalled
    assert stalled[0]["reason"] == "MissingReference"
    assert "orders-postgres" in stalled[0]["error"]


def test_delete_line_names_object(full_cycle: dict[str, Any]) -> None:
    namespace = full_cycle["namespace"]
    deleted = [
        line
        for line in full_cycle["lines"]
        if line.get("namespace") == namespace and line["event"].startswith("apiservice deleted")
    ]

    assert {line["name"] for line in deleted} == {MANAGED, EXTERNAL}
    for line in deleted:
        assert line["handler"] == "delete"
        assert line["uid"]
        assert line["generation"] >= 2


def test_events_report_changes_and_errors(full_cycle: dict[str, Any]) -> None:
    # Controllers post Events about the Deployments and pods too; these are the operator's.
    events = [
        event
        for event in full_cycle["events"]["items"]
        if event["involvedObject"]["kind"] == "ApiService"
    ]
    by_reason: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in events:
        by_reason.setdefault((event["type"], event["reason"]), []).append(event)

    warnings = by_reason.get(("Warning", "MissingReference"), [])
    assert warnings, sorted(by_reason)
    assert warnings[0]["involvedObject"]["kind"] == "ApiService"
    assert warnings[0]["involvedObject"]["name"] == EXTERNAL
    assert "orders-postgres" in warnings[0]["message"]
    assert ("Normal", "Created") in by_reason
    assert ("Normal", "Updated") in by_reason
    assert {event["type"] for event in events} <= {"Normal", "Warning"}
    assert all(event["source"].get("component") == "kopf" for event in events), events


# Health probes.


def test_probes_pass_on_healthy_operator(debug_operator: OperatorProcess) -> None:
    live_status, live = debug_operator.probe("/healthz")
    ready_status, ready = debug_operator.probe("/readyz")

    assert live_status == 200
    assert live["status"] == "ok"
    # The ApiServices and the seven kinds of children are each watched once.
    assert live["watch_streams"] >= 8
    assert live["oldest_watch_request_seconds"] < live["watch_stall_limit_seconds"]
    assert ready_status == 200
    assert ready == {"status": "ready", "reason": "", "started": True, "indexed": True}


def unreachable_kubeconfig(path: Path) -> Path:
    """Write a kubeconfig whose API server address on 127.0.0.1 has no listener."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "unreachable",
        "contexts": [{"name": "unreachable", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "unused"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def started_probe(process: OperatorProcess) -> tuple[int, dict[str, Any]] | None:
    """Return /readyz once the startup handlers have finished, or None before."""
    status, body = process.probe("/readyz")
    return (status, body) if body["started"] else None


def test_readyz_fails_until_listed(tmp_path: Path) -> None:
    # Without an API server Kopf cannot list anything, so the operator stays unready, while its
    # loop runs and no watch has started, so it stays alive.
    process = OperatorProcess(
        cluster=Cluster(kubeconfig=unreachable_kubeconfig(tmp_path / "kubeconfig")),
        log_path=tmp_path / "log",
    )
    process.launch()
    try:
        ready_status, ready = wait_for(
            lambda: started_probe(process), timeout=30, description="/readyz after the startup"
        )
        live_status, live = process.probe("/healthz")
    finally:
        process.stop()

    assert ready_status == 503
    assert ready["status"] == "not ready"
    assert ready["started"] is True
    assert ready["indexed"] is False
    assert "initial listing" in ready["reason"]
    assert live_status == 200
    assert live["watch_streams"] == 0
