"""Pydantic models of the ApiService resource: the spec users write and the status we report.

These models are the single source of the API. `python hack/gen_crd.py` generates the CRD in
`crds/` from them, so every field's type, default, bound and description lives here, and the
cross-field rules that the API server enforces are attached as CEL `x-kubernetes-validations`.
Field names are snake_case in Python and camelCase on the wire, as Kubernetes expects.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "apiservice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ApiService"
PLURAL = "apiservices"
SINGULAR = "apiservice"
SHORT_NAMES = ("apisvc", "apisvcs")
CATEGORIES = ("apiservice-dev", "all")

# A DNS-1123 subdomain, optionally with a leading wildcard label, as Ingress hosts accept.
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A DNS-1123 subdomain: the form of Secret, ConfigMap and StorageClass names we refer to.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# A non-negative Kubernetes quantity such as 500m, 1Gi, 2.5 or 1e3: a decimal number and one
# optional suffix, which is a binary SI suffix, a decimal SI suffix or a decimal exponent. This is
# the grammar of resource.Quantity in k8s.io/apimachinery without the sign, because negative CPU
# and memory amounts are invalid.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
# An environment variable name as the API server accepts it for containers.
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# An absolute URL path such as /health.
PATH_PATTERN = r"^/[A-Za-z0-9/._~%!$&'()*+,;=:@-]*$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """Build one `x-kubernetes-validations` entry; `field_path` points the error at a field."""
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """Build the `json_schema_extra` that attaches CEL rules to a model's schema."""
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, and unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        # Validate defaults too, so that enum defaults become plain values like parsed input
        # does: without it a default field holds Environment.DEV while a parsed one holds "dev".
        validate_default=True,
    )

    def to_api(self) -> dict[str, Any]:
        """Dump as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Environment(enum.StrEnum):
    """Deployment environment, passed to the app as ENVIRONMENT."""

    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class LogLevel(enum.StrEnum):
    """Log level of the app, passed as LOG_LEVEL in the upper case that Python logging uses."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class PullPolicy(enum.StrEnum):
    """Image pull policy, as on a Kubernetes container."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class RetentionPolicy(enum.StrEnum):
    """What happens to stored data when the ApiService is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


Name = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]


def _quantity_from_int(value: Any) -> Any:
    """Convert a whole number to the string form of a quantity, and return other values as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# Kubernetes quantities are int-or-string, so `cpu: 1` is as valid as `cpu: "1"`. The CRD accepts
# both, and the model always stores the string. The API server checks the pattern only on strings,
# so `minimum` rejects a negative integer there. The validator comes after Field because pydantic
# 2.14 leaves the pattern out of the JSON schema when a before-validator precedes it; it still
# runs first, because pydantic applies the last annotation outermost.
Quantity = Annotated[
    str,
    Field(
        max_length=64,
        pattern=QUANTITY_PATTERN,
        json_schema_extra={"x-kubernetes-int-or-string": True, "minimum": 0},
    ),
    BeforeValidator(_quantity_from_int),
]
Command = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(max_length=64)
]


class LocalObjectReference(ApiModel):
    """Reference to an object by name in the ApiService's namespace."""

    name: Name = Field(description="Name of the object in the ApiService's namespace.")


class SecretKeyReference(ApiModel):
    """Reference to one key of a Secret in the ApiService's namespace."""

    name: Name = Field(description="Name of the Secret in the ApiService's namespace.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret's data.",
    )


class KeyReference(ApiModel):
    """Reference to one key of a ConfigMap or Secret, as in a container's `valueFrom`."""

    name: Name = Field(description="Name of the ConfigMap or Secret.")
    key: str = Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key to read."
    )
    optional: bool | None = Field(
        default=None, description="Start the container even when the key is missing."
    )


class EnvVarSource(ApiModel):
    """Source of an environment variable's value: exactly one of the references."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[has(self.secretKeyRef), has(self.configMapKeyRef)].filter(x, x).size() == 1",
                "spec.env[].valueFrom must set exactly one of secretKeyRef or configMapKeyRef: "
                "remove one of them or add one",
            )
        )
    )

    secret_key_ref: KeyReference | None = Field(
        default=None, description="Key of a Secret in the ApiService's namespace."
    )
    config_map_key_ref: KeyReference | None = Field(
        default=None, description="Key of a ConfigMap in the ApiService's namespace."
    )


class EnvVar(ApiModel):
    """An extra environment variable for the api and worker containers."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(has(self.value) && has(self.valueFrom))",
                "spec.env[] entries must not set both value and valueFrom: remove one of them",
            )
        )
    )

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=ENV_NAME_PATTERN,
        description="Variable name, such as FEATURE_FLAGS.",
    )
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Value read from a ConfigMap or Secret key."
    )


