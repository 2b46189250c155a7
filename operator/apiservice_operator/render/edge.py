"""The nginx edge proxy and the Ingress: how requests from outside the pod network reach the api.

The edge proxy strips the /api prefix, serves its own health check, limits the metrics path to
an allow list of client networks and gives every request an X-Request-ID. The Ingress routes
the public host to the edge proxy, or straight to the api when the edge proxy is off.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

import jinja2

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render.meta import (
    API_SERVICE_PORT,
    CONFIG_CHECKSUM_ANNOTATION,
    EDGE_CONTAINER_PORT,
    EDGE_SERVICE_PORT,
    Manifest,
    Owner,
    checksum,
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
    service,
)

NGINX_CONF_KEY = "nginx.conf"
EDGE_HEALTH_PATH = "/nginx-health"
# The nginx user of the official nginx images, both Alpine- and Debian-based.
NGINX_USER_ID = 101
DEFAULT_TEMP_DIR = "/tmp"
WORKER_PROCESSES = 2
# NOTE: on a cluster configured with another DNS domain, nginx fails at start because it cannot
# resolve the upstream. The name "<service>.<namespace>.svc" would resolve on any cluster through
# the pod's DNS search path.
CLUSTER_DOMAIN = "cluster.local"

# PATH_PATTERN of the model without ";", "$" and "'", which nginx would read as the end of a
# directive, a variable or a quote.
_NGINX_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._~%!&()*+,=:@-]*$")
# Metrics paths whose prefix location would repeat one that the template always defines.
_CONFLICTING_METRICS_PATHS = ("/", "/api/")


def render_nginx_conf(
    owner: Owner,
    spec: ApiServiceSpec,
    *,
    api_upstream: str | None = None,
    listen: str | None = None,
    temp_dir: str = DEFAULT_TEMP_DIR,
) -> str:
    """Render the edge proxy's nginx.conf from the packaged Jinja2 template.

    `api_upstream` (host:port) and `listen` replace the api Service address and port 8080, and
    `temp_dir` replaces /tmp, so that tests can run the file against local servers.
    Raises ValueError when the health path, metrics path or a metrics allow list entry cannot
    be placed in nginx.conf safely.
    """
    context = {
        "name": owner.name,
        "namespace": owner.namespace,
        "api_upstream": api_upstream if api_upstream is not None else api_address(owner),
        "listen": listen if listen is not None else str(EDGE_CONTAINER_PORT),
        "temp_dir": temp_dir,
        "worker_processes": WORKER_PROCESSES,
        "health_path": nginx_path(spec.api.health_path, field="spec.api.healthPath"),
        "metrics_path": metrics_path(spec),
        "metrics_allow_list": [
            normalize_cidr(entry) for entry in spec.ingress.edge.metrics_allow_list
        ],
    }
    return _nginx_template().render(context)


def api_address(owner: Owner) -> str:
    """Return the host:port of the api Service, as the edge proxy's upstream."""
    host = f"{child_names(owner.name).api}.{owner.namespace}.svc.{CLUSTER_DOMAIN}"
    return f"{host}:{API_SERVICE_PORT}"


def nginx_path(path: str, *, field: str) -> str:
    """Return `path` unchanged, or raise ValueError when nginx would read part of it as syntax."""
    if _NGINX_SAFE_PATH.match(path):
        return path
    raise ValueError(
        f"invalid {field} {path!r} for the nginx edge proxy: use only letters, digits and "
        "/ . _ ~ % ! & ( ) * + , = : @ -, because nginx reads ; $ and ' as syntax"
    )


def metrics_path(spec: ApiServiceSpec) -> str:
    """Return the api's metrics path, or raise ValueError when the edge proxy cannot guard it."""
    path = nginx_path(spec.api.metrics_path, field="spec.api.metricsPath")
    if path in _CONFLICTING_METRICS_PATHS:
        raise ValueError(
            f"invalid spec.api.metricsPath {path!r} for the nginx edge proxy: serve metrics on "
            "a path of their own such as /metrics, because the proxy limits the whole path "
            "prefix to the metrics allow list"
        )
    return path


def normalize_cidr(entry: str) -> str:
    """Return `entry` as a canonical CIDR, or raise ValueError when it is not one.

    Host bits are cleared, so 10.1.2.3/8 becomes 10.0.0.0/8, which nginx accepts without a
    warning.
    """
    try:
        return str(ipaddress.ip_network(entry, strict=False))
    except ValueError as error:
        raise ValueError(
            f"invalid spec.ingress.edge.metricsAllowList entry {entry!r}: use a CIDR such as "
            "10.0.0.0/8"
        ) from error


