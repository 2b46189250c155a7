"""The local control plane behaves like a real cluster where the operator depends on it."""

from __future__ import annotations

import json

import pytest

from tests.support.cluster import Cluster, read_versions
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


def test_server_version_is_pinned(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == read_versions()["KUBE_VERSION"]


def test_kwok_node_is_ready(cluster: Cluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    ready = [
        node["metadata"]["name"]
        for node in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    ]
    assert ready, f"no Ready node among {[n['metadata']['name'] for n in nodes]}"


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "create",
        "deployment",
        "web",
        "--image=registry.invalid/web:1",
        "--replicas=2",
        "-n",
        namespace,
    )

    def available() -> bool:
        status = cluster.get_json("deployment/web", "-n", namespace).get("status", {})
        return status.get("availableReplicas") == 2

    wait_for(available, timeout=60, description="deployment web with 2 available replicas")
    pods = cluster.get_json("pods", "-n", namespace)["items"]
    assert len(pods) == 2
    assert all(pod["status"]["phase"] == "Running" for pod in pods)


def test_owner_deletion_collects_children(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner_uid = cluster.get_json("configmap/owner", "-n", namespace)["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
    }
    cluster.apply(child, namespace)

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    def child_gone() -> bool:
        result = cluster.kubectl("get", "configmap", "child", "-n", namespace, check=False)
        return result.returncode != 0 and "NotFound" in result.stderr

    wait_for(child_gone, timeout=60, description="garbage collection of configmap child")


CEL_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cel.example.test
spec:
  group: cel.example.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.min <= self.max
              message: spec.min must not be greater than spec.max
            properties:
              min: {type: integer}
              max: {type: integer}
"""


def test_cel_rule_rejects_invalid_object(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=CEL_CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.cel.example.test"
    )
    invalid = (
        "apiVersion: cel.example.test/v1\nkind: Widget\nmetadata: {name: w}\n"
        "spec: {min: 5, max: 1}\n"
    )

    result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=invalid, check=False)

    assert result.returncode != 0
    assert "spec.min must not be greater than spec.max" in result.stderr
