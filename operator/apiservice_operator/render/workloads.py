"""Builders shared by every workload: Deployments, Services, PersistentVolumeClaims and probes.

Each component module (app, datastores, edge) fills these in with its own containers, so that
every pod gets the same hardening: no service account token, no Service environment variables,
no privilege escalation, no capabilities and the runtime's default seccomp profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apiservice_operator.model import Resources, Storage
from apiservice_operator.render.meta import (
    Manifest,
    Owner,
    common_labels,
    object_meta,
    selector_labels,
)

# Start new pods before stopping old ones, so the ready count never drops below the desired one.
ROLLING_UPDATE: dict[str, Any] = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
}
# Stop the old pod before starting the new one, because a ReadWriteOnce volume can be mounted
# by only one node and a database must not be opened by two servers at once.
RECREATE: dict[str, Any] = {"type": "Recreate"}


def container_security_context(*, read_only_root_filesystem: bool) -> dict[str, Any]:
    """Build a container securityContext with no privilege escalation and no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root_filesystem,
    }


def pod_security_context(*, user_id: int | None = None) -> dict[str, Any]:
    """Build a pod securityContext that runs as non-root with the RuntimeDefault seccomp profile.

    With `user_id`, the pod runs as that user and group and owns its volumes through fsGroup.
    Without it, the image must declare a numeric non-root USER, or the kubelet does not start
    the container.
    """
    context: dict[str, Any] = {"runAsNonRoot": True}
    if user_id is not None:
        context["runAsUser"] = user_id
        context["runAsGroup"] = user_id
        context["fsGroup"] = user_id
        # Change volume ownership only when the volume's root is wrong, because a recursive
        # change on every mount is slow on large volumes.
        context["fsGroupChangePolicy"] = "OnRootMismatch"
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def pod_spec(
    *,
    containers: Sequence[Mapping[str, Any]],
    security_context: Mapping[str, Any],
    volumes: Sequence[Mapping[str, Any]] = (),
    image_pull_secrets: Sequence[str] = (),
    termination_grace_period_seconds: int | None = None,
) -> dict[str, Any]:
    """Build a pod spec without service account token or Service environment variables.

    Service links are off because they add variables for every Service in the namespace, and
    one named like an app setting (a `redis` Service sets REDIS_PORT=tcp://...) would fill in a
    setting that the app expected to be unset.
    """
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in image_pull_secrets]
    spec["securityContext"] = dict(security_context)
    if termination_grace_period_seconds is not None:
        spec["terminationGracePeriodSeconds"] = termination_grace_period_seconds
    spec["containers"] = [dict(container) for container in containers]
    if volumes:
        spec["volumes"] = [dict(volume) for volume in volumes]
    return spec


def deployment(
    owner: Owner,
    *,
    name: str,
    component: str,
    replicas: int | None,
    strategy: Mapping[str, Any],
    pod: Mapping[str, Any],
    pod_annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """Build an apps/v1 Deployment; `replicas=None` leaves the count to an autoscaler."""
    template_meta: dict[str, Any] = {"labels": common_labels(owner.name, component)}
    if pod_annotations:
        template_meta["annotations"] = dict(sorted(pod_annotations.items()))
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": selector_labels(owner.name, component)}
    spec["strategy"] = dict(strategy)
    spec["template"] = {"metadata": template_meta, "spec": dict(pod)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(owner, name=name, component=component),
        "spec": spec,
    }


def service(owner: Owner, *, name: str, component: str, port: int, port_name: str) -> Manifest:
    """Build a ClusterIP Service that forwards `port` to the pods' port called `port_name`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, name=name, component=component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner.name, component),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
            ],
        },
    }


def persistent_volume_claim(
    owner: Owner, *, name: str, component: str, storage: Storage, owned: bool
) -> Manifest:
    """Build a ReadWriteOnce PersistentVolumeClaim; `owned=False` keeps it after a deletion."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name is not None:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(owner, name=name, component=component, owned=owned),
        "spec": spec,
    }


def container_port(*, name: str, port: int) -> dict[str, Any]:
    """Build a TCP container port.

    The protocol is set although TCP is the default, because server-side apply merges ports
    by containerPort and protocol together.
    """
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def resources_field(resources: Resources | None) -> dict[str, Any] | None:
    """Return a container's resources as the API expects them, or None when nothing is set."""
    if resources is None:
        return None
    return resources.to_api() or None


def secret_env(*, name: str, secret: str, key: str) -> dict[str, Any]:
    """Build an environment variable read from one key of a Secret."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def http_probe(
    *, path: str, period_seconds: int, timeout_seconds: int, failure_threshold: int
) -> dict[str, Any]:
    """Build an HTTP GET probe on the container port named http."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_seconds,
        "timeoutSeconds": timeout_seconds,
        "failureThreshold": failure_threshold,
    }


def exec_probe(
    *, command: Sequence[str], period_seconds: int, timeout_seconds: int, failure_threshold: int
) -> dict[str, Any]:
    """Build a probe that runs `command` in the container and passes when it exits with 0."""
    return {
        "exec": {"command": list(command)},
        "periodSeconds": period_seconds,
        "timeoutSeconds": timeout_seconds,
        "failureThreshold": failure_threshold,
    }


def tcp_probe(
    *, port_name: str, period_seconds: int, timeout_seconds: int, failure_threshold: int
) -> dict[str, Any]:
    """Build a probe that passes when the named container port accepts a TCP connection."""
    return {
        "tcpSocket": {"port": port_name},
        "periodSeconds": period_seconds,
        "timeoutSeconds": timeout_seconds,
        "failureThreshold": failure_threshold,
    }