def render_edge_configmap(owner: Owner, nginx_conf: str) -> Manifest:
    """Build the ConfigMap that contains the edge proxy's nginx.conf."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(owner, name=child_names(owner.name).edge_config, component="edge"),
        "data": {NGINX_CONF_KEY: nginx_conf},
    }


def render_edge_deployment(owner: Owner, spec: ApiServiceSpec, nginx_conf: str) -> Manifest:
    """Build the edge proxy Deployment.

    Its pods carry a checksum of nginx.conf, so a changed configuration rolls them. They would
    not see the change otherwise, because a file mounted with subPath is never updated.
    """
    names = child_names(owner.name)
    edge = spec.ingress.edge
    pod = pod_spec(
        containers=[_nginx_container(spec)],
        security_context=pod_security_context(user_id=NGINX_USER_ID),
        volumes=[
            {"name": "config", "configMap": {"name": names.edge_config}},
            {"name": "tmp", "emptyDir": {}},
        ],
    )
    return deployment(
        owner,
        name=names.edge,
        component="edge",
        replicas=edge.replicas,
        strategy=ROLLING_UPDATE,
        pod=pod,
        pod_annotations={CONFIG_CHECKSUM_ANNOTATION: checksum({NGINX_CONF_KEY: nginx_conf})},
    )


def render_edge_service(owner: Owner) -> Manifest:
    """Build the edge proxy Service, which the Ingress routes to."""
    return service(
        owner,
        name=child_names(owner.name).edge,
        component="edge",
        port=EDGE_SERVICE_PORT,
        port_name="http",
    )


def render_ingress(owner: Owner, spec: ApiServiceSpec) -> Manifest | None:
    """Build the networking.k8s.io/v1 Ingress of spec.ingress.host, or None without a host."""
    ingress = spec.ingress
    if ingress.host is None:
        return None
    names = child_names(owner.name)
    if ingress.edge.enabled:
        backend_service = {"name": names.edge, "port": {"number": EDGE_SERVICE_PORT}}
    else:
        backend_service = {"name": names.api, "port": {"number": API_SERVICE_PORT}}
    path = {"path": "/", "pathType": "Prefix", "backend": {"service": backend_service}}
    ingress_spec: dict[str, Any] = {}
    if ingress.class_name is not None:
        ingress_spec["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name is not None:
        ingress_spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls_secret_name}]
    ingress_spec["rules"] = [{"host": ingress.host, "http": {"paths": [path]}}]
    meta = object_meta(
        owner, name=names.ingress, component="ingress", annotations=ingress.annotations
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": ingress_spec,
    }


def _nginx_container(spec: ApiServiceSpec) -> dict[str, Any]:
    edge = spec.ingress.edge
    container: dict[str, Any] = {
        "name": "nginx",
        "image": edge.image,
        "imagePullPolicy": "IfNotPresent",
        # Starting nginx directly skips the image's entrypoint scripts, which try to edit files
        # under /etc/nginx, and those are read-only in this container.
        "command": ["nginx", "-g", "daemon off;"],
        "ports": [container_port(name="http", port=EDGE_CONTAINER_PORT)],
        "readinessProbe": http_probe(
            path=EDGE_HEALTH_PATH, period_seconds=5, timeout_seconds=2, failure_threshold=3
        ),
        "livenessProbe": http_probe(
            path=EDGE_HEALTH_PATH, period_seconds=20, timeout_seconds=5, failure_threshold=3
        ),
    }
    resources = resources_field(edge.resources)
    if resources is not None:
        container["resources"] = resources
    container["securityContext"] = container_security_context(read_only_root_filesystem=True)
    container["volumeMounts"] = [
        {
            "name": "config",
            "mountPath": f"/etc/nginx/{NGINX_CONF_KEY}",
            "subPath": NGINX_CONF_KEY,
            "readOnly": True,
        },
        {"name": "tmp", "mountPath": DEFAULT_TEMP_DIR},
    ]
    return container


@functools.cache
def _nginx_template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("apiservice_operator.render", "templates"),
        # nginx syntax, not HTML: escaping would corrupt quotes and ampersands.
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template("nginx.conf.j2")
