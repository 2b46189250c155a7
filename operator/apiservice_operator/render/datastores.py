"""Managed PostgreSQL and Redis: one single-replica Deployment each, a volume and a Service.

Both run as a fixed non-root user that owns the data volume through fsGroup, so the images'
entrypoints never need root to change file ownership. Both read their password from the
credentials Secret through the environment, which keeps it out of the pod spec.
"""

from __future__ import annotations

from typing import Any

from apiservice_operator.model import ManagedPostgres, ManagedRedis
from apiservice_operator.render.config import POSTGRES_PASSWORD_KEY, REDIS_PASSWORD_KEY
from apiservice_operator.render.meta import (
    POSTGRES_PORT,
    REDIS_PORT,
    Manifest,
    Owner,
    child_names,
)
from apiservice_operator.render.workloads import (
    RECREATE,
    container_port,
    container_security_context,
    deployment,
    exec_probe,
    persistent_volume_claim,
    pod_security_context,
    pod_spec,
    resources_field,
    secret_env,
    service,
    tcp_probe,
)

# The postgres user of the official Alpine-based images, the default image. The official
# Debian-based images name 999 instead, and their entrypoint still initializes the database
# under 70, because it fakes a passwd entry with nss_wrapper for initdb when the user id is
# not in /etc/passwd.
POSTGRES_USER_ID = 70
# The redis user of the official images, both Alpine- and Debian-based.
REDIS_USER_ID = 999
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"
# PGDATA is a subdirectory of the mount, because initdb refuses a non-empty directory and a
# fresh ext4 volume already contains lost+found.
PGDATA = f"{POSTGRES_DATA_DIR}/pgdata"
REDIS_DATA_DIR = "/data"


def render_postgres_volume(owner: Owner, managed: ManagedPostgres, *, retained: bool) -> Manifest:
    """Build the PostgreSQL data PersistentVolumeClaim; a retained one has no owner."""
    return persistent_volume_claim(
        owner,
        name=child_names(owner.name).postgres_data,
        component="postgres",
        storage=managed.storage,
        owned=not retained,
    )


def render_postgres_service(owner: Owner) -> Manifest:
    """Build the PostgreSQL Service that DATABASE_URL points to."""
    return service(
        owner,
        name=child_names(owner.name).postgres,
        component="postgres",
        port=POSTGRES_PORT,
        port_name="postgres",
    )


def render_postgres_deployment(owner: Owner, managed: ManagedPostgres) -> Manifest:
    """Build the PostgreSQL Deployment: one replica, replaced with the Recreate strategy."""
    names = child_names(owner.name)
    ready_command = [
        "pg_isready",
        "-U",
        managed.user,
        "-d",
        managed.database,
        "-h",
        "127.0.0.1",
    ]
    container: dict[str, Any] = {
        "name": "postgres",
        "image": managed.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [container_port(name="postgres", port=POSTGRES_PORT)],
        "env": [
            {"name": "POSTGRES_USER", "value": managed.user},
            {"name": "POSTGRES_DB", "value": managed.database},
            secret_env(
                name="POSTGRES_PASSWORD", secret=names.credentials, key=POSTGRES_PASSWORD_KEY
            ),
            {"name": "PGDATA", "value": PGDATA},
        ],
        # The first start runs initdb with the server listening on no TCP port, so the startup
        # probe allows five minutes before the liveness probe may restart the container.
        "startupProbe": tcp_probe(
            port_name="postgres", period_seconds=5, timeout_seconds=3, failure_threshold=60
        ),
        "readinessProbe": exec_probe(
            command=ready_command, period_seconds=10, timeout_seconds=5, failure_threshold=3
        ),
        "livenessProbe": tcp_probe(
            port_name="postgres", period_seconds=20, timeout_seconds=5, failure_threshold=6
        ),
    }
    _add_resources(container, resources=resources_field(managed.resources))
    container["securityContext"] = container_security_context(read_only_root_filesystem=False)
    container["volumeMounts"] = [{"name": "data", "mountPath": POSTGRES_DATA_DIR}]
    pod = pod_spec(
        containers=[container],
        security_context=pod_security_context(user_id=POSTGRES_USER_ID),
        volumes=[_volume_of_claim(names.postgres_data)],
        # A fast shutdown writes a checkpoint, which can outlast the default 30 seconds.
        termination_grace_period_seconds=60,
    )
    return deployment(
        owner,
        name=names.postgres,
        component="postgres",
        replicas=1,
        strategy=RECREATE,
        pod=pod,
    )


def render_redis_volume(owner: Owner, managed: ManagedRedis, *, retained: bool) -> Manifest:
    """Build the Redis data PersistentVolumeClaim; a retained one has no owner."""
    return persistent_volume_claim(
        owner,
        name=child_names(owner.name).redis_data,
        component="redis",
        storage=managed.storage,
        owned=not retained,
    )


def render_redis_service(owner: Owner) -> Manifest:
    """Build the Redis Service that REDIS_URL points to."""
    return service(
        owner,
        name=child_names(owner.name).redis,
        component="redis",
        port=REDIS_PORT,
        port_name="redis",
    )


def render_redis_deployment(owner: Owner, managed: ManagedRedis) -> Manifest:
    """Build the Redis Deployment: append-only persistence, one replica, Recreate strategy.

    The shell expands REDIS_PASSWORD from the environment at start, so the password appears
    neither in the pod spec nor in the container's command line as the API server stores it.
    """
    names = child_names(owner.name)
    start = (
        f'exec redis-server --appendonly yes --dir {REDIS_DATA_DIR} --requirepass "$REDIS_PASSWORD"'
    )
    ping = 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG'
    container: dict[str, Any] = {
        "name": "redis",
        "image": managed.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", start],
        "ports": [container_port(name="redis", port=REDIS_PORT)],
        "env": [
            secret_env(name="REDIS_PASSWORD", secret=names.credentials, key=REDIS_PASSWORD_KEY)
        ],
        "readinessProbe": exec_probe(
            command=["sh", "-c", ping], period_seconds=10, timeout_seconds=5, failure_threshold=3
        ),
        "livenessProbe": tcp_probe(
            port_name="redis", period_seconds=20, timeout_seconds=5, failure_threshold=6
        ),
    }
    _add_resources(container, resources=resources_field(managed.resources))
    container["securityContext"] = container_security_context(read_only_root_filesystem=False)
    container["volumeMounts"] = [{"name": "data", "mountPath": REDIS_DATA_DIR}]
    pod = pod_spec(
        containers=[container],
        security_context=pod_security_context(user_id=REDIS_USER_ID),
        volumes=[_volume_of_claim(names.redis_data)],
    )
    return deployment(
        owner, name=names.redis, component="redis", replicas=1, strategy=RECREATE, pod=pod
    )


def _volume_of_claim(claim_name: str) -> dict[str, Any]:
    return {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}


def _add_resources(container: dict[str, Any], *, resources: dict[str, Any] | None) -> None:
    if resources is not None:
        container["resources"] = resources
