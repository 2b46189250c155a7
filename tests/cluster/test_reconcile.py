"""The operator turns ApiServices into running stacks on a real API server, and keeps them so."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.support.apiservices import (
    condition,
    example,
    get_apiservice,
    wait_condition,
    wait_ready,
)
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

NAME = "orders"
MINIMAL_DEPLOYMENTS = ("api", "worker", "postgres", "redis", "edge")
OWNER_LABELS = {
    "app.kubernetes.io/managed-by": "apiservice-operator",
    "app.kubernetes.io/part-of": NAME,
    "apiservice.dev/name": NAME,
}
# Every Secret and ConfigMap that examples/full.yaml refers to, with made-up values.
FULL_EXAMPLE_INPUTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "orders-settings"},
        "data": {"region": "eu-west-1"},
    },
    *[
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: f"test-{key}" for key in keys},
        }
        for name, keys in {
            "ghcr-pull": [".dockerconfigjson"],
            "orders-secrets": ["sentry-dsn"],
            "orders-stripe": ["API_KEY"],
            "orders-tls": ["tls.crt", "tls.key"],
            "orders-supabase": ["service-key", "anon-key"],
            "orders-hatchet": ["token"],
        }.items()
    ],
]


def children(cluster: Cluster, namespace: str, kind: str) -> list[dict[str, Any]]:
    """List the objects of a kind that carry the ApiService's owner label."""
    selector = f"apiservice.dev/name={NAME}"
    return list(cluster.get_json(kind, "-n", namespace, "-l", selector)["items"])


