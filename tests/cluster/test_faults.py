"""Faults found by breaking the operator on purpose, each kept as a regression test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.apiservices import condition, example, wait_condition, wait_ready
from tests.support.cluster import LOCAL_KUBECONFIG, Cluster, restart_local_component
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

NAME = "orders"
# The HorizontalPodAutoscaler controller of kube-controller-manager acts every 15 s by default.
AUTOSCALER_TIMEOUT = 60.0


def minimal(**spec: Any) -> dict[str, Any]:
    """Return examples/minimal.yaml with more spec fields."""
    document = example("minimal")[0]
    document["spec"].update(spec)
    return document


def get(cluster: Cluster, namespace: str, target: str) -> dict[str, Any]:
    """Read one object as JSON."""
    return dict(cluster.get_json(target, "-n", namespace))


def test_retain_drops_volume_owner(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    """Switching retentionPolicy to Retain must keep the volume when the ApiService goes."""
    volume = f"pvc/{NAME}-postgres-data"
    cluster.apply(minimal(postgres={"managed": {"retentionPolicy": "Delete"}}), namespace)
    wait_ready(cluster, namespace, NAME)
    assert get(cluster, namespace, volume)["metadata"].get("ownerReferences")

    cluster.apply(minimal(postgres={"managed": {"retentionPolicy": "Retain"}}), namespace)
    wait_ready(cluster, namespace, NAME)
    wait_for(
        lambda: not get(cluster, namespace, volume)["metadata"].get("ownerReferences"),
        timeout=30,
        description=f"{volume} without ownerReferences after retentionPolicy Retain",
    )

    cluster.kubectl("delete", f"apisvc/{NAME}", "-n", namespace)
    # The garbage collector deletes the api Deployment and the volume in the same sweep, so once
    # the Deployment is gone a volume that it was going to delete is gone too.
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", f"deployment/{NAME}-api", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        timeout=60,
        description=f"the garbage collector to delete deployment/{NAME}-api",
    )
    assert cluster.kubectl("get", volume, "-n", namespace, check=False).returncode == 0


def test_removed_resources_leave_deployment(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    """A field removed from the spec must be removed from the child too."""
    cluster.apply(minimal(api={"resources": {"limits": {"cpu": "1"}}}), namespace)
    wait_ready(cluster, namespace, NAME)

    def api_resources() -> dict[str, Any]:
        deployment = get(cluster, namespace, f"deployment/{NAME}-api")
        return dict(deployment["spec"]["template"]["spec"]["containers"][0].get("resources", {}))

    assert api_resources() == {"limits": {"cpu": "1"}}

    cluster.apply(minimal(), namespace)
    wait_ready(cluster, namespace, NAME)
    wait_for(
        lambda: api_resources() == {},
        timeout=30,
        description=f"deployment/{NAME}-api without the removed resource limits",
    )


def test_autoscaling_keeps_api_replicas(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    """Handing the replica count to the autoscaler must never drop the api below its count."""
    cluster.apply(minimal(api={"replicas": 2}), namespace)
    wait_ready(cluster, namespace, NAME)

    cluster.apply(
        minimal(api={"replicas": 2, "autoscaling": {"enabled": True, "minReplicas": 3}}), namespace
    )
    seen: list[int] = []

    def scaled_to_minimum() -> bool:
        deployment = get(cluster, namespace, f"deployment/{NAME}-api")
        seen.append(int(deployment["spec"].get("replicas", 1)))
        return seen[-1] == 3

    # Polling every 0.25 s detects a drop to the default of 1 replica, because only the
    # autoscaler's next sync, up to 15 s later, would raise the count again.
    wait_for(
        scaled_to_minimum,
        timeout=AUTOSCALER_TIMEOUT,
        description=f"the autoscaler to scale deployment/{NAME}-api to minReplicas 3",
    )
    assert min(seen) >= 2, f"replica counts seen while the autoscaler took over: {seen}"


def test_edited_service_port_is_repaired(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    """A Service port changed by hand under the same port name must not stall the stack."""
    cluster.apply(example("minimal"), namespace)
    wait_ready(cluster, namespace, NAME)
    service = f"service/{NAME}-api"

    cluster.kubectl(
        "patch",
        service,
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/ports/0/port", "value": 9999}]',
    )

    wait_for(
        lambda: [p["port"] for p in get(cluster, namespace, service)["spec"]["ports"]] == [8000],
        timeout=30,
        description=f"{service} back on port 8000 only",
    )
    obj = wait_ready(cluster, namespace, NAME)
    assert condition(obj, "Stalled")["status"] == "False"


def test_lost_credentials_stall_until_restored(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess
) -> None:
    """A deleted credentials Secret must not be replaced while the database volume remains."""
    cluster.apply(example("minimal"), namespace)
    wait_ready(cluster, namespace, NAME)
    secret = get(cluster, namespace, f"secret/{NAME}-credentials")
    backup = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret["metadata"]["name"], "labels": secret["metadata"]["labels"]},
        "type": secret["type"],
        "data": secret["data"],
    }

    cluster.kubectl("delete", f"secret/{NAME}-credentials", "-n", namespace)

    stalled = wait_condition(cluster, namespace, NAME, "Stalled")
    message = condition(stalled, "Stalled")["message"]
    assert condition(stalled, "Stalled")["reason"] == "CredentialsLost"
    assert f"{NAME}-credentials" in message
    assert f"{NAME}-postgres-data" in message
    missing = cluster.kubectl("get", f"secret/{NAME}-credentials", "-n", namespace, check=False)
    assert missing.returncode != 0

    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(backup))

    wait_ready(cluster, namespace, NAME)
    restored = get(cluster, namespace, f"secret/{NAME}-credentials")
    assert restored["data"] == secret["data"]


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_restart_of_control_plane_converges(
    cluster: Cluster, namespace: str, running_operator: OperatorProcess, component: str
) -> None:
    """After the API server or etcd restarts, the operator reconnects and repairs drift again."""
    if cluster.kubeconfig != LOCAL_KUBECONFIG:
        pytest.skip("restarting a component needs the local control plane of hack/cluster.sh")
    cluster.apply(example("minimal"), namespace)
    wait_ready(cluster, namespace, NAME)
    deployments = {
        d["metadata"]["name"] for d in cluster.get_json("deployments", "-n", namespace)["items"]
    }

    restart_local_component(component)

    # Nothing is deleted on the partial reads around the restart, and drift is repaired after it.
    wait_for(
        lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
        timeout=60,
        description="the API server ready again",
    )
    after = {
        d["metadata"]["name"] for d in cluster.get_json("deployments", "-n", namespace)["items"]
    }
    assert after == deployments
    cluster.kubectl("delete", f"service/{NAME}-api", "-n", namespace)
    wait_for(
        lambda: (
            cluster.kubectl("get", f"service/{NAME}-api", "-n", namespace, check=False).returncode
            == 0
        ),
        timeout=60,
        description=f"service {NAME}-api recreated after the {component} restart",
    )
    cluster.kubectl(
        "patch",
        f"apisvc/{NAME}",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"logLevel": "ERROR"}}',
    )
    obj = wait_ready(cluster, namespace, NAME)
    assert condition(obj, "Stalled")["status"] == "False"
