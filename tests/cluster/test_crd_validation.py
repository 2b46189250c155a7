"""The generated CRD on a real API server: defaults, rejections, printer columns and warnings.

Every create here goes through kubectl as a user would run it, so the rejections include
kubectl's default strict field validation, which turns pruned unknown fields into errors.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from apiservice_operator.model import ApiServiceSpec
from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "apiservice.dev_apiservices.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
IMAGE = "ghcr.io/acme/orders-api:1.4.2"
SECRET_REF = {"urlSecretRef": {"name": "orders-postgres", "key": "url"}}


def drop_empty_lists(value: Any) -> Any:
    """Remove empty lists, which the CRD leaves unset and the models default to []."""
    if isinstance(value, dict):
        return {key: drop_empty_lists(item) for key, item in value.items() if item != []}
    if isinstance(value, list):
        return [drop_empty_lists(item) for item in value]
    return value


def field_paths(value: Any, path: str = "") -> Iterator[str]:
    """Yield the path of every field in a JSON value, such as api.resources.requests.cpu."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            yield child
            yield from field_paths(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from field_paths(item, f"{path}[{index}]")


def api_service_documents(path: Path) -> list[dict[str, Any]]:
    documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [doc for doc in documents if doc and doc.get("kind") == "ApiService"]


def get_api_service(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    # The full resource name, because the bare name `apiservice` resolves to the APIService kind
    # of apiregistration.k8s.io.
    result = cluster.kubectl(
        "get", "apiservices.apiservice.dev", name, "-n", namespace, "-o", "json"
    )
    live: dict[str, Any] = json.loads(result.stdout)
    return live


def manifest(spec: dict[str, Any] | None, name: str = "orders") -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "apiservice.dev/v1alpha1",
        "kind": "ApiService",
        "metadata": {"name": name},
    }
    if spec is not None:
        document["spec"] = spec
    return document


def with_image(**fields: Any) -> dict[str, Any]:
    """Build a spec that is valid except for the given top-level fields."""
    return {"image": IMAGE, **fields}


@pytest.fixture(scope="module")
def rejection_namespace(cluster: Cluster, crd_installed: Path) -> Iterator[str]:
    """Yield one namespace for all rejection cases, since a rejected create stores nothing."""
    name = f"t-crd-rejections-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# Example files, creation and defaults.


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_created_with_defaults(
    cluster: Cluster, crd_installed: Path, namespace: str, example: Path
) -> None:
    result = cluster.kubectl("create", "-n", namespace, "-f", str(example))
    assert "Warning:" not in result.stderr

    [document] = api_service_documents(example)
    live_spec = get_api_service(cluster, namespace, document["metadata"]["name"])["spec"]
    expected = ApiServiceSpec.model_validate(document["spec"]).to_api()

    # The API server fills exactly the fields that the models default, and keeps every value.
    assert sorted(field_paths(live_spec)) == sorted(field_paths(drop_empty_lists(expected)))
    assert ApiServiceSpec.model_validate(live_spec).to_api() == expected


def test_minimal_example_nested_defaults(
    cluster: Cluster, crd_installed: Path, namespace: str
) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", str(ROOT / "examples" / "minimal.yaml"))
    spec = get_api_service(cluster, namespace, "orders")["spec"]

    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["api"]["port"] == 8000
    assert spec["api"]["healthPath"] == "/health"
    assert spec["worker"]["command"] == ["python", "-m", "app.worker"]
    assert spec["postgres"]["managed"]["image"] == "postgres:16-alpine"
    assert spec["postgres"]["managed"]["storage"]["size"] == "1Gi"
    assert spec["postgres"]["managed"]["retentionPolicy"] == "Retain"
    assert spec["redis"]["managed"]["image"] == "redis:7-alpine"
    assert spec["redis"]["managed"]["storage"]["size"] == "1Gi"
    assert spec["ingress"]["edge"]["enabled"] is True
    assert spec["ingress"]["edge"]["metricsAllowList"][0] == "127.0.0.1/32"
    assert "autoscaling" not in spec["api"]
    assert "host" not in spec["ingress"]


def test_external_example_gets_no_managed_default(
    cluster: Cluster, crd_installed: Path, namespace: str
) -> None:
    path = ROOT / "examples" / "external-databases.yaml"
    cluster.kubectl("create", "-n", namespace, "-f", str(path))
    spec = get_api_service(cluster, namespace, "orders")["spec"]

    assert spec["postgres"] == {
        "external": {"urlSecretRef": {"name": "orders-postgres", "key": "url"}}
    }
    assert spec["redis"] == {"external": {"urlSecretRef": {"name": "orders-redis", "key": "url"}}}


def test_partial_objects_get_nested_defaults(
    cluster: Cluster, crd_installed: Path, namespace: str
) -> None:
    spec = with_image(
        api={"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": 1}}},
        ingress={"host": "orders.acme.example", "edge": {"replicas": 2}},
    )
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest(spec)))
    live = get_api_service(cluster, namespace, "orders")["spec"]

    assert live["api"]["autoscaling"] == {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 10,
        "targetCpuUtilizationPercentage": 80,
    }
    assert live["api"]["resources"]["requests"]["cpu"] == 1
    assert live["ingress"]["edge"]["replicas"] == 2
    assert live["ingress"]["edge"]["image"] == "nginx:1.27-alpine"


