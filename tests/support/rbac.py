"""The RBAC permissions that the operator needs, derived from its code.

A permission is an (apiGroup, resource, verb) triple. Three sources make up the set:

* the reconcile layer: every kind in `CHILD_KINDS` gets the verbs of the `KubeApi` methods,
  because each method accepts any child kind, and `patch_status` writes the ApiService status;
* the Kopf registrations in `handlers.py`: Kopf lists and watches the resource of every index and
  event handler, and patches the annotations of the resource that change handlers serve;
* what Kopf 1.45 itself calls, which no registration shows (`KOPF_CLUSTER_PERMISSIONS` and
  `KOPF_NAMESPACED_PERMISSIONS` below, with the Kopf module that makes each call).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

import apiservice_operator.handlers as handlers
from apiservice_operator.reconcile.api import APISERVICE, CHILD_KINDS

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

# The verbs that each public KubeApi method needs on the child kind it is given. A server-side
# apply that creates the object is authorized as a create as well as a patch.
KUBE_API_VERBS: dict[str, tuple[str, ...]] = {
    "apply": ("patch", "create"),
    "create": ("create",),
    "get": ("get",),
    "delete": ("delete",),
}
# KubeApi methods that write the ApiService itself rather than a child.
KUBE_API_STATUS_METHODS = ("patch_status",)

# Cluster-scoped calls of Kopf 1.45. kopf/_core/reactor/observation.py (resource_observer) lists
# and watches CRDs to follow resource changes. Discovery (/api, /apis, /version) needs no rule,
# because the system:discovery ClusterRole grants it to every authenticated user.
KOPF_CLUSTER_PERMISSIONS: frozenset[Permission] = frozenset(
    {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
)
# namespace_observer in the same module lists and watches namespaces only when the operator
# serves a list of namespaces, not cluster-wide.
KOPF_NAMESPACE_LIST_PERMISSIONS: frozenset[Permission] = frozenset(
    {("", "namespaces", "list"), ("", "namespaces", "watch")}
)
# kopf.event(), which handlers.event_sink calls, is sent by kopf/_cogs/clients/events.py as a POST
# to core v1 events. With peering standalone, Kopf makes no calls on KopfPeering objects.
KOPF_NAMESPACED_PERMISSIONS: frozenset[Permission] = frozenset({("", "events", "create")})

CLUSTER_SCOPED_RESOURCES = frozenset({"customresourcedefinitions", "namespaces"})


def public_methods(cls: type) -> set[str]:
    """Return the names of a class's public methods."""
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def reconcile_permissions() -> set[Permission]:
    """Return the permissions that the KubeApi methods need on the child kinds and ApiServices."""
    permissions: set[Permission] = set()
    for info in CHILD_KINDS.values():
        for verbs in KUBE_API_VERBS.values():
            permissions.update((info.group, info.plural, verb) for verb in verbs)
    permissions.add((APISERVICE.group, f"{APISERVICE.plural}/status", "patch"))
    return permissions


def selector_resource(handler: Any) -> tuple[str, str]:
    """Return the (apiGroup, plural) that a Kopf handler's selector names."""
    selector = handler.selector
    plural = selector.plural or selector.any_name
    if selector.group is None or not isinstance(plural, str):
        raise AssertionError(f"handler {handler.id} names no exact group and plural: {selector}")
    return selector.group, plural


def kopf_handler_permissions(registry: Any = None) -> set[Permission]:
    """Return what Kopf needs for the registered index, event and change handlers."""
    registry = registry or kopf.get_default_registry()
    permissions: set[Permission] = set()
    watched = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    for handler in watched:
        group, plural = selector_resource(handler)
        permissions.update({(group, plural, "list"), (group, plural, "watch")})
    # Change handlers keep their state (last-handled-configuration, progress) in annotations.
    for handler in registry._changing.get_all_handlers():
        group, plural = selector_resource(handler)
        permissions.add((group, plural, "patch"))
    return permissions


def required_permissions(*, clusterwide: bool) -> tuple[set[Permission], set[Permission]]:
    """Return the (namespaced, cluster-scoped) permissions the operator needs in a mode."""
    if "kopf.event(" not in inspect.getsource(handlers):
        raise AssertionError("handlers.py no longer calls kopf.event: drop the events rule")
    everything = reconcile_permissions() | kopf_handler_permissions() | KOPF_NAMESPACED_PERMISSIONS
    everything |= KOPF_CLUSTER_PERMISSIONS
    if not clusterwide:
        everything |= KOPF_NAMESPACE_LIST_PERMISSIONS
    cluster_scoped = {p for p in everything if p[1] in CLUSTER_SCOPED_RESOURCES}
    return everything - cluster_scoped, cluster_scoped


def granted_permissions(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Flatten RBAC rules into permissions; a wildcard or resourceNames fails the test."""
    permissions: set[Permission] = set()
    for rule in rules:
        if rule.get("resourceNames") or rule.get("nonResourceURLs"):
            raise AssertionError(f"rule narrows by name or URL, which the test ignores: {rule}")
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if "*" in (group, resource, verb):
                        raise AssertionError(f"rule grants a wildcard: {rule}")
                    permissions.add((group, resource, verb))
    return permissions
