"""The Argo CD health check in docs/argocd/health.lua, run with Lua 5.1 through lupa.

The objects in tests/unit/fixtures/apiservice-health.json were written by a real operator on the
local cluster (see tests/cluster/test_argocd_health.py for the capture command). The other cases
build the status from reconcile/conditions.py, so a new kind of verdict needs a case here.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from apiservice_operator.reconcile.conditions import Health, Verdict, merge_conditions
from apiservice_operator.reconcile.errors import Reason
from tests.support.argocd_health import HEALTH_SCRIPT, run_health_check
from tests.support.cluster import ROOT

FIXTURE_PATH = ROOT / "tests" / "unit" / "fixtures" / "apiservice-health.json"
GITOPS_DOC = ROOT / "docs" / "gitops.md"
ARGOCD_KEY = "resource.customizations.health.apiservice.dev_ApiService"
GENERATION = 3

EXPECTED_BY_HEALTH = {
    Health.READY: "Healthy",
    Health.PROGRESSING: "Progressing",
    Health.STALLED: "Degraded",
    Health.SUSPENDED: "Suspended",
}
VERDICTS = {
    Health.READY: Verdict(Health.READY, Reason.READY, "All components are ready."),
    Health.PROGRESSING: Verdict(
        Health.PROGRESSING, Reason.COMPONENTS_NOT_READY, "Waiting for ready replicas: api 0/2."
    ),
    Health.STALLED: Verdict(Health.STALLED, Reason.FORBIDDEN, "applying Service x is forbidden"),
    Health.SUSPENDED: Verdict(Health.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true."),
}


def captured() -> dict[str, dict[str, Any]]:
    return dict(json.loads(FIXTURE_PATH.read_text()))


def apiservice_with(verdict: Verdict) -> dict[str, Any]:
    """Build an ApiService whose status is what the reconciler writes for a verdict."""
    conditions = merge_conditions([], verdict, generation=GENERATION, now="2026-01-01T00:00:00Z")
    suspended = verdict.health is Health.SUSPENDED
    return {
        "apiVersion": "apiservice.dev/v1alpha1",
        "kind": "ApiService",
        "metadata": {"name": "orders", "namespace": "default", "generation": GENERATION},
        "spec": {"image": "ghcr.io/acme/orders-api:1.4.2", "suspend": suspended},
        "status": {"observedGeneration": GENERATION, "conditions": conditions},
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("ready", "Healthy"),
        ("progressing", "Progressing"),
        ("stalled", "Degraded"),
        ("suspended", "Suspended"),
    ],
)
def test_captured_states(state: str, expected: str) -> None:
    status, message = run_health_check(captured()[state])
    assert status == expected
    assert message


def test_captured_stalled_message_names_reason() -> None:
    _, message = run_health_check(captured()["stalled"])
    assert message.startswith("MissingReference: Secret default/orders-postgres")


def test_captured_progressing_message_names_wait() -> None:
    _, message = run_health_check(captured()["progressing"])
    assert message == "ComponentsNotReady: Waiting for ready replicas: api 0/2."


@pytest.mark.parametrize("health", list(Health), ids=lambda health: health.value)
def test_every_reconciler_verdict(health: Health) -> None:
    status, _ = run_health_check(apiservice_with(VERDICTS[health]))
    assert status == EXPECTED_BY_HEALTH[health]


def test_status_absent_is_progressing() -> None:
    obj = captured()["ready"]
    del obj["status"]
    assert run_health_check(obj) == (
        "Progressing",
        "Waiting for the operator to report a status.",
    )


def test_initial_status_is_progressing() -> None:
    obj = captured()["ready"]
    obj["status"] = {"observedGeneration": -1, "conditions": []}
    status, message = run_health_check(obj)
    assert status == "Progressing"
    assert message == "Waiting for the operator to observe generation 1."


@pytest.mark.parametrize("state", ["ready", "stalled"])
def test_older_status_is_progressing(state: str) -> None:
    # The spec changed after the operator last wrote the status, which may no longer hold.
    obj = copy.deepcopy(captured()[state])
    obj["metadata"]["generation"] += 1
    status, message = run_health_check(obj)
    assert status == "Progressing"
    assert message == "Waiting for the operator to observe generation 2."


def test_suspend_wins_over_old_status() -> None:
    obj = captured()["ready"]
    obj["spec"]["suspend"] = True
    obj["metadata"]["generation"] += 1
    assert run_health_check(obj)[0] == "Suspended"


def test_ready_false_without_stalled_is_progressing() -> None:
    obj = captured()["progressing"]
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
    assert run_health_check(obj)[0] == "Progressing"


def test_doc_includes_script_verbatim() -> None:
    script = HEALTH_SCRIPT.read_text()
    doc = GITOPS_DOC.read_text()
    blocks = re.findall(r"```lua\n(.*?)```", doc, re.DOTALL)
    assert script in blocks, "docs/gitops.md must show docs/argocd/health.lua verbatim"


def test_doc_config_map_carries_script() -> None:
    doc = GITOPS_DOC.read_text()
    blocks = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
        if ARGOCD_KEY in block
    ]
    assert len(blocks) == 1, f"docs/gitops.md needs one argocd-cm example with {ARGOCD_KEY}"
    config_map = blocks[0]
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert config_map["data"][ARGOCD_KEY] == HEALTH_SCRIPT.read_text()
