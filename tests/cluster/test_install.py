"""The chart and manifests/install.yaml install on a real API server, and their RBAC suffices.

Each test applies the rendered objects for real (not a dry run) into a fresh namespace and reads
every object back. The namespaces enforce the "restricted" Pod Security Standard, so the
operator's Deployment becomes Available only when its pod passes admission. The cluster has no
kubelet, so kwok marks the admitted pod Ready. Two tests run the operator with the
ServiceAccount's token instead of the admin credentials, and an ApiService must reach Ready.

Cluster-scoped objects (ClusterRole, ClusterRoleBinding) get names unique to the test and are
deleted afterwards. The ServiceMonitor stays off, because the cluster has no Prometheus Operator
CRDs.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.apiservices import example, wait_ready
from tests.support.cluster import ROOT, Cluster
from tests.support.helm import CHART_DIR, render_chart, run_helm
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

INSTALL_PATH = ROOT / "manifests" / "install.yaml"
INSTALL_NAMESPACE = "apiservice-operator-system"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
AVAILABLE_TIMEOUT = "60s"
# Kopf's warning when it may not list or watch a resource it needs.
KOPF_PERMISSION_WARNING = "Not enough permissions"


@dataclass
class ServiceAccountCluster(Cluster):
    """The test cluster seen through a ServiceAccount token, with extra operator variables."""

    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.extra_env}


@pytest.fixture
def cluster_scoped(cluster: Cluster) -> Iterator[list[tuple[str, str]]]:
    """Collect (kind, name) of cluster-scoped objects that a test creates, and delete them."""
    created: list[tuple[str, str]] = []
    yield created
    for kind, name in created:
        cluster.kubectl("delete", kind, name, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture
def second_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    """Create a second fresh namespace, for ApiServices that the operator under test watches."""
    name = f"{namespace[:50]}-apps"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def session_operator_stopped(operator: OperatorProcess) -> None:
    """Stop the session's admin operator, which would reconcile the same ApiServices.

    `running_operator` starts it again for the tests that follow.
    """
    operator.stop()


def enforce_restricted(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )


def resource_type(obj: dict[str, Any]) -> str:
    """Return the `kubectl get` type of an object, qualified by its API group."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind']}.{group}" if group else obj["kind"]