# Rejected ApiServices. Each case names a part of the error that identifies the field.


class Rejection(NamedTuple):
    case: str
    document: dict[str, Any]
    expected: str


def rejection(case: str, spec: dict[str, Any], expected: str) -> Rejection:
    return Rejection(case, manifest(spec, name=case), expected)


REJECTIONS = [
    rejection("image-missing", {}, "spec.image: Required value"),
    rejection("image-not-string", {"image": 42}, "spec.image in body must be of type string"),
    rejection(
        "image-with-space",
        {"image": "ghcr.io/acme/orders api:1"},
        "spec.image in body should match",
    ),
    rejection(
        "pull-policy-unknown",
        with_image(imagePullPolicy="Sometimes"),
        'spec.imagePullPolicy: Unsupported value: "Sometimes"',
    ),
    rejection(
        "environment-unknown",
        with_image(environment="production"),
        'spec.environment: Unsupported value: "production"',
    ),
    rejection(
        "log-level-lower-case",
        with_image(logLevel="info"),
        'spec.logLevel: Unsupported value: "info"',
    ),
    rejection(
        "suspend-not-boolean",
        with_image(suspend="yes"),
        "spec.suspend in body must be of type boolean",
    ),
    rejection(
        "replicas-negative",
        with_image(api={"replicas": -1}),
        "spec.api.replicas in body should be greater than or equal to 0",
    ),
    rejection(
        "replicas-above-max",
        with_image(api={"replicas": 101}),
        "spec.api.replicas in body should be less than or equal to 100",
    ),
    rejection(
        "port-privileged",
        with_image(api={"port": 80}),
        "spec.api.port in body should be greater than or equal to 1024",
    ),
    rejection(
        "port-not-integer",
        with_image(api={"port": "8000"}),
        "spec.api.port in body must be of type integer",
    ),
    rejection(
        "edge-replicas-above-max",
        with_image(ingress={"edge": {"replicas": 21}}),
        "spec.ingress.edge.replicas in body should be less than or equal to 20",
    ),
    rejection(
        "cpu-target-zero",
        with_image(api={"autoscaling": {"targetCpuUtilizationPercentage": 0}}),
        "spec.api.autoscaling.targetCpuUtilizationPercentage in body should be greater than "
        "or equal to 1",
    ),
    rejection(
        "autoscaling-min-above-max",
        with_image(api={"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}),
        "spec.api.autoscaling.minReplicas must not be greater than maxReplicas",
    ),
    rejection(
        "autoscaling-min-above-default",
        with_image(api={"autoscaling": {"enabled": True, "minReplicas": 20}}),
        "spec.api.autoscaling.minReplicas must not be greater than maxReplicas",
    ),
    rejection(
        "postgres-managed-and-external",
        with_image(postgres={"managed": {}, "external": SECRET_REF}),
        "spec.postgres must set exactly one of managed or external",
    ),
    rejection(
        "postgres-neither",
        with_image(postgres={}),
        "spec.postgres must set exactly one of managed or external",
    ),
    rejection(
        "redis-managed-and-external",
        with_image(redis={"managed": {}, "external": SECRET_REF}),
        "spec.redis must set exactly one of managed or external",
    ),
    rejection(
        "external-secret-key-missing",
        with_image(postgres={"external": {"urlSecretRef": {"name": "orders-postgres"}}}),
        "spec.postgres.external.urlSecretRef.key: Required value",
    ),
    rejection(
        "tls-without-host",
        with_image(ingress={"tlsSecretName": "orders-tls"}),
        "spec.ingress.tlsSecretName needs spec.ingress.host",
    ),
    rejection(
        "class-name-without-host",
        with_image(ingress={"className": "nginx"}),
        "spec.ingress.className needs spec.ingress.host",
    ),
    rejection(
        "host-upper-case",
        with_image(ingress={"host": "Orders.Acme.Example"}),
        "spec.ingress.host in body should match",
    ),
    rejection(
        "host-with-scheme",
        with_image(ingress={"host": "https://orders.acme.example"}),
        "spec.ingress.host in body should match",
    ),
    rejection(
        "host-with-underscore",
        with_image(ingress={"host": "orders_api.acme.example"}),
        "spec.ingress.host in body should match",
    ),
    rejection(
        "tls-secret-name-upper-case",
        with_image(ingress={"host": "orders.acme.example", "tlsSecretName": "Orders-TLS"}),
        "spec.ingress.tlsSecretName in body should match",
    ),
    rejection(
        "cidr-prefix-too-long",
        with_image(ingress={"edge": {"metricsAllowList": ["10.0.0.0/33"]}}),
        "spec.ingress.edge.metricsAllowList entries must be CIDRs",
    ),
    rejection(
        "cidr-without-prefix",
        with_image(ingress={"edge": {"metricsAllowList": ["10.1.2.3"]}}),
        "spec.ingress.edge.metricsAllowList entries must be CIDRs",
    ),
    rejection(
        "cidr-host-name",
        with_image(ingress={"edge": {"metricsAllowList": ["10.0.0.0/8", "monitoring"]}}),
        "spec.ingress.edge.metricsAllowList entries must be CIDRs",
    ),
    rejection(
        "env-value-and-value-from",
        with_image(
            env=[
                {
                    "name": "SENTRY_DSN",
                    "value": "x",
                    "valueFrom": {"secretKeyRef": {"name": "orders-secrets", "key": "dsn"}},
                }
            ]
        ),
        "spec.env[] entries must not set both value and valueFrom",
    ),
    rejection(
        "env-value-from-empty",
        with_image(env=[{"name": "SENTRY_DSN", "valueFrom": {}}]),
        "spec.env[].valueFrom must set exactly one of secretKeyRef or configMapKeyRef",
    ),
    rejection(
        "env-value-from-both-refs",
        with_image(
            env=[
                {
                    "name": "REGION",
                    "valueFrom": {
                        "secretKeyRef": {"name": "orders-secrets", "key": "region"},
                        "configMapKeyRef": {"name": "orders-settings", "key": "region"},
                    },
                }
            ]
        ),
        "spec.env[].valueFrom must set exactly one of secretKeyRef or configMapKeyRef",
    ),
    rejection(
        "env-name-starts-with-digit",
        with_image(env=[{"name": "1FLAG", "value": "on"}]),
        "spec.env[0].name in body should match",
    ),
    rejection(
        "env-name-repeated",
        with_image(env=[{"name": "FLAG", "value": "a"}, {"name": "FLAG", "value": "b"}]),
        "spec.env[1]: Duplicate value",
    ),
    rejection(
        "env-from-both-refs",
        with_image(envFrom=[{"configMapRef": {"name": "orders"}, "secretRef": {"name": "orders"}}]),
        "spec.envFrom[] entries must set exactly one of configMapRef or secretRef",
    ),
    rejection(
        "env-from-no-ref",
        with_image(envFrom=[{"prefix": "APP_"}]),
        "spec.envFrom[] entries must set exactly one of configMapRef or secretRef",
    ),
    rejection(
        "cpu-unit-invalid",
        with_image(api={"resources": {"requests": {"cpu": "1Gb"}}}),
        "spec.api.resources.requests.cpu in body should match",
    ),
    rejection(
        "memory-negative",
        with_image(worker={"resources": {"limits": {"memory": -1}}}),
        "spec.worker.resources.limits.memory in body should be greater than or equal to 0",
    ),
    rejection(
        "cpu-fraction-number",
        with_image(api={"resources": {"limits": {"cpu": 0.5}}}),
        "spec.api.resources.limits.cpu in body must be of type integer",
    ),
    rejection(
        "storage-size-words",
        with_image(postgres={"managed": {"storage": {"size": "ten gigs"}}}),
        "spec.postgres.managed.storage.size in body should match",
    ),
    rejection(
        "health-path-relative",
        with_image(api={"healthPath": "health"}),
        "spec.api.healthPath in body should match",
    ),
    rejection(
        "metrics-path-with-space",
        with_image(api={"metricsPath": "/internal metrics"}),
        "spec.api.metricsPath in body should match",
    ),
    rejection(
        "pull-secret-name-invalid",
        with_image(imagePullSecrets=[{"name": "GHCR_Pull"}]),
        "spec.imagePullSecrets[0].name in body should match",
    ),
    rejection(
        "database-name-invalid",
        with_image(postgres={"managed": {"database": "Orders-DB"}}),
        "spec.postgres.managed.database in body should match",
    ),
    rejection(
        "retention-policy-unknown",
        with_image(redis={"managed": {"retentionPolicy": "Keep"}}),
        'spec.redis.managed.retentionPolicy: Unsupported value: "Keep"',
    ),
    rejection(
        "supabase-url-without-scheme",
        with_image(supabase={"url": "orders-project.supabase.co"}),
        "spec.supabase.url in body should match",
    ),
    rejection(
        "hatchet-url-missing",
        with_image(hatchet={"tokenSecretRef": {"name": "orders-hatchet", "key": "token"}}),
        "spec.hatchet.serverUrl: Required value",
    ),
    rejection(
        "cors-origins-too-many",
        with_image(corsOrigins=[f"https://{index}.acme.example" for index in range(65)]),
        "spec.corsOrigins: Too many: 65: must have at most 64 items",
    ),
    rejection(
        "worker-command-empty",
        with_image(worker={"command": []}),
        "spec.worker.command in body should have at least 1 items",
    ),
    rejection("unknown-spec-field", with_image(replicas=3), 'unknown field "spec.replicas"'),
    rejection(
        "unknown-nested-field",
        with_image(api={"replica": 3}),
        'unknown field "spec.api.replica"',
    ),
    Rejection("spec-missing", manifest(None, name="spec-missing"), "spec: Required value"),
    Rejection(
        "name-upper-case",
        manifest(with_image(), name="Orders"),
        'metadata.name: Invalid value: "Orders"',
    ),
]


def test_base_manifest_accepted(cluster: Cluster, rejection_namespace: str) -> None:
    # Every rejection case changes this valid manifest, so the rejection comes from the change.
    document = manifest(with_image(), name="base")
    result = cluster.kubectl(
        "create", "-n", rejection_namespace, "-f", "-", input=yaml.safe_dump(document)
    )
    assert result.returncode == 0


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda case: case.case)
def test_invalid_api_service_rejected(
    cluster: Cluster, rejection_namespace: str, rejection: Rejection
) -> None:
    result = cluster.kubectl(
        "create",
        "-n",
        rejection_namespace,
        "-f",
        "-",
        input=yaml.safe_dump(copy.deepcopy(rejection.document)),
        check=False,
    )
    assert result.returncode != 0, f"created: {result.stdout}"
    assert rejection.expected in result.stderr


def test_rejection_cases_are_many_and_distinct() -> None:
    assert len(REJECTIONS) >= 25
    assert len({case.case for case in REJECTIONS}) == len(REJECTIONS)


def test_unknown_field_pruned_without_validation(
    cluster: Cluster, crd_installed: Path, namespace: str
) -> None:
    # Without strict field validation the structural schema prunes the field instead.
    document = manifest(with_image(replicas=3))
    result = cluster.kubectl(
        "create", "--validate=false", "-n", namespace, "-f", "-", input=yaml.safe_dump(document)
    )
    assert result.returncode == 0
    spec = get_api_service(cluster, namespace, "orders")["spec"]
    assert "replicas" not in spec


# Printer columns, names and categories.


def test_get_prints_columns(cluster: Cluster, crd_installed: Path, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", str(ROOT / "examples" / "minimal.yaml"))
    lines = cluster.kubectl("get", "apisvc", "-n", namespace).stdout.splitlines()

    assert lines[0].split() == ["NAME", "READY", "REASON", "URL", "AGE"]
    assert len(lines) == 2
    assert lines[1].split()[0] == "orders"


@pytest.mark.parametrize(
    "resource", ["apisvc", "apisvcs", "apiservices.apiservice.dev", "apiservice-dev", "all"]
)
def test_names_and_categories_list_object(
    cluster: Cluster, crd_installed: Path, namespace: str, resource: str
) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", str(ROOT / "examples" / "minimal.yaml"))
    names = cluster.kubectl("get", resource, "-n", namespace, "-o", "name").stdout.split()
    assert "apiservice.apiservice.dev/orders" in names


def test_crd_apply_prints_no_warning(cluster: Cluster, crd_installed: Path) -> None:
    result = cluster.kubectl(
        "apply", "--server-side", "--field-manager", "tests", "-f", str(CRD_PATH)
    )
    assert result.returncode == 0
    assert "Warning:" not in result.stderr
