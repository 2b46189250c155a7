"""Every child object of one ApiService, in the order that reconcile applies them.

Objects that others refer to come first: the Secret and ConfigMaps that pods read, the volumes
they mount and the Services they connect to, then the Deployments, the autoscaler and the
Ingress.
"""

from __future__ import annotations

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render.app import (
    render_api_autoscaler,
    render_api_deployment,
    render_api_service,
    render_worker_deployment,
)
from apiservice_operator.render.config import (
    Credentials,
    render_credentials_secret,
    render_settings_configmap,
)
from apiservice_operator.render.datastores import (
    render_postgres_deployment,
    render_postgres_service,
    render_postgres_volume,
    render_redis_deployment,
    render_redis_service,
    render_redis_volume,
)
from apiservice_operator.render.edge import (
    render_edge_configmap,
    render_edge_deployment,
    render_edge_service,
    render_ingress,
    render_nginx_conf,
)
from apiservice_operator.render.meta import Manifest, Owner, validate_owner_name
from apiservice_operator.render.retention import retains_postgres_data, retains_redis_data

# (apiVersion, kind) of every kind of child, in apply order; reconcile lists these to prune.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
)


def render_children(
    owner: Owner, spec: ApiServiceSpec, credentials: Credentials, inputs_checksum: str
) -> list[Manifest]:
    """Build every child object of the ApiService, in apply order.

    `inputs_checksum` goes on the api and worker pods, so that a change of their settings or
    Secrets rolls them. Raises ValueError when the owner's name or the spec cannot be rendered,
    with a message that names the field to fix.
    """
    validate_owner_name(owner.name)
    nginx_conf = render_nginx_conf(owner, spec) if spec.ingress.edge.enabled else None
    children = [
        render_credentials_secret(owner, spec, credentials),
        render_settings_configmap(owner, spec),
    ]
    if nginx_conf is not None:
        children.append(render_edge_configmap(owner, nginx_conf))
    children += _volumes(owner, spec)
    children += _services(owner, spec)
    children += _deployments(owner, spec, inputs_checksum=inputs_checksum, nginx_conf=nginx_conf)
    for optional in (render_api_autoscaler(owner, spec), render_ingress(owner, spec)):
        if optional is not None:
            children.append(optional)
    return children


def _volumes(owner: Owner, spec: ApiServiceSpec) -> list[Manifest]:
    volumes = []
    if spec.postgres.managed is not None:
        volumes.append(
            render_postgres_volume(
                owner, spec.postgres.managed, retained=retains_postgres_data(spec)
            )
        )
    if spec.redis.managed is not None:
        volumes.append(
            render_redis_volume(owner, spec.redis.managed, retained=retains_redis_data(spec))
        )
    return volumes


def _services(owner: Owner, spec: ApiServiceSpec) -> list[Manifest]:
    services = []
    if spec.postgres.managed is not None:
        services.append(render_postgres_service(owner))
    if spec.redis.managed is not None:
        services.append(render_redis_service(owner))
    services.append(render_api_service(owner))
    if spec.ingress.edge.enabled:
        services.append(render_edge_service(owner))
    return services


def _deployments(
    owner: Owner, spec: ApiServiceSpec, *, inputs_checksum: str, nginx_conf: str | None
) -> list[Manifest]:
    deployments = []
    if spec.postgres.managed is not None:
        deployments.append(render_postgres_deployment(owner, spec.postgres.managed))
    if spec.redis.managed is not None:
        deployments.append(render_redis_deployment(owner, spec.redis.managed))
    deployments.append(render_api_deployment(owner, spec, inputs_checksum))
    if spec.worker.enabled:
        deployments.append(render_worker_deployment(owner, spec, inputs_checksum))
    if nginx_conf is not None:
        deployments.append(render_edge_deployment(owner, spec, nginx_conf))
    return deployments