class EnvFromSource(ApiModel):
    """A ConfigMap or Secret whose keys all become environment variables."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[has(self.configMapRef), has(self.secretRef)].filter(x, x).size() == 1",
                "spec.envFrom[] entries must set exactly one of configMapRef or secretRef: "
                "remove one of them or add one",
            )
        )
    )

    prefix: str | None = Field(
        default=None,
        max_length=253,
        pattern=ENV_NAME_PATTERN,
        description="Prefix added to every variable name from this source.",
    )
    config_map_ref: LocalObjectReference | None = Field(
        default=None, description="ConfigMap whose keys become variables."
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None, description="Secret whose keys become variables."
    )


class ResourceList(ApiModel):
    """CPU and memory amounts, as Kubernetes quantities."""

    cpu: Quantity | None = Field(
        default=None,
        description='CPU, for example 250m or 1; write a fraction as 500m or as the string "0.5".',
    )
    memory: Quantity | None = Field(default=None, description="Memory, for example 256Mi.")


class Resources(ApiModel):
    """Compute requests and limits of a container."""

    requests: ResourceList | None = Field(default=None, description="Guaranteed resources.")
    limits: ResourceList | None = Field(default=None, description="Maximum resources.")


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the api Deployment, on CPU utilization."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "spec.api.autoscaling.minReplicas must not be greater than maxReplicas: "
                "lower minReplicas or raise maxReplicas",
                field_path=".minReplicas",
            )
        )
    )

    enabled: bool = Field(default=False, description="Create the HorizontalPodAutoscaler.")
    min_replicas: int = Field(default=2, ge=1, le=100, description="Minimum number of api pods.")
    max_replicas: int = Field(default=10, ge=1, le=100, description="Maximum number of api pods.")
    target_cpu_utilization_percentage: int = Field(
        default=80,
        ge=1,
        le=100,
        description="Average CPU utilization, in percent of requests, that the autoscaler targets.",
    )


class ApiComponent(ApiModel):
    """The FastAPI app served by uvicorn."""

    replicas: int = Field(
        default=2, ge=0, le=100, description="Number of api pods when autoscaling is off."
    )
    port: int = Field(default=8000, ge=1024, le=65535, description="Port the app listens on.")
    command: Command = Field(
        default_factory=list,
        description="Container command; empty uses the image's own command.",
    )
    args: Command = Field(default_factory=list, description="Container arguments.")
    health_path: str = Field(
        default="/health",
        max_length=256,
        pattern=PATH_PATTERN,
        description="HTTP path of the readiness and liveness probes.",
    )
    metrics_path: str = Field(
        default="/metrics",
        max_length=256,
        pattern=PATH_PATTERN,
        description="HTTP path that serves Prometheus metrics.",
    )
    resources: Resources | None = Field(default=None, description="Requests and limits.")
    autoscaling: Autoscaling | None = Field(
        default=None, description="CPU-based autoscaling; replaces replicas when enabled."
    )


class WorkerComponent(ApiModel):
    """The background worker: the same image with another command."""

    enabled: bool = Field(default=True, description="Run the worker Deployment.")
    replicas: int = Field(default=1, ge=0, le=100, description="Number of worker pods.")
    command: Command = Field(
        default_factory=lambda: ["python", "-m", "app.worker"],
        min_length=1,
        description="Container command of the worker.",
    )
    resources: Resources | None = Field(default=None, description="Requests and limits.")


class Storage(ApiModel):
    """A PersistentVolumeClaim's size and class."""

    size: Quantity = Field(default="1Gi", description="Requested capacity, for example 10Gi.")
    storage_class_name: Name | None = Field(
        default=None, description="StorageClass; unset uses the cluster's default class."
    )


class ManagedPostgres(ApiModel):
    """A single PostgreSQL instance that the operator runs in the namespace."""

    image: str = Field(
        default="postgres:16-alpine",
        min_length=1,
        max_length=512,
        description="Image of the PostgreSQL container.",
    )
    database: str = Field(
        default="app",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Name of the database to create.",
    )
    user: str = Field(
        default="app",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Name of the database owner role.",
    )
    storage: Storage = Field(default_factory=Storage, description="Data volume.")
    resources: Resources | None = Field(default=None, description="Requests and limits.")
    retention_policy: RetentionPolicy = Field(
        default=RetentionPolicy.RETAIN,
        description="Retain keeps the data volume and the credentials Secret when the "
        "ApiService is deleted; Delete removes them with it.",
    )


