"""kstatus's status of a custom resource, which Flux's health checks use.

`compute_status` follows `checkGenericProperties` in pkg/kstatus/status/generic.go and `Compute`
in pkg/kstatus/status/status.go of sigs.k8s.io/cli-utils, for a kind without type-specific rules:
deletion, then observedGeneration, then the Reconciling and Stalled conditions, and Current when
none of them decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def compute_status(obj: Mapping[str, Any]) -> str:
    """Return Terminating, InProgress, Failed or Current, as kstatus computes it."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Reconciling" and condition.get("status") == "True":
            return "InProgress"
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return "Failed"
    return "Current"