def secret_values(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """Decode a Secret's data."""
    data = cluster.get_json(f"secret/{name}", "-n", namespace)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def resource_versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Map every child and the ApiService to its resourceVersion."""
    versions = {}
    for kind in ("apisvc", "deployments", "services", "configmaps", "secrets", "pvc"):
        for obj in cluster.get_json(kind, "-n", namespace)["items"]:
            versions[f"{obj['kind']}/{obj['metadata']['name']}"] = obj["metadata"][
                "resourceVersion"
            ]
    return versions


def create_minimal(cluster: Cluster, namespace: str) -> dict[str, Any]:
    cluster.apply(example("minimal"), namespace)
    return wait_ready(cluster, namespace, NAME)


def test_minimal_example_becomes_ready(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    obj = create_minimal(cluster, namespace)

    assert obj["status"]["credentialsSecretName"] == f"{NAME}-credentials"
    assert obj["status"]["url"]
    for component in MINIMAL_DEPLOYMENTS:
        counts = obj["status"]["components"][component]
        assert counts["readyReplicas"] == counts["desiredReplicas"], component
    assert condition(obj, "Reconciling")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "False"

    uid = obj["metadata"]["uid"]
    deployments = children(cluster, namespace, "deployments")
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(
        f"{NAME}-{c}" for c in MINIMAL_DEPLOYMENTS
    )
    for deployment in deployments:
        labels = deployment["metadata"]["labels"]
        assert OWNER_LABELS.items() <= labels.items()
        assert "app.kubernetes.io/instance" not in labels
        owners = deployment["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
            ("ApiService", uid, True)
        ]
        available = condition(deployment, "Available")
        assert available is not None
        assert available["status"] == "True"
    assert {s["metadata"]["name"] for s in children(cluster, namespace, "services")} >= {
        f"{NAME}-api",
        f"{NAME}-postgres",
        f"{NAME}-redis",
        f"{NAME}-edge",
    }
    claims = children(cluster, namespace, "pvc")
    assert {c["metadata"]["name"] for c in claims} == {
        f"{NAME}-postgres-data",
        f"{NAME}-redis-data",
    }
    # Retained data carries no ownerReference, so garbage collection keeps it.
    assert all(not c["metadata"].get("ownerReferences") for c in claims)


def test_full_example_becomes_ready(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    # The example requests a storage class by name, and the local cluster provisions host paths.
    cluster.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input="apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast-ssd}\n"
        "provisioner: kubernetes.io/host-path\n",
    )
    cluster.apply(FULL_EXAMPLE_INPUTS, namespace)
    cluster.apply(example("full"), namespace)

    obj = wait_ready(cluster, namespace, NAME)

    api = cluster.get_json(f"deployment/{NAME}-api", "-n", namespace)
    container = api["spec"]["template"]["spec"]["containers"][0]
    env_names = [item["name"] for item in container.get("env", [])]
    assert "FEATURE_FLAGS" in env_names
    assert "SENTRY_DSN" in env_names
    assert obj["status"]["url"].startswith("https://")
    ingress = cluster.get_json(f"ingress/{NAME}", "-n", namespace)
    assert ingress["spec"]["tls"][0]["secretName"] == "orders-tls"
    hpa = cluster.get_json(f"hpa/{NAME}-api", "-n", namespace)
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]


def test_spec_edit_rolls_pods(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    before = create_minimal(cluster, namespace)
    api_before = cluster.get_json(f"deployment/{NAME}-api", "-n", namespace)
    template_before = api_before["spec"]["template"]

    patch = {
        "spec": {
            "image": "ghcr.io/acme/orders-api:1.5.0",
            "logLevel": "DEBUG",
            "api": {"replicas": 3},
        }
    }
    cluster.kubectl(
        "patch", "apisvc", NAME, "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    after = wait_ready(cluster, namespace, NAME)

    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    api = cluster.get_json(f"deployment/{NAME}-api", "-n", namespace)
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.5.0")
    annotations_before = template_before["metadata"].get("annotations", {})
    annotations_after = api["spec"]["template"]["metadata"].get("annotations", {})
    checksum_key = "apiservice.dev/inputs-checksum"
    assert annotations_after[checksum_key] != annotations_before[checksum_key]
    settings = cluster.get_json(f"configmap/{NAME}-config", "-n", namespace)
    assert settings["data"]["LOG_LEVEL"] == "DEBUG"
    worker = cluster.get_json(f"deployment/{NAME}-worker", "-n", namespace)
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.5.0")
    assert after["status"]["components"]["api"] == {"desiredReplicas": 3, "readyReplicas": 3}


def test_deleted_child_is_restored(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)
    old_uid = cluster.get_json(f"service/{NAME}-api", "-n", namespace)["metadata"]["uid"]

    cluster.kubectl("delete", "service", f"{NAME}-api", "-n", namespace)

    def recreated() -> bool:
        result = cluster.kubectl(
            "get", "service", f"{NAME}-api", "-n", namespace, "-o", "json", check=False
        )
        return result.returncode == 0 and json.loads(result.stdout)["metadata"]["uid"] != old_uid

    wait_for(recreated, timeout=15, description=f"service {NAME}-api recreated")


def test_edited_child_is_restored(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)

    cluster.kubectl("scale", f"deployment/{NAME}-api", "--replicas=5", "-n", namespace)
    cluster.kubectl(
        "patch",
        f"configmap/{NAME}-config",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"data": {"LOG_LEVEL": "CRITICAL"}}',
    )

    def restored() -> bool:
        api = cluster.get_json(f"deployment/{NAME}-api", "-n", namespace)
        settings = cluster.get_json(f"configmap/{NAME}-config", "-n", namespace)
        return api["spec"]["replicas"] == 2 and settings["data"]["LOG_LEVEL"] == "INFO"

    wait_for(restored, timeout=15, description="replicas and LOG_LEVEL restored")


def test_idle_stack_is_not_written(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)
    # Let the last status updates of the Deployments settle before the idle window starts.
    wait_for(
        lambda: resource_versions(cluster, namespace) == resource_versions(cluster, namespace),
        timeout=10,
        description="a quiet moment",
    )
    before = resource_versions(cluster, namespace)

    time.sleep(60)  # The idle window itself is what this test measures.

    after = resource_versions(cluster, namespace)
    changed = {
        key: (before.get(key), value) for key, value in after.items() if before.get(key) != value
    }
    assert not changed


def test_recreate_keeps_data_and_password(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)
    password = secret_values(cluster, namespace, f"{NAME}-credentials")["POSTGRES_PASSWORD"]
    claim_uids = {c["metadata"]["uid"] for c in children(cluster, namespace, "pvc")}

    cluster.kubectl("delete", "apisvc", NAME, "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not children(cluster, namespace, "deployments"),
        timeout=60,
        description="garbage collection of the Deployments",
    )
    assert {c["metadata"]["uid"] for c in children(cluster, namespace, "pvc")} == claim_uids
    create_minimal(cluster, namespace)

    assert secret_values(cluster, namespace, f"{NAME}-credentials")["POSTGRES_PASSWORD"] == password
    assert {c["metadata"]["uid"] for c in children(cluster, namespace, "pvc")} == claim_uids


def test_replace_without_annotations_keeps_children(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    obj = create_minimal(cluster, namespace)
    password = secret_values(cluster, namespace, f"{NAME}-credentials")["POSTGRES_PASSWORD"]
    replacement = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {**obj["spec"], "logLevel": "ERROR"},
    }

    cluster.kubectl("replace", "-f", "-", input=json.dumps(replacement))
    wait_ready(cluster, namespace, NAME)

    assert len(children(cluster, namespace, "deployments")) == len(MINIMAL_DEPLOYMENTS)
    assert len(children(cluster, namespace, "secrets")) == 1
    assert secret_values(cluster, namespace, f"{NAME}-credentials")["POSTGRES_PASSWORD"] == password


def test_restart_changes_no_secret(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)
    secret = cluster.get_json(f"secret/{NAME}-credentials", "-n", namespace)

    running_operator.restart()
    # A new pass runs at start; a spec change proves that it has handled this ApiService.
    cluster.kubectl(
        "patch",
        "apisvc",
        NAME,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"logLevel": "WARNING"}}',
    )
    wait_ready(cluster, namespace, NAME)

    after = cluster.get_json(f"secret/{NAME}-credentials", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    assert after["data"] == secret["data"]


def test_killed_operator_converges(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    running_operator.stop()
    cluster.apply(example("minimal"), namespace)
    running_operator.start()

    # Kill the operator as soon as it has created the first child, before it finishes the rest.
    wait_for(
        lambda: children(cluster, namespace, "secrets"),
        timeout=30,
        interval=0.02,
        description="the credentials Secret",
    )
    running_operator.stop(kill=True)
    partial = len(children(cluster, namespace, "deployments"))
    running_operator.start()

    obj = wait_ready(cluster, namespace, NAME)
    assert partial <= len(MINIMAL_DEPLOYMENTS)
    assert len(children(cluster, namespace, "deployments")) == len(MINIMAL_DEPLOYMENTS)
    assert condition(obj, "Stalled")["status"] == "False"
    assert "rror" not in condition(obj, "Ready")["message"]


def test_missing_secret_stalls_then_recovers(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    documents = example("external-databases")
    apiservice = next(doc for doc in documents if doc["kind"] == "ApiService")
    name = apiservice["metadata"]["name"]
    secret_name = apiservice["spec"]["postgres"]["external"]["urlSecretRef"]["name"]
    cluster.apply([doc for doc in documents if doc["metadata"]["name"] != secret_name], namespace)

    stalled = wait_condition(cluster, namespace, name, "Stalled")
    message = condition(stalled, "Stalled")["message"]
    assert secret_name in message
    assert condition(stalled, "Ready")["status"] == "False"
    assert condition(stalled, "Reconciling")["status"] == "False"

    cluster.apply([doc for doc in documents if doc["metadata"]["name"] == secret_name], namespace)

    recovered = wait_ready(cluster, namespace, name)
    assert condition(recovered, "Stalled")["status"] == "False"
    assert get_apiservice(cluster, namespace, name)["status"]["observedGeneration"] == 1


def test_suspend_stops_writes(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    create_minimal(cluster, namespace)
    cluster.kubectl(
        "patch",
        "apisvc",
        NAME,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"suspend": true, "logLevel": "DEBUG"}}',
    )
    suspended = wait_condition(cluster, namespace, NAME, "Ready", "False")
    assert condition(suspended, "Ready")["reason"] == "Suspended"
    assert condition(suspended, "Reconciling")["status"] == "False"
    assert condition(suspended, "Stalled")["status"] == "False"

    cluster.kubectl("delete", "service", f"{NAME}-api", "-n", namespace)
    # The edited spec and the deleted Service stay as they are while suspended. The pass that
    # would repair them runs within a second; three seconds leave it time to do so wrongly.
    time.sleep(3)
    settings = cluster.get_json(f"configmap/{NAME}-config", "-n", namespace)
    assert settings["data"]["LOG_LEVEL"] == "INFO"
    missing = cluster.kubectl("get", "service", f"{NAME}-api", "-n", namespace, check=False)
    assert missing.returncode != 0

    cluster.kubectl(
        "patch",
        "apisvc",
        NAME,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"suspend": false}}',
    )
    wait_ready(cluster, namespace, NAME)
    assert (
        cluster.get_json(f"configmap/{NAME}-config", "-n", namespace)["data"]["LOG_LEVEL"]
        == "DEBUG"
    )
    cluster.get_json(f"service/{NAME}-api", "-n", namespace)
