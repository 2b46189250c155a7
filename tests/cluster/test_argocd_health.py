"""docs/argocd/health.lua judges the four status shapes that the operator writes on a real cluster.

The operator brings four ApiServices into its four kinds of state: Ready (examples/minimal.yaml),
progressing (an api pod that requests more CPU than the node has, so it never schedules),
stalled (examples/external-databases.yaml without its Secrets) and suspended. The health check
runs on each live object.

`pytest tests/cluster/test_argocd_health.py --update-golden` also saves the four objects to
tests/unit/fixtures/apiservice-health.json, which the unit tests of the health check read.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.apiservices import condition, example, get_apiservice, wait_condition
from tests.support.argocd_health import run_health_check
from tests.support.cluster import ROOT, Cluster
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

FIXTURE_PATH = ROOT / "tests" / "unit" / "fixtures" / "apiservice-health.json"
# More CPU than the local cluster's only node offers, so the api pods stay Pending.
UNSCHEDULABLE_CPU = "1000"
STATE_TIMEOUT = 90.0


def apiservice(name: str, **spec: Any) -> dict[str, Any]:
    """Return examples/minimal.yaml's ApiService under another name, with spec fields added."""
    (document,) = example("minimal")
    document = copy.deepcopy(document)
    document["metadata"]["name"] = name
    document["spec"].update(spec)
    return dict(document)


def stalled_apiservice(name: str) -> dict[str, Any]:
    """Return examples/external-databases.yaml's ApiService without the Secrets it names."""
    (document,) = [doc for doc in example("external-databases") if doc["kind"] == "ApiService"]
    document["metadata"]["name"] = name
    return dict(document)


def wait_reason(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """Wait until the Ready condition of the current generation has a reason; return the object."""

    def probe() -> dict[str, Any] | None:
        obj = get_apiservice(cluster, namespace, name)
        ready = condition(obj, "Ready")
        observed = obj["status"].get("observedGeneration")
        if ready is None or observed != obj["metadata"]["generation"]:
            return None
        return obj if ready["reason"] == reason else None

    return wait_for(
        probe, timeout=STATE_TIMEOUT, description=f"ApiService {namespace}/{name} reason {reason}"
    )


def fixture_object(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Keep what a health check reads, with the test's namespace renamed to "default"."""
    trimmed = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "generation": obj["metadata"]["generation"],
        },
        "spec": obj["spec"],
        "status": obj["status"],
    }
    # Messages and the URL name the namespace too, and a fixed name keeps captures comparable.
    return dict(json.loads(json.dumps(trimmed).replace(namespace, "default")))


def test_health_of_live_states(
    cluster: Cluster,
    namespace: str,
    running_operator: OperatorProcess,
    update_golden: bool,
) -> None:
    cluster.apply(
        [
            apiservice("orders-ready"),
            apiservice(
                "orders-progressing",
                api={"resources": {"requests": {"cpu": UNSCHEDULABLE_CPU}}},
            ),
            stalled_apiservice("orders-stalled"),
            apiservice("orders-suspended", suspend=True),
        ],
        namespace,
    )

    live = {
        "ready": wait_condition(cluster, namespace, "orders-ready", "Ready", timeout=STATE_TIMEOUT),
        "progressing": wait_reason(cluster, namespace, "orders-progressing", "ComponentsNotReady"),
        "stalled": wait_condition(
            cluster, namespace, "orders-stalled", "Stalled", timeout=STATE_TIMEOUT
        ),
        "suspended": wait_reason(cluster, namespace, "orders-suspended", "Suspended"),
    }

    assert run_health_check(live["ready"])[0] == "Healthy"
    assert run_health_check(live["progressing"])[0] == "Progressing"
    status, message = run_health_check(live["stalled"])
    assert status == "Degraded"
    assert message.startswith("MissingReference: ")
    assert run_health_check(live["suspended"])[0] == "Suspended"

    if update_golden:
        captured = {state: fixture_object(obj, namespace) for state, obj in live.items()}
        FIXTURE_PATH.write_text(json.dumps(captured, indent=2, sort_keys=True) + "\n")
