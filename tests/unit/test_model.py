"""Unit tests of the ApiService pydantic models: defaults, aliases, bounds and quantities."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from apiservice_operator.model import (
    ApiServiceSpec,
    ApiServiceStatus,
    Autoscaling,
    ResourceList,
    Storage,
)

IMAGE = "ghcr.io/acme/orders-api:1.4.2"


@pytest.fixture
def minimal_spec() -> ApiServiceSpec:
    return ApiServiceSpec.model_validate({"image": IMAGE})


def test_spec_top_level_defaults(minimal_spec: ApiServiceSpec) -> None:
    assert minimal_spec.image == IMAGE
    assert minimal_spec.image_pull_policy == "IfNotPresent"
    assert minimal_spec.image_pull_secrets == []
    assert minimal_spec.environment == "dev"
    assert minimal_spec.log_level == "INFO"
    assert minimal_spec.cors_origins == ["*"]
    assert minimal_spec.env == []
    assert minimal_spec.env_from == []
    assert minimal_spec.supabase is None
    assert minimal_spec.hatchet is None
    assert minimal_spec.suspend is False


def test_spec_api_and_worker_defaults(minimal_spec: ApiServiceSpec) -> None:
    api = minimal_spec.api
    assert api.replicas == 2
    assert api.port == 8000
    assert api.command == []
    assert api.args == []
    assert api.health_path == "/health"
    assert api.metrics_path == "/metrics"
    assert api.resources is None
    assert api.autoscaling is None

    worker = minimal_spec.worker
    assert worker.enabled is True
    assert worker.replicas == 1
    assert worker.command == ["python", "-m", "app.worker"]
    assert worker.resources is None


def test_spec_database_defaults(minimal_spec: ApiServiceSpec) -> None:
    postgres = minimal_spec.postgres
    assert postgres.external is None
    assert postgres.managed is not None
    assert postgres.managed.image == "postgres:16-alpine"
    assert postgres.managed.database == "app"
    assert postgres.managed.user == "app"
    assert postgres.managed.storage.size == "1Gi"
    assert postgres.managed.storage.storage_class_name is None
    assert postgres.managed.retention_policy == "Retain"

    redis = minimal_spec.redis
    assert redis.external is None
    assert redis.managed is not None
    assert redis.managed.image == "redis:7-alpine"
    assert redis.managed.storage.size == "1Gi"
    assert redis.managed.retention_policy == "Retain"


def test_spec_ingress_defaults(minimal_spec: ApiServiceSpec) -> None:
    ingress = minimal_spec.ingress
    assert ingress.host is None
    assert ingress.class_name is None
    assert ingress.tls_secret_name is None
    assert ingress.annotations is None
    assert ingress.edge.enabled is True
    assert ingress.edge.replicas == 1
    assert ingress.edge.image == "nginx:1.27-alpine"
    assert ingress.edge.metrics_allow_list == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
    ]


def test_autoscaling_defaults() -> None:
    autoscaling = Autoscaling()
    assert autoscaling.enabled is False
    assert autoscaling.min_replicas == 2
    assert autoscaling.max_replicas == 10
    assert autoscaling.target_cpu_utilization_percentage == 80


def test_status_defaults() -> None:
    status = ApiServiceStatus()
    assert status.observed_generation == -1
    assert status.conditions == []
    assert status.components is None
    assert status.url is None
    assert status.credentials_secret_name is None


def test_to_api_uses_camel_case_and_omits_none(minimal_spec: ApiServiceSpec) -> None:
    dumped = minimal_spec.to_api()
    assert dumped["imagePullPolicy"] == "IfNotPresent"
    assert dumped["api"]["healthPath"] == "/health"
    assert dumped["postgres"] == {
        "managed": {
            "image": "postgres:16-alpine",
            "database": "app",
            "user": "app",
            "storage": {"size": "1Gi"},
            "retentionPolicy": "Retain",
        }
    }
    assert "supabase" not in dumped
    assert "hatchet" not in dumped
    assert "autoscaling" not in dumped["api"]


def test_spec_accepts_snake_case_names() -> None:
    spec = ApiServiceSpec(image=IMAGE, log_level="DEBUG", image_pull_policy="Always")
    assert spec.to_api()["logLevel"] == "DEBUG"
    assert spec.to_api()["imagePullPolicy"] == "Always"


def test_spec_rejects_unknown_field() -> None:
    with pytest.raises(ValidationError, match="replica"):
        ApiServiceSpec.model_validate({"image": IMAGE, "api": {"replica": 3}})


def test_spec_requires_image() -> None:
    with pytest.raises(ValidationError, match="image"):
        ApiServiceSpec.model_validate({})


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("250m", "250m"),
        ("1Gi", "1Gi"),
        ("0.5", "0.5"),
        (".5", ".5"),
        ("1e3", "1e3"),
        ("2E-1", "2E-1"),
        ("128974848", "128974848"),
        (2, "2"),
        (0, "0"),
    ],
)
def test_quantity_accepted(value: Any, stored: str) -> None:
    assert ResourceList(cpu=value).cpu == stored


@pytest.mark.parametrize("value", ["1Gb", "-1", -1, "1.2.3", "", "one", "1 Gi", "1Gi ", True, 0.5])
def test_quantity_rejected(value: Any) -> None:
    with pytest.raises(ValidationError):
        ResourceList(cpu=value)


def test_storage_size_accepts_integer() -> None:
    assert Storage.model_validate({"size": 1073741824}).size == "1073741824"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replicas", -1),
        ("replicas", 101),
        ("port", 80),
        ("port", 65536),
        ("healthPath", "health"),
        ("metricsPath", "/metrics path"),
    ],
)
def test_api_component_bounds(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ApiServiceSpec.model_validate({"image": IMAGE, "api": {field: value}})
