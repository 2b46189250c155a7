"""The user's app: the api and worker Deployments, the api Service and its autoscaler.

The api and worker run the same image with the same environment. The environment is built in
layers so that the user's own settings win: the settings ConfigMap and then the user's envFrom
sources as envFrom, and the operator's Secret-backed variables and then the user's env as env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apiservice_operator.model import ApiServiceSpec, Resources, SecretKeyReference
from apiservice_operator.render.config import (
    DATABASE_URL_KEY,
    JWT_SECRET_KEY,
    REDIS_URL_KEY,
    url_secret_key,
)
from apiservice_operator.render.meta import (
    API_SERVICE_PORT,
    INPUTS_CHECKSUM_ANNOTATION,
    Manifest,
    Owner,
    child_names,
    object_meta,
)
from apiservice_operator.render.workloads import (
    ROLLING_UPDATE,
    container_port,
    container_security_context,
    deployment,
    http_probe,
    pod_security_context,
    pod_spec,
    resources_field,
    secret_env,
    service,
)


def autoscaling_enabled(spec: ApiServiceSpec) -> bool:
    """Return whether a HorizontalPodAutoscaler owns the api's replica count."""
    return spec.api.autoscaling is not None and spec.api.autoscaling.enabled


def app_env_from(owner_name: str, spec: ApiServiceSpec) -> list[dict[str, Any]]:
    """Return the api and worker envFrom: the settings ConfigMap, then the user's sources.

    A key defined by several sources takes the value of the last one, so the user's win.
    """
    settings = {"configMapRef": {"name": child_names(owner_name).config}}
    return [settings, *(source.to_api() for source in spec.env_from)]


def operator_env(owner_name: str, spec: ApiServiceSpec) -> list[dict[str, Any]]:
    """Return the Secret-backed variables that the operator sets on the api and worker."""
    credentials = child_names(owner_name).credentials
    database = url_secret_key(
        managed=spec.postgres.managed is not None,
        external=spec.postgres.external,
        credentials_secret=credentials,
        key=DATABASE_URL_KEY,
        field="spec.postgres",
    )
    redis = url_secret_key(
        managed=spec.redis.managed is not None,
        external=spec.redis.external,
        credentials_secret=credentials,
        key=REDIS_URL_KEY,
        field="spec.redis",
    )
    env = [
        secret_env(name=DATABASE_URL_KEY, secret=database["name"], key=database["key"]),
        secret_env(name=REDIS_URL_KEY, secret=redis["name"], key=redis["key"]),
        secret_env(name=JWT_SECRET_KEY, secret=credentials, key=JWT_SECRET_KEY),
    ]
    return env + _integration_env(spec)


def app_env(owner_name: str, spec: ApiServiceSpec) -> list[dict[str, Any]]:
    """Return the api and worker env: the operator's variables, then the user's.

    A user variable replaces the operator's variable of the same name instead of repeating it,
    because server-side apply rejects two env entries with one name. Among repeated user
    entries the last one wins, as the kubelet would do.
    """
    user_env: dict[str, dict[str, Any]] = {}
    for variable in spec.env:
        user_env.pop(variable.name, None)
        user_env[variable.name] = variable.to_api()
    operator_entries = [
        entry for entry in operator_env(owner_name, spec) if entry["name"] not in user_env
    ]
    return operator_entries + list(user_env.values())


def render_api_deployment(owner: Owner, spec: ApiServiceSpec, inputs_checksum: str) -> Manifest:
    """Build the api Deployment; it has no replica count when the autoscaler owns it."""
    api = spec.api
    # The startup probe allows two minutes for the first healthy response, for example while
    # migrations run, before the liveness probe may restart the container.
    ports_and_probes = {
        "ports": [container_port(name="http", port=api.port)],
        "startupProbe": http_probe(
            path=api.health_path, period_seconds=5, timeout_seconds=3, failure_threshold=24
        ),
        "readinessProbe": http_probe(
            path=api.health_path, period_seconds=10, timeout_seconds=3, failure_threshold=3
        ),
        "livenessProbe": http_probe(
            path=api.health_path, period_seconds=20, timeout_seconds=5, failure_threshold=3
        ),
    }
    container = _app_container(
        owner_name=owner.name,
        spec=spec,
        name="api",
        command=api.command,
        args=api.args,
        resources=api.resources,
        ports_and_probes=ports_and_probes,
    )
    annotations = {
        INPUTS_CHECKSUM_ANNOTATION: inputs_checksum,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(api.port),
        "prometheus.io/path": api.metrics_path,
    }
    return deployment(
        owner,
        name=child_names(owner.name).api,
        component="api",
        replicas=None if autoscaling_enabled(spec) else api.replicas,
        strategy=ROLLING_UPDATE,
        pod=_app_pod(spec, container=container),
        pod_annotations=annotations,
    )


