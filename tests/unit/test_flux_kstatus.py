"""What Flux's kstatus-based health checks make of the status that the operator writes.

docs/gitops.md states these outcomes; the objects come from tests/unit/fixtures/, written by a
real operator on the local cluster.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.cluster import ROOT
from tests.support.kstatus import compute_status

FIXTURE_PATH = ROOT / "tests" / "unit" / "fixtures" / "apiservice-health.json"


def captured(state: str) -> dict[str, Any]:
    return dict(json.loads(FIXTURE_PATH.read_text())[state])


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("ready", "Current"),
        ("progressing", "InProgress"),
        ("stalled", "Failed"),
        ("suspended", "Current"),
    ],
)
def test_captured_states(state: str, expected: str) -> None:
    assert compute_status(captured(state)) == expected


@pytest.mark.parametrize("state", ["ready", "stalled"])
def test_older_status_is_in_progress(state: str) -> None:
    obj = captured(state)
    obj["metadata"]["generation"] += 1
    assert compute_status(obj) == "InProgress"


def test_absent_status_is_current() -> None:
    # kstatus cannot tell a new ApiService from a finished one: docs/gitops.md shows the
    # healthCheckExprs that close this gap.
    obj = captured("ready")
    del obj["status"]
    assert compute_status(obj) == "Current"


def test_deleting_object_is_terminating() -> None:
    obj = captured("ready")
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert compute_status(obj) == "Terminating"
