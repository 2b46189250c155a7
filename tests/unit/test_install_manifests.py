"""manifests/ and its rendered install.yaml: up to date, and a pod that meets "restricted"."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.support.cluster import ROOT, kubectl_path

INSTALL_PATH = ROOT / "manifests" / "install.yaml"
NAMESPACE = "apiservice-operator-system"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(INSTALL_PATH.read_text()) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def test_generated_files_are_up_to_date() -> None:
    kubectl = kubectl_path()
    if not kubectl.is_file():
        pytest.skip(f"kubectl is not built at {kubectl}: run `hack/build-binaries.sh kubernetes`")
    result = subprocess.run(
        [sys.executable, "hack/gen_install.py", "--check", "--kubectl", str(kubectl)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crd_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())
    crds = sorted(p.name for p in (ROOT / "crds").glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == crds


def test_install_kinds(objects: list[dict[str, Any]]) -> None:
    assert [obj["kind"] for obj in objects] == [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


def test_namespace_enforces_restricted(objects: list[dict[str, Any]]) -> None:
    labels = only(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_crd_matches_generated_crd(objects: list[dict[str, Any]]) -> None:
    source = yaml.safe_load((ROOT / "crds" / "apiservice.dev_apiservices.yaml").read_text())
    assert only(objects, "CustomResourceDefinition")["spec"] == source["spec"]


def test_deployment_is_single_recreate(objects: list[dict[str, Any]]) -> None:
    spec = only(objects, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_pod_is_locked_down(objects: list[dict[str, Any]]) -> None:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert "limits" in container["resources"]
    assert "requests" in container["resources"]


def test_operator_arguments(objects: list[dict[str, Any]]) -> None:
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "apiservice-operator:0.1.0"
    assert container["args"] == [
        "--log-format=json",
        "--log-level=INFO",
        "--bind-address=0.0.0.0",
        "--metrics-port=8080",
        "--health-port=8081",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_metrics_service_selects_pod(objects: list[dict[str, Any]]) -> None:
    service = only(objects, "Service")
    template = only(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
