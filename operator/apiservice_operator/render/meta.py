"""Names, labels, ownerReferences and other metadata shared by every child of an ApiService.

Every function here is pure: the same input gives the same output, in the same key order, so the
reconcile layer can apply the result with server-side apply and compare it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apiservice_operator.model import API_VERSION, KIND

# A Kubernetes object as a plain dict, ready for server-side apply.
Manifest = dict[str, Any]

NAME_LABEL = "apiservice.dev/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY = "apiservice-operator"
INPUTS_CHECKSUM_ANNOTATION = "apiservice.dev/inputs-checksum"
CONFIG_CHECKSUM_ANNOTATION = "apiservice.dev/config-checksum"

API_SERVICE_PORT = 8000
EDGE_SERVICE_PORT = 80
# nginx listens above 1024 because it runs as an unprivileged user.
EDGE_CONTAINER_PORT = 8080
POSTGRES_PORT = 5432
REDIS_PORT = 6379

# Service names are DNS-1035 labels of at most 63 characters, and the longest Service name is
# "<owner>-postgres", so the owner name may have at most 63 - 9 = 54 characters.
MAX_OWNER_NAME_LENGTH = 54
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Owner:
    """The ApiService being rendered: the parent of every child object."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class ChildNames:
    """Name of every child object of one ApiService, all in the ApiService's namespace.

    A Deployment and its Service share a name, and the api HorizontalPodAutoscaler is named
    `api` too.
    """

    credentials: str
    config: str
    edge_config: str
    postgres_data: str
    redis_data: str
    api: str
    worker: str
    postgres: str
    redis: str
    edge: str
    ingress: str


def child_names(owner_name: str) -> ChildNames:
    """Return the names of the children of the ApiService called `owner_name`."""
    return ChildNames(
        credentials=f"{owner_name}-credentials",
        config=f"{owner_name}-config",
        edge_config=f"{owner_name}-edge",
        postgres_data=f"{owner_name}-postgres-data",
        redis_data=f"{owner_name}-redis-data",
        api=f"{owner_name}-api",
        worker=f"{owner_name}-worker",
        postgres=f"{owner_name}-postgres",
        redis=f"{owner_name}-redis",
        edge=f"{owner_name}-edge",
        ingress=owner_name,
    )


def validate_owner_name(name: str) -> None:
    """Raise ValueError when `name` cannot prefix the names of the children's Services."""
    if len(name) <= MAX_OWNER_NAME_LENGTH and _DNS_1035_LABEL.match(name):
        return
    raise ValueError(
        f"invalid ApiService name {name!r}: rename it to at most {MAX_OWNER_NAME_LENGTH} "
        "lowercase letters, digits and '-', starting with a letter and ending with a letter or "
        "digit, because it prefixes the names of Services, which are DNS-1035 labels"
    )


def selector_labels(owner_name: str, component: str) -> dict[str, str]:
    """Return the labels that select one component's pods.

    Deployment selectors are immutable, so this set must never change.
    """
    return {NAME_LABEL: owner_name, COMPONENT_LABEL: component}


def common_labels(owner_name: str, component: str) -> dict[str, str]:
    """Return the labels of every child object and pod.

    `app.kubernetes.io/instance` is left out on purpose, because Argo CD uses it to track the
    objects it applied itself and would prune these.
    """
    return {
        "app.kubernetes.io/name": "apiservice",
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": owner_name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        NAME_LABEL: owner_name,
    }


def owner_references(owner: Owner) -> list[dict[str, Any]]:
    """Return the ownerReferences that make `owner` the controller of a child."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def object_meta(
    owner: Owner,
    *,
    name: str,
    component: str,
    owned: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a child's metadata; `owned=False` leaves out the ownerReferences.

    A child without ownerReferences survives the deletion of the ApiService, because the
    garbage collector deletes only objects whose owners are gone.
    """
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner.name, component),
    }
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    if owned:
        meta["ownerReferences"] = owner_references(owner)
    return meta


def checksum(*parts: Mapping[str, str]) -> str:
    """Return the hex SHA-256 of `parts` as canonical JSON: keys sorted, no whitespace.

    The order of `parts` counts, the order of keys inside each part does not.
    """
    canonical = json.dumps(
        [dict(part) for part in parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