def apply_objects(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    """Server-side apply the objects, taking over the CRD's fields with `--force-conflicts`."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "tests",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
    )


def assert_accepted(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    """Read every object back from the API server."""
    for obj in objects:
        meta = obj["metadata"]
        args = [f"{resource_type(obj)}/{meta['name']}"]
        if obj["kind"] not in CLUSTER_SCOPED:
            args += ["-n", meta["namespace"]]
        live = cluster.get_json(*args)
        assert live["metadata"]["uid"], f"{obj['kind']} {meta['name']} has no uid"


def wait_available(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl(
        "wait",
        "--for=condition=Available",
        f"--timeout={AVAILABLE_TIMEOUT}",
        f"deployment/{name}",
        "-n",
        namespace,
        timeout=90,
    )


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def install_objects(namespace: str, suffix: str) -> list[dict[str, Any]]:
    """Load install.yaml into another namespace, with cluster-scoped names made unique."""
    objects = [doc for doc in yaml.safe_load_all(INSTALL_PATH.read_text()) if doc]
    renamed = {"ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        elif obj["kind"] in renamed:
            meta["name"] = f"{meta['name']}-{suffix}"
        elif obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{suffix}"
            for subject in obj["subjects"]:
                subject["namespace"] = namespace
    return objects


def track_cluster_scoped(objects: list[dict[str, Any]], created: list[tuple[str, str]]) -> None:
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            created.append((obj["kind"], obj["metadata"]["name"]))


def service_account_kubeconfig(
    cluster: Cluster, namespace: str, account: str, directory: Path
) -> Path:
    """Write a kubeconfig that authenticates as a ServiceAccount with a short-lived token."""
    token = cluster.kubectl(
        "create", "token", account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    user_name = f"{namespace}-{account}"
    context["context"]["user"] = user_name
    config["users"] = [{"name": user_name, "user": {"token": token}}]
    path = directory / "service-account.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def permission_errors(logs: str) -> list[str]:
    """Return the log lines that report a request which RBAC denied.

    The API server words an RBAC denial as `User "system:serviceaccount:NS:NAME" cannot VERB ...`.
    Other 403 responses, such as a create in a namespace that is being deleted by an earlier
    test, do not count, because no rule could allow them.
    """
    return [
        line
        for line in logs.splitlines()
        if KOPF_PERMISSION_WARNING in line
        or ("system:serviceaccount:" in line and " cannot " in line)
    ]


def assert_no_permission_errors(process: OperatorProcess) -> None:
    lines = permission_errors(process.logs())
    assert lines == [], "the operator hit RBAC denials:\n" + "\n".join(lines[:5])


def run_operator_as(
    cluster: Cluster,
    kubeconfig: Path,
    log_path: Path,
    *,
    namespaces: list[str] | None = None,
) -> OperatorProcess:
    env = {"APISERVICE_OPERATOR_NAMESPACES": ",".join(namespaces or [])}
    account_cluster = ServiceAccountCluster(
        kubeconfig=kubeconfig, kubectl_binary=cluster.kubectl_binary, extra_env=env
    )
    process = OperatorProcess(cluster=account_cluster, log_path=log_path)
    process.start()
    return process


def notes_apiservice(
    cluster: Cluster, release: str, namespace: str, values: list[str], tmp_path: Path
) -> str:
    """Return the first ApiService that the chart's NOTES.txt prints for the user to apply."""
    # `helm install --dry-run` prints NOTES.txt; Helm 3 contacts the cluster even in client mode.
    helm_home = {
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    args = ["install", release, str(CHART_DIR), "--namespace", namespace, "--dry-run=client"]
    args += ["--kubeconfig", str(cluster.kubeconfig)]
    for value in values:
        args += ["--set", value]
    notes = run_helm(*args, env=helm_home).stdout.split("NOTES:", 1)[1]
    match = re.search(r"-f - <<'YAML'\n(.*?)\n\s*YAML\n", notes, re.DOTALL)
    assert match is not None, f"NOTES.txt has no ApiService to apply:\n{notes}"
    return textwrap.dedent(match.group(1))


def test_chart_objects_are_accepted(
    cluster: Cluster,
    namespace: str,
    crd_installed: Path,
    cluster_scoped: list[tuple[str, str]],
    tmp_path: Path,
) -> None:
    enforce_restricted(cluster, namespace)
    objects = render_chart(None, tmp_path, release=namespace, namespace=namespace)
    track_cluster_scoped(objects, cluster_scoped)

    apply_objects(cluster, objects)

    assert_accepted(cluster, objects)
    wait_available(cluster, namespace, only(objects, "Deployment")["metadata"]["name"])


def test_chart_namespaced_objects_are_accepted(
    cluster: Cluster,
    namespace: str,
    second_namespace: str,
    crd_installed: Path,
    cluster_scoped: list[tuple[str, str]],
    tmp_path: Path,
) -> None:
    enforce_restricted(cluster, namespace)
    values = {"watchNamespaces": [second_namespace], "crds": {"keep": False}}
    objects = render_chart(values, tmp_path, release=namespace, namespace=namespace)
    track_cluster_scoped(objects, cluster_scoped)

    apply_objects(cluster, objects)

    assert_accepted(cluster, objects)
    assert only(objects, "Role")["metadata"]["namespace"] == second_namespace
    wait_available(cluster, namespace, only(objects, "Deployment")["metadata"]["name"])


def test_install_yaml_objects_are_accepted(
    cluster: Cluster,
    namespace: str,
    crd_installed: Path,
    cluster_scoped: list[tuple[str, str]],
) -> None:
    objects = install_objects(namespace, suffix=namespace)
    track_cluster_scoped(objects, cluster_scoped)

    apply_objects(cluster, objects)

    assert_accepted(cluster, objects)
    labels = cluster.get_json(f"namespace/{namespace}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    wait_available(cluster, namespace, only(objects, "Deployment")["metadata"]["name"])


def test_operator_with_install_rbac_reaches_ready(
    cluster: Cluster,
    namespace: str,
    second_namespace: str,
    crd_installed: Path,
    cluster_scoped: list[tuple[str, str]],
    session_operator_stopped: None,
    tmp_path: Path,
) -> None:
    objects = install_objects(namespace, suffix=namespace)
    track_cluster_scoped(objects, cluster_scoped)
    apply_objects(cluster, objects)
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path)

    process = run_operator_as(cluster, kubeconfig, tmp_path / "operator.log")
    try:
        cluster.apply(example("minimal"), second_namespace)
        wait_ready(cluster, second_namespace, "orders")
        assert_no_permission_errors(process)
    finally:
        process.stop()


def test_operator_with_chart_namespaced_rbac_reaches_ready(
    cluster: Cluster,
    namespace: str,
    second_namespace: str,
    crd_installed: Path,
    cluster_scoped: list[tuple[str, str]],
    session_operator_stopped: None,
    tmp_path: Path,
) -> None:
    # helm install --dry-run rejects objects that exist without the release's ownership labels,
    # so it runs before the apply, and leaves out the CRD that the crd_installed fixture applied.
    notes_values = [f"watchNamespaces={{{second_namespace}}}", "crds.enabled=false"]
    first_apiservice = notes_apiservice(cluster, namespace, namespace, notes_values, tmp_path)
    values = {"watchNamespaces": [second_namespace]}
    objects = render_chart(values, tmp_path, release=namespace, namespace=namespace)
    objects = [obj for obj in objects if obj["kind"] != "CustomResourceDefinition"]
    track_cluster_scoped(objects, cluster_scoped)
    apply_objects(cluster, objects)
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path)

    process = run_operator_as(
        cluster, kubeconfig, tmp_path / "operator.log", namespaces=[second_namespace]
    )
    try:
        cluster.kubectl("apply", "-n", second_namespace, "-f", "-", input=first_apiservice)
        name = yaml.safe_load(first_apiservice)["metadata"]["name"]
        wait_ready(cluster, second_namespace, name)
        assert_no_permission_errors(process)
    finally:
        process.stop()


def test_service_account_cannot_read_other_namespaces(
    cluster: Cluster,
    namespace: str,
    second_namespace: str,
    cluster_scoped: list[tuple[str, str]],
    tmp_path: Path,
) -> None:
    # With watchNamespaces, the operator's Roles reach only the listed namespaces.
    values = {"watchNamespaces": [second_namespace], "crds": {"enabled": False}}
    objects = render_chart(values, tmp_path, release=namespace, namespace=namespace)
    track_cluster_scoped(objects, cluster_scoped)
    apply_objects(cluster, objects)
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{namespace}:{account}"

    def can(verb: str, resource: str, in_namespace: str) -> bool:
        result = cluster.kubectl(
            "auth", "can-i", verb, resource, "-n", in_namespace, "--as", user, check=False
        )
        return result.stdout.strip() == "yes"

    assert can("list", "secrets", second_namespace)
    assert can("patch", "deployments.apps", second_namespace)
    assert not can("list", "secrets", "default")
    assert not can("list", "secrets", namespace)
