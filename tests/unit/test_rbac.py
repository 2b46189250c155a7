"""The RBAC rules of manifests/ and the chart grant exactly what the operator's code calls.

tests/support/rbac.py derives the needed permissions from CHILD_KINDS, the KubeApi methods, the
Kopf registry and a documented list of Kopf's own calls. A rule that the code does not need fails
these tests as much as a missing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from apiservice_operator.reconcile.api import KubeApi
from tests.support.cluster import ROOT
from tests.support.helm import find, render_chart
from tests.support.rbac import (
    KUBE_API_STATUS_METHODS,
    KUBE_API_VERBS,
    granted_permissions,
    public_methods,
    required_permissions,
)

RBAC_PATH = ROOT / "manifests" / "rbac.yaml"
INSTALL_PATH = ROOT / "manifests" / "install.yaml"
WATCHED = ["team-a", "team-b"]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def test_every_kube_api_method_has_verbs() -> None:
    # A new KubeApi method must be added to the derivation, or its permission goes unchecked.
    assert public_methods(KubeApi) == set(KUBE_API_VERBS) | set(KUBE_API_STATUS_METHODS)


def test_derivation_covers_kopf_and_reconcile() -> None:
    namespaced, cluster = required_permissions(clusterwide=True)
    assert ("apps", "deployments", "watch") in namespaced
    assert ("", "secrets", "create") in namespaced
    assert ("apiservice.dev", "apiservices", "patch") in namespaced
    assert ("apiservice.dev", "apiservices/status", "patch") in namespaced
    assert ("", "events", "create") in namespaced
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "watch") in cluster
    assert ("", "namespaces", "list") not in cluster


def test_namespaced_mode_adds_namespace_watch() -> None:
    namespaced, cluster = required_permissions(clusterwide=False)
    assert ("", "namespaces", "list") in cluster
    assert ("", "namespaces", "watch") in cluster
    assert namespaced == required_permissions(clusterwide=True)[0]


def test_manifests_cluster_role_is_exact() -> None:
    namespaced, cluster = required_permissions(clusterwide=True)
    role = only(documents(RBAC_PATH), "ClusterRole")
    granted = granted_permissions(role["rules"])
    assert granted - (namespaced | cluster) == set(), "permissions the code does not use"
    assert (namespaced | cluster) - granted == set(), "permissions the code needs"


def test_install_yaml_cluster_role_matches_rbac_yaml() -> None:
    role = only(documents(RBAC_PATH), "ClusterRole")
    installed = only(documents(INSTALL_PATH), "ClusterRole")
    assert granted_permissions(installed["rules"]) == granted_permissions(role["rules"])


def test_manifests_binding_names_service_account() -> None:
    objects = documents(RBAC_PATH)
    account = only(objects, "ServiceAccount")
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def test_chart_cluster_role_is_exact_by_default(tmp_path: Path) -> None:
    objects = render_chart(None, tmp_path)
    namespaced, cluster = required_permissions(clusterwide=True)
    assert find(objects, "Role") == []
    role = only(objects, "ClusterRole")
    granted = granted_permissions(role["rules"])
    assert granted - (namespaced | cluster) == set(), "permissions the code does not use"
    assert (namespaced | cluster) - granted == set(), "permissions the code needs"


def test_chart_roles_are_exact_per_namespace(tmp_path: Path) -> None:
    objects = render_chart({"watchNamespaces": WATCHED}, tmp_path)
    namespaced, cluster = required_permissions(clusterwide=False)

    cluster_role = only(objects, "ClusterRole")
    assert granted_permissions(cluster_role["rules"]) == cluster

    roles = find(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == WATCHED
    for role in roles:
        granted = granted_permissions(role["rules"])
        namespace = role["metadata"]["namespace"]
        assert granted - namespaced == set(), f"Role in {namespace} grants unused permissions"
        assert namespaced - granted == set(), f"Role in {namespace} misses permissions"


@pytest.mark.parametrize("watch", [[], WATCHED], ids=["cluster-wide", "namespaces"])
def test_chart_bindings_name_service_account(tmp_path: Path, watch: list[str]) -> None:
    objects = render_chart({"watchNamespaces": watch}, tmp_path)
    account = only(objects, "ServiceAccount")
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }
    bindings = find(objects, "ClusterRoleBinding") + find(objects, "RoleBinding")
    assert len(bindings) == 1 + len(watch)
    for binding in bindings:
        assert binding["subjects"] == [subject]
        role_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["roleRef"]["name"] == only(objects, "ClusterRole")["metadata"]["name"]
