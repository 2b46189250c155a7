"""Reading and waiting on ApiServices in cluster tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import ROOT, Cluster
from tests.support.waiting import wait_for

EXAMPLES = ROOT / "examples"
READY_TIMEOUT = 90.0


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Return the YAML documents of a file, without empty ones."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def example(name: str) -> list[dict[str, Any]]:
    """Return the documents of one file in examples/."""
    return load_documents(EXAMPLES / f"{name}.yaml")


def condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    """Return one condition of an object's status, or None."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == condition_type:
            return dict(item)
    return None


def get_apiservice(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """Read an ApiService through its short name, as users do."""
    return dict(cluster.get_json(f"apisvc/{name}", "-n", namespace))


def wait_condition(
    cluster: Cluster,
    namespace: str,
    name: str,
    condition_type: str,
    status: str = "True",
    *,
    timeout: float = READY_TIMEOUT,
) -> dict[str, Any]:
    """Wait until a condition has a status for the current generation; return the object."""

    def probe() -> dict[str, Any] | None:
        obj = get_apiservice(cluster, namespace, name)
        found = condition(obj, condition_type)
        current = obj["metadata"]["generation"]
        if (
            found is not None
            and found["status"] == status
            and obj["status"].get("observedGeneration") == current
            and found.get("observedGeneration") == current
        ):
            return obj
        return None

    return wait_for(
        probe,
        timeout=timeout,
        description=f"ApiService {namespace}/{name} condition {condition_type}={status}",
    )


def wait_ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """Wait until an ApiService is Ready for its current generation."""
    return wait_condition(cluster, namespace, name, "Ready")
