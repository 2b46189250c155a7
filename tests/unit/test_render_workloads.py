"""Tests of the Deployments, Services, volumes and autoscaler of the app and the datastores."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    INPUTS_CHECKSUM_ANNOTATION,
    Credentials,
    Owner,
    checksum,
    credentials_values,
    render_children,
    render_settings_configmap,
)

OWNER = Owner(name="shop", namespace="team-a", uid="uid-1")
CREDENTIALS = Credentials(
    postgres_password="pg-secret-1", redis_password="redis-secret-2", jwt_secret="jwt-secret-3"
)
IMAGE = "ghcr.io/acme/api:1.0.0"
EXTERNAL = {
    "postgres": {"external": {"urlSecretRef": {"name": "rds", "key": "url"}}},
    "redis": {"external": {"urlSecretRef": {"name": "cache", "key": "redis-url"}}},
}


def spec_of(**fields: Any) -> ApiServiceSpec:
    return ApiServiceSpec.model_validate({"image": IMAGE, **fields})


def render(**fields: Any) -> list[dict[str, Any]]:
    return render_children(OWNER, spec_of(**fields), CREDENTIALS, "inputs-sum")


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def names_of(children: list[dict[str, Any]], kind: str) -> list[str]:
    return [child["metadata"]["name"] for child in children if child["kind"] == kind]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_by_name(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(deployment)["env"]}


def secret_ref(entry: dict[str, Any]) -> dict[str, str]:
    return dict(entry["valueFrom"]["secretKeyRef"])


def test_api_replicas_without_autoscaling() -> None:
    api = find(render(api={"replicas": 4}), "Deployment", "shop-api")
    assert api["spec"]["replicas"] == 4


def test_api_replicas_omitted_under_autoscaling() -> None:
    api = find(render(api={"autoscaling": {"enabled": True}}), "Deployment", "shop-api")
    assert "replicas" not in api["spec"]


def test_api_replicas_kept_when_autoscaling_disabled() -> None:
    children = render(api={"replicas": 3, "autoscaling": {"enabled": False}})
    assert find(children, "Deployment", "shop-api")["spec"]["replicas"] == 3
    assert names_of(children, "HorizontalPodAutoscaler") == []


def test_autoscaler_targets_api_cpu() -> None:
    autoscaling = {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 9,
        "targetCpuUtilizationPercentage": 65,
    }
    hpa = find(render(api={"autoscaling": autoscaling}), "HorizontalPodAutoscaler", "shop-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-api"},
        "minReplicas": 2,
        "maxReplicas": 9,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 65},
                },
            }
        ],
    }


def test_api_container_port_and_probes() -> None:
    api = container(
        find(render(api={"port": 9000, "healthPath": "/ready"}), "Deployment", "shop-api")
    )
    assert api["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"] == {"path": "/ready", "port": "http"}, probe


def test_api_service_targets_http_port() -> None:
    service = find(render(), "Service", "shop-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_api_prometheus_annotations() -> None:
    api = find(render(api={"port": 9000, "metricsPath": "/m"}), "Deployment", "shop-api")
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9000"
    assert annotations["prometheus.io/path"] == "/m"


def test_api_command_omitted_when_empty() -> None:
    api = container(find(render(), "Deployment", "shop-api"))
    assert "command" not in api
    assert "args" not in api


def test_api_command_and_args_when_set() -> None:
    fields = {"command": ["uvicorn"], "args": ["app.main:app", "--port", "8000"]}
    api = container(find(render(api=fields), "Deployment", "shop-api"))
    assert api["command"] == ["uvicorn"]
    assert api["args"] == ["app.main:app", "--port", "8000"]


def test_api_image_pull_settings() -> None:
    children = render(imagePullPolicy="Always", imagePullSecrets=[{"name": "ghcr"}])
    for name in ("shop-api", "shop-worker"):
        deployment = find(children, "Deployment", name)
        assert container(deployment)["image"] == IMAGE
        assert container(deployment)["imagePullPolicy"] == "Always"
        assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "ghcr"}]


def test_api_resources_only_when_set() -> None:
    assert "resources" not in container(find(render(), "Deployment", "shop-api"))
    resources = {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}
    api = container(find(render(api={"resources": resources}), "Deployment", "shop-api"))
    assert api["resources"] == resources


def test_inputs_checksum_on_app_pods() -> None:
    children = render_children(OWNER, spec_of(), CREDENTIALS, "abc123")
    for name in ("shop-api", "shop-worker"):
        annotations = find(children, "Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert annotations[INPUTS_CHECKSUM_ANNOTATION] == "abc123"


def test_inputs_checksum_not_on_datastore_pods() -> None:
    children = render()
    for name in ("shop-postgres", "shop-redis"):
        template_meta = find(children, "Deployment", name)["spec"]["template"]["metadata"]
        assert INPUTS_CHECKSUM_ANNOTATION not in template_meta.get("annotations", {})


def inputs_checksum(spec: ApiServiceSpec, credentials: Credentials = CREDENTIALS) -> str:
    """Compute the inputs checksum the way reconcile does, from the rendered inputs."""
    return checksum(
        render_settings_configmap(OWNER, spec)["data"],
        credentials_values(OWNER, spec, credentials),
    )


def test_inputs_checksum_stable_for_same_inputs() -> None:
    assert inputs_checksum(spec_of()) == inputs_checksum(spec_of())


def test_inputs_checksum_ignores_unrelated_fields() -> None:
    base = inputs_checksum(spec_of())
    assert inputs_checksum(spec_of(api={"replicas": 7})) == base
    assert inputs_checksum(spec_of(ingress={"edge": {"replicas": 3}})) == base


@pytest.mark.parametrize(
    "fields",
    [
        {"logLevel": "DEBUG"},
        {"environment": "staging"},
        {"corsOrigins": ["https://app.example.com"]},
        {"supabase": {"url": "https://x.supabase.co"}},
        {"postgres": {"managed": {"user": "other"}}},
    ],
)
def test_inputs_checksum_changes_with_settings(fields: dict[str, Any]) -> None:
    assert inputs_checksum(spec_of(**fields)) != inputs_checksum(spec_of())


def test_inputs_checksum_changes_with_credentials() -> None:
    rotated = Credentials(
        postgres_password="pg-secret-1", redis_password="redis-secret-2", jwt_secret="rotated"
    )
    assert inputs_checksum(spec_of(), rotated) != inputs_checksum(spec_of())


def test_app_env_from_settings_first() -> None:
    env_from = [{"configMapRef": {"name": "extra"}}, {"prefix": "X_", "secretRef": {"name": "s"}}]
    api = container(find(render(envFrom=env_from), "Deployment", "shop-api"))
    assert api["envFrom"] == [{"configMapRef": {"name": "shop-config"}}, *env_from]


def test_app_env_managed_urls_from_credentials() -> None:
    env = env_by_name(find(render(), "Deployment", "shop-api"))
    assert secret_ref(env["DATABASE_URL"]) == {"name": "shop-credentials", "key": "DATABASE_URL"}
    assert secret_ref(env["REDIS_URL"]) == {"name": "shop-credentials", "key": "REDIS_URL"}
    assert secret_ref(env["JWT_SECRET"]) == {"name": "shop-credentials", "key": "JWT_SECRET"}


def test_app_env_external_urls_from_user_secrets() -> None:
    children = render(**EXTERNAL)
    for name in ("shop-api", "shop-worker"):
        env = env_by_name(find(children, "Deployment", name))
        assert secret_ref(env["DATABASE_URL"]) == {"name": "rds", "key": "url"}
        assert secret_ref(env["REDIS_URL"]) == {"name": "cache", "key": "redis-url"}
        assert secret_ref(env["JWT_SECRET"]) == {"name": "shop-credentials", "key": "JWT_SECRET"}


def test_external_servers_render_no_datastores() -> None:
    children = render(**EXTERNAL)
    assert names_of(children, "PersistentVolumeClaim") == []
    assert "shop-postgres" not in names_of(children, "Deployment")
    assert "shop-redis" not in names_of(children, "Deployment")
    assert names_of(children, "Service") == ["shop-api", "shop-edge"]


def test_mixed_managed_and_external() -> None:
    children = render(postgres=EXTERNAL["postgres"])
    env = env_by_name(find(children, "Deployment", "shop-api"))
    assert secret_ref(env["DATABASE_URL"]) == {"name": "rds", "key": "url"}
    assert secret_ref(env["REDIS_URL"]) == {"name": "shop-credentials", "key": "REDIS_URL"}
    assert names_of(children, "PersistentVolumeClaim") == ["shop-redis-data"]


@pytest.mark.parametrize("server", ["postgres", "redis"])
def test_neither_managed_nor_external_rejected(server: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid spec.{server}: set exactly one")):
        render(**{server: {}})


def test_app_env_integration_secrets() -> None:
    spec = {
        "supabase": {
            "url": "https://x.supabase.co",
            "serviceKeySecretRef": {"name": "sb", "key": "service"},
            "anonKeySecretRef": {"name": "sb", "key": "anon"},
        },
        "hatchet": {
            "serverUrl": "https://hatchet.example.com",
            "tokenSecretRef": {"name": "ht", "key": "token"},
        },
    }
    env = env_by_name(find(render(**spec), "Deployment", "shop-api"))
    assert secret_ref(env["SUPABASE_SERVICE_KEY"]) == {"name": "sb", "key": "service"}
    assert secret_ref(env["SUPABASE_ANON_KEY"]) == {"name": "sb", "key": "anon"}
    assert secret_ref(env["HATCHET_CLIENT_TOKEN"]) == {"name": "ht", "key": "token"}


def test_app_env_integration_secrets_absent_when_unset() -> None:
    spec = {"supabase": {"url": "https://x.supabase.co"}}
    env = env_by_name(find(render(**spec), "Deployment", "shop-api"))
    assert "SUPABASE_SERVICE_KEY" not in env
    assert "SUPABASE_ANON_KEY" not in env
    assert "HATCHET_CLIENT_TOKEN" not in env


def test_app_env_user_entries_last() -> None:
    user_env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    names = [
        e["name"] for e in container(find(render(env=user_env), "Deployment", "shop-api"))["env"]
    ]
    assert names == ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "A", "B"]


def test_app_env_user_entry_replaces_operator_entry() -> None:
    user_env = [{"name": "DATABASE_URL", "value": "postgresql://elsewhere/db"}]
    entries = container(find(render(env=user_env), "Deployment", "shop-api"))["env"]
    database = [entry for entry in entries if entry["name"] == "DATABASE_URL"]
    assert database == [{"name": "DATABASE_URL", "value": "postgresql://elsewhere/db"}]
    assert entries[-1]["name"] == "DATABASE_URL"


def test_app_env_repeated_user_entry_last_wins() -> None:
    # The CRD rejects repeated names, but a spec built in Python can still contain them.
    user_env = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
        {"name": "A", "value": "3"},
    ]
    entries = container(find(render(env=user_env), "Deployment", "shop-api"))["env"]
    assert [entry for entry in entries if entry["name"] in {"A", "B"}] == [
        {"name": "B", "value": "2"},
        {"name": "A", "value": "3"},
    ]


def test_app_env_user_value_from() -> None:
    user_env = [{"name": "DSN", "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}}}]
    env = env_by_name(find(render(env=user_env), "Deployment", "shop-api"))
    assert env["DSN"] == {
        "name": "DSN",
        "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}},
    }


def test_worker_runs_worker_command() -> None:
    worker = find(
        render(worker={"replicas": 3, "command": ["celery", "worker"]}), "Deployment", "shop-worker"
    )
    assert worker["spec"]["replicas"] == 3
    assert container(worker)["command"] == ["celery", "worker"]
    assert container(worker)["image"] == IMAGE
    assert "ports" not in container(worker)


def test_worker_env_same_as_api() -> None:
    children = render(env=[{"name": "A", "value": "1"}])
    api = container(find(children, "Deployment", "shop-api"))
    worker = container(find(children, "Deployment", "shop-worker"))
    assert worker["env"] == api["env"]
    assert worker["envFrom"] == api["envFrom"]


def test_worker_disabled_renders_no_worker() -> None:
    assert "shop-worker" not in names_of(render(worker={"enabled": False}), "Deployment")


@pytest.mark.parametrize("fields", [{}, EXTERNAL, {"ingress": {"edge": {"enabled": False}}}])
def test_every_pod_is_hardened(fields: dict[str, Any]) -> None:
    for deployment in (c for c in render(**fields) if c["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["enableServiceLinks"] is False, name
        security = container(deployment)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name


def test_app_pods_run_as_image_user() -> None:
    children = render()
    for name in ("shop-api", "shop-worker"):
        context = find(children, "Deployment", name)["spec"]["template"]["spec"]["securityContext"]
        assert "runAsUser" not in context


def test_no_secret_outside_credentials_secret() -> None:
    for child in render():
        if child["kind"] == "Secret":
            continue
        text = json.dumps(child)
        for secret in ("pg-secret-1", "redis-secret-2", "jwt-secret-3"):
            assert secret not in text, f"{child['kind']} {child['metadata']['name']}"


def test_postgres_volume() -> None:
    storage = {"size": "20Gi", "storageClassName": "fast"}
    volume = find(
        render(postgres={"managed": {"storage": storage}}),
        "PersistentVolumeClaim",
        "shop-postgres-data",
    )
    assert volume["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast",
    }


def test_volume_without_storage_class() -> None:
    volume = find(render(), "PersistentVolumeClaim", "shop-redis-data")
    assert "storageClassName" not in volume["spec"]
    assert volume["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


def test_postgres_deployment() -> None:
    managed = {"user": "owner", "database": "shop", "image": "postgres:16.4-alpine"}
    deployment = find(render(postgres={"managed": managed}), "Deployment", "shop-postgres")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    postgres = container(deployment)
    assert postgres["image"] == "postgres:16.4-alpine"
    assert postgres["ports"] == [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}]
    assert postgres["env"] == [
        {"name": "POSTGRES_USER", "value": "owner"},
        {"name": "POSTGRES_DB", "value": "shop"},
        {
            "name": "POSTGRES_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "shop-credentials", "key": "POSTGRES_PASSWORD"}},
        },
        {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
    ]
    assert postgres["readinessProbe"]["exec"]["command"] == [
        "pg_isready", "-U", "owner", "-d", "shop", "-h", "127.0.0.1",
    ]  # fmt: skip
    assert postgres["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "shop-postgres-data"}}
    ]


def test_postgres_service() -> None:
    service = find(render(), "Service", "shop-postgres")
    assert service["spec"]["ports"] == [
        {"name": "postgres", "port": 5432, "targetPort": "postgres", "protocol": "TCP"}
    ]


def test_redis_deployment() -> None:
    deployment = find(render(), "Deployment", "shop-redis")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    redis = container(deployment)
    assert redis["command"] == [
        "sh",
        "-c",
        'exec redis-server --appendonly yes --dir /data --requirepass "$REDIS_PASSWORD"',
    ]
    assert redis["env"] == [
        {
            "name": "REDIS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "shop-credentials", "key": "REDIS_PASSWORD"}},
        }
    ]
    assert redis["readinessProbe"]["exec"]["command"] == [
        "sh",
        "-c",
        'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG',
    ]
    assert redis["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_redis_service() -> None:
    service = find(render(), "Service", "shop-redis")
    assert service["spec"]["ports"] == [
        {"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}
    ]


def test_datastores_own_volumes_through_fs_group() -> None:
    children = render()
    for name, user_id in (("shop-postgres", 70), ("shop-redis", 999)):
        context = find(children, "Deployment", name)["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsUser"] == user_id
        assert context["fsGroup"] == user_id


def test_datastore_resources_when_set() -> None:
    resources = {"requests": {"memory": "1Gi"}}
    children = render(
        postgres={"managed": {"resources": resources}}, redis={"managed": {"resources": resources}}
    )
    for name in ("shop-postgres", "shop-redis"):
        assert container(find(children, "Deployment", name))["resources"] == resources