class ManagedRedis(ApiModel):
    """A single Redis instance with append-only persistence, run in the namespace."""

    image: str = Field(
        default="redis:7-alpine",
        min_length=1,
        max_length=512,
        description="Image of the Redis container.",
    )
    storage: Storage = Field(default_factory=Storage, description="Data volume.")
    resources: Resources | None = Field(default=None, description="Requests and limits.")
    retention_policy: RetentionPolicy = Field(
        default=RetentionPolicy.RETAIN,
        description="Retain keeps the data volume and the credentials Secret when the "
        "ApiService is deleted; Delete removes them with it.",
    )


class ExternalService(ApiModel):
    """A service run elsewhere, reached through a URL kept in a Secret."""

    url_secret_ref: SecretKeyReference = Field(
        description="Secret key that holds the connection URL, such as "
        "postgresql://user:password@host:5432/db or redis://:password@host:6379/0."
    )


def _managed_or_external(field: str) -> dict[str, Any]:
    return validations(
        cel(
            "has(self.managed) != has(self.external)",
            f"spec.{field} must set exactly one of managed or external: remove one of them, "
            "or set managed: {} to run the server in the namespace",
        )
    )


class Postgres(ApiModel):
    """The PostgreSQL database: managed in the cluster or external."""

    model_config = ConfigDict(json_schema_extra=_managed_or_external("postgres"))

    managed: ManagedPostgres | None = Field(
        default=None, description="Run PostgreSQL in the namespace."
    )
    external: ExternalService | None = Field(
        default=None, description="Use an existing PostgreSQL server."
    )


class Redis(ApiModel):
    """The Redis server: managed in the cluster or external."""

    model_config = ConfigDict(json_schema_extra=_managed_or_external("redis"))

    managed: ManagedRedis | None = Field(default=None, description="Run Redis in the namespace.")
    external: ExternalService | None = Field(
        default=None, description="Use an existing Redis server."
    )


class EdgeProxy(ApiModel):
    """The nginx edge proxy in front of the api."""

    enabled: bool = Field(default=True, description="Run the nginx edge proxy.")
    replicas: int = Field(default=1, ge=0, le=20, description="Number of nginx pods.")
    image: str = Field(
        default="nginx:1.27-alpine",
        min_length=1,
        max_length=512,
        description="Image of the nginx container.",
    )
    metrics_allow_list: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["127.0.0.1/32", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        max_length=64,
        description="Client networks, in CIDR notation, that may read the metrics path.",
        json_schema_extra=validations(
            cel(
                "self.all(c, isCIDR(c))",
                "spec.ingress.edge.metricsAllowList entries must be CIDRs such as 10.0.0.0/8",
            )
        ),
    )
    resources: Resources | None = Field(default=None, description="Requests and limits.")


