"""Status of an ApiService, rolled up from its children so Argo CD and Flux can judge health."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apiservice_operator.reconcile.conditions import Health, Verdict
from apiservice_operator.reconcile.errors import Reason

COMPONENT_LABEL = "app.kubernetes.io/component"
# Components in the order status and messages list them.
COMPONENT_ORDER = ("api", "worker", "postgres", "redis", "edge")


def deployment_progress(deployment: Mapping[str, Any]) -> tuple[int, int, bool]:
    """Return (desired, ready, rolled out) of a Deployment, as `kubectl rollout status` does."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    generation = int((deployment.get("metadata") or {}).get("generation", 0))
    rolled_out = (
        int(status.get("observedGeneration", -1)) >= generation
        and int(status.get("updatedReplicas", 0)) >= desired
        and int(status.get("availableReplicas", 0)) >= desired
        and int(status.get("replicas", 0)) <= desired
    )
    return desired, ready, rolled_out


def roll_up(
    desired_deployments: Iterable[Mapping[str, Any]],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Return the per-component replica counts and the components that are not rolled out yet.

    Replica counts come from the live Deployment. A Deployment that the watch has not delivered
    yet counts as not ready, with the replicas the rendered object requests.
    """
    components: dict[str, dict[str, int]] = {}
    waiting: list[str] = []
    for rendered in desired_deployments:
        meta = rendered["metadata"]
        component = meta["labels"][COMPONENT_LABEL]
        current = live.get(("Deployment", meta["name"]))
        if current is None:
            desired = int(rendered["spec"].get("replicas", 1))
            components[component] = {"desiredReplicas": desired, "readyReplicas": 0}
            waiting.append(f"{component} 0/{desired}")
            continue
        desired, ready, rolled_out = deployment_progress(current)
        components[component] = {"desiredReplicas": desired, "readyReplicas": ready}
        if not rolled_out:
            waiting.append(f"{component} {ready}/{desired}")
    ordered = {name: components[name] for name in COMPONENT_ORDER if name in components}
    return ordered, waiting


def readiness_verdict(waiting: list[str]) -> Verdict:
    """Judge a pass that applied everything: Ready, or progressing with what it waits for."""
    if not waiting:
        return Verdict(Health.READY, Reason.READY, "All components are ready.")
    return Verdict(
        Health.PROGRESSING,
        Reason.COMPONENTS_NOT_READY,
        "Waiting for ready replicas: " + ", ".join(waiting) + ".",
    )


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Build a JSON merge patch that turns `old` into `new`, with None for removed keys."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        previous = old.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            nested = merge_patch(previous, value)
            if nested:
                patch[key] = nested
        elif previous != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