def render_worker_deployment(owner: Owner, spec: ApiServiceSpec, inputs_checksum: str) -> Manifest:
    """Build the worker Deployment: the app image with the worker command and no ports.

    It has no probes, because the operator cannot know how a given worker reports its health.
    """
    worker = spec.worker
    container = _app_container(
        owner_name=owner.name,
        spec=spec,
        name="worker",
        command=worker.command,
        args=(),
        resources=worker.resources,
        ports_and_probes={},
    )
    return deployment(
        owner,
        name=child_names(owner.name).worker,
        component="worker",
        replicas=worker.replicas,
        strategy=ROLLING_UPDATE,
        pod=_app_pod(spec, container=container),
        pod_annotations={INPUTS_CHECKSUM_ANNOTATION: inputs_checksum},
    )


def render_api_service(owner: Owner) -> Manifest:
    """Build the api Service, which the edge proxy and the Ingress send requests to."""
    return service(
        owner,
        name=child_names(owner.name).api,
        component="api",
        port=API_SERVICE_PORT,
        port_name="http",
    )


def render_api_autoscaler(owner: Owner, spec: ApiServiceSpec) -> Manifest | None:
    """Build the api's autoscaling/v2 HorizontalPodAutoscaler, or None when it is off.

    It scales on CPU utilization, which is measured against the CPU request, so the api needs
    `resources.requests.cpu` for the autoscaler to act.
    """
    autoscaling = spec.api.autoscaling
    if autoscaling is None or not autoscaling.enabled:
        return None
    name = child_names(owner.name).api
    target = {
        "type": "Utilization",
        "averageUtilization": autoscaling.target_cpu_utilization_percentage,
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(owner, name=name, component="api"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def _integration_env(spec: ApiServiceSpec) -> list[dict[str, Any]]:
    references: list[tuple[str, SecretKeyReference | None]] = []
    if spec.supabase is not None:
        references.append(("SUPABASE_SERVICE_KEY", spec.supabase.service_key_secret_ref))
        references.append(("SUPABASE_ANON_KEY", spec.supabase.anon_key_secret_ref))
    if spec.hatchet is not None:
        references.append(("HATCHET_CLIENT_TOKEN", spec.hatchet.token_secret_ref))
    return [
        secret_env(name=name, secret=reference.name, key=reference.key)
        for name, reference in references
        if reference is not None
    ]


def _app_container(
    *,
    owner_name: str,
    spec: ApiServiceSpec,
    name: str,
    command: Sequence[str],
    args: Sequence[str],
    resources: Resources | None,
    ports_and_probes: Mapping[str, Any],
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
    }
    # An empty command or args list is left out, so that the image's own entrypoint runs.
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    container.update(ports_and_probes)
    container["envFrom"] = app_env_from(owner_name, spec)
    container["env"] = app_env(owner_name, spec)
    resources_value = resources_field(resources)
    if resources_value is not None:
        container["resources"] = resources_value
    # The app may write caches and temporary files, so only the root filesystem stays writable.
    container["securityContext"] = container_security_context(read_only_root_filesystem=False)
    return container


def _app_pod(spec: ApiServiceSpec, *, container: dict[str, Any]) -> dict[str, Any]:
    return pod_spec(
        containers=[container],
        security_context=pod_security_context(),
        image_pull_secrets=[reference.name for reference in spec.image_pull_secrets],
    )