class Ingress(ApiModel):
    """How traffic reaches the stack: the nginx edge proxy and an optional Ingress."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.tlsSecretName) || has(self.host)",
                "spec.ingress.tlsSecretName needs spec.ingress.host: set the host the "
                "certificate is for",
                field_path=".tlsSecretName",
            ),
            cel(
                "!has(self.className) || has(self.host)",
                "spec.ingress.className needs spec.ingress.host: set the host to route",
                field_path=".className",
            ),
        )
    )

    host: str | None = Field(
        default=None,
        max_length=253,
        pattern=HOST_PATTERN,
        description="Public host name; when set, an Ingress routes it to the stack.",
    )
    class_name: Name | None = Field(
        default=None, description="IngressClass; unset uses the cluster's default class."
    )
    tls_secret_name: Name | None = Field(
        default=None, description="Secret of type kubernetes.io/tls that serves the host."
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None,
        max_length=64,
        description="Annotations added to the Ingress, for the ingress controller.",
    )
    edge: EdgeProxy = Field(default_factory=EdgeProxy, description="The nginx edge proxy.")


class Supabase(ApiModel):
    """Supabase authentication settings."""

    url: str = Field(max_length=2048, pattern=r"^https?://", description="Supabase project URL.")
    service_key_secret_ref: SecretKeyReference | None = Field(
        default=None, description="Secret key that holds SUPABASE_SERVICE_KEY."
    )
    anon_key_secret_ref: SecretKeyReference | None = Field(
        default=None, description="Secret key that holds SUPABASE_ANON_KEY."
    )


class Hatchet(ApiModel):
    """Hatchet workflow engine settings."""

    server_url: str = Field(
        max_length=2048, pattern=r"^https?://", description="Hatchet engine URL."
    )
    token_secret_ref: SecretKeyReference | None = Field(
        default=None, description="Secret key that holds HATCHET_CLIENT_TOKEN."
    )


class ApiServiceSpec(ApiModel):
    """Desired state of an ApiService: one API-only service stack."""

    image: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Image of the FastAPI app and its worker, such as ghcr.io/acme/api:1.2.0.",
    )
    image_pull_policy: PullPolicy = Field(
        default=PullPolicy.IF_NOT_PRESENT, description="Pull policy of the app image."
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=16, description="Secrets for pulling the app image."
    )
    environment: Environment = Field(
        default=Environment.DEV, description="Deployment environment, passed as ENVIRONMENT."
    )
    log_level: LogLevel = Field(default=LogLevel.INFO, description="App log level (LOG_LEVEL).")
    cors_origins: list[Annotated[str, Field(min_length=1, max_length=2048)]] = Field(
        default_factory=lambda: ["*"],
        max_length=64,
        description="Origins allowed by CORS, passed as ALLOWED_ORIGINS.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        description="Extra environment variables for the api and worker; names must be unique.",
        # A list map keyed by name makes the API server reject a repeated name. A Deployment
        # accepts one with only a warning ("hides previous definition"), and server-side apply
        # can then drop it. The list map also lets server-side apply merge entries by name.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        max_length=32,
        description="ConfigMaps and Secrets whose keys become variables for the api and worker.",
    )
    api: ApiComponent = Field(default_factory=ApiComponent, description="The api Deployment.")
    worker: WorkerComponent = Field(
        default_factory=WorkerComponent, description="The worker Deployment."
    )
    postgres: Postgres = Field(
        default_factory=lambda: Postgres(managed=ManagedPostgres()),
        description="The PostgreSQL database.",
    )
    redis: Redis = Field(
        default_factory=lambda: Redis(managed=ManagedRedis()), description="The Redis server."
    )
    ingress: Ingress = Field(default_factory=Ingress, description="Traffic routing.")
    supabase: Supabase | None = Field(default=None, description="Supabase settings.")
    hatchet: Hatchet | None = Field(default=None, description="Hatchet settings.")
    suspend: bool = Field(
        default=False,
        description="Stop all writes to the stack's objects until set back to false.",
    )


class ConditionStatus(enum.StrEnum):
    """Status of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One observation of the ApiService's state, following metav1.Condition."""

    type: str = Field(
        min_length=1, max_length=316, description="Condition type: Ready, Reconciling or Stalled."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int = Field(
        default=0, ge=0, description="Generation of the spec this condition was computed for."
    )
    last_transition_time: str = Field(
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description="When the status last changed, in RFC 3339.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")


class ComponentStatus(ApiModel):
    """Replica counts of one component, rolled up from its Deployment."""

    desired_replicas: int = Field(default=0, ge=0, description="Replicas the spec asks for.")
    ready_replicas: int = Field(default=0, ge=0, description="Replicas that are ready.")


class ComponentsStatus(ApiModel):
    """Replica counts of every component; components that are not deployed are left out."""

    api: ComponentStatus | None = Field(default=None, description="The api Deployment.")
    worker: ComponentStatus | None = Field(default=None, description="The worker Deployment.")
    postgres: ComponentStatus | None = Field(default=None, description="Managed PostgreSQL.")
    redis: ComponentStatus | None = Field(default=None, description="Managed Redis.")
    edge: ComponentStatus | None = Field(default=None, description="The nginx edge proxy.")


class ApiServiceStatus(ApiModel):
    """Observed state of an ApiService, written by the operator."""

    observed_generation: int = Field(
        default=-1,
        ge=-1,
        description="Generation of the spec that the conditions describe; -1 before the first.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Reconciling and Stalled, as kstatus reads them.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    components: ComponentsStatus | None = Field(
        default=None, description="Replica counts per component."
    )
    url: str | None = Field(
        default=None, max_length=2048, description="URL at which the API is served."
    )
    credentials_secret_name: str | None = Field(
        default=None, max_length=253, description="Secret with the generated credentials."
    )


class ApiService(ApiModel):
    """An API-only service stack: app, worker, PostgreSQL, Redis and an edge proxy."""

    # The defaults repeat the literals because mypy types the module constants as plain str.
    api_version: Literal["apiservice.dev/v1alpha1"] = Field(
        default="apiservice.dev/v1alpha1", description="API group and version of the resource."
    )
    kind: Literal["ApiService"] = Field(default="ApiService", description="Kind of the resource.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard metadata.")
    spec: ApiServiceSpec = Field(description="Desired state of the stack.")
    status: ApiServiceStatus | None = Field(default=None, description="Observed state.")
