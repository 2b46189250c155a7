"""Tests of the edge proxy's nginx.conf, its ConfigMap, Deployment and Service, and the Ingress."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    CONFIG_CHECKSUM_ANNOTATION,
    Credentials,
    Owner,
    checksum,
    render_children,
    render_nginx_conf,
)

OWNER = Owner(name="shop", namespace="team-a", uid="uid-1")
CREDENTIALS = Credentials(postgres_password="pg", redis_password="rd", jwt_secret="jwt")
PROXY_HEADERS = (
    "proxy_set_header Host $host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $forwarded_proto;",
    "proxy_set_header X-Request-ID $request_id;",
    "add_header X-Request-ID $request_id always;",
)


def spec_of(**fields: Any) -> ApiServiceSpec:
    return ApiServiceSpec.model_validate({"image": "ghcr.io/acme/api:1.0.0", **fields})


def conf_of(**fields: Any) -> str:
    return render_nginx_conf(OWNER, spec_of(**fields))


def render(**fields: Any) -> list[dict[str, Any]]:
    return render_children(OWNER, spec_of(**fields), CREDENTIALS, "sum")


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def locations(conf: str) -> dict[str, list[str]]:
    """Map each `location` argument, such as "= /health", to its directives in order.

    Directives of blocks nested in the location, such as `if`, are included as lines.
    """
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    depth = 0
    for raw in conf.splitlines():
        line = raw.strip()
        if current is None:
            if line.startswith("location ") and line.endswith("{"):
                current = line.removeprefix("location ").removesuffix("{").strip()
                assert current not in blocks, f"duplicate location {current}"
                blocks[current] = []
                depth = 1
            continue
        depth += line.count("{") - line.count("}")
        if depth == 0:
            current = None
        elif line and not line.startswith("#"):
            blocks[current].append(line)
    return blocks


def test_conf_has_no_template_leftovers() -> None:
    conf = conf_of()
    assert "{{" not in conf
    assert "{%" not in conf
    assert "{#" not in conf


def test_conf_upstream_is_api_service() -> None:
    assert "server shop-api.team-a.svc.cluster.local:8000;" in conf_of()


def test_conf_upstream_and_listen_overrides() -> None:
    conf = render_nginx_conf(
        OWNER, spec_of(), api_upstream="127.0.0.1:18000", listen="127.0.0.1:18080"
    )
    assert "server 127.0.0.1:18000;" in conf
    assert "listen 127.0.0.1:18080;" in conf
    assert "svc.cluster.local" not in conf


def test_conf_listens_unprivileged_port() -> None:
    assert "listen 8080;" in conf_of()


def test_conf_runtime_files_under_tmp() -> None:
    conf = conf_of()
    for directive in (
        "pid",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
    ):
        lines = [line.strip() for line in conf.splitlines() if line.strip().startswith(directive)]
        assert len(lines) == 1, directive
        assert lines[0].startswith(f"{directive} /tmp/"), lines[0]


def test_conf_temp_dir_override() -> None:
    conf = render_nginx_conf(OWNER, spec_of(), temp_dir="/run/edge")
    assert "pid /run/edge/nginx.pid;" in conf
    assert "proxy_temp_path /run/edge/proxy;" in conf
    assert "/tmp/" not in conf


def test_conf_log_format_has_request_id() -> None:
    conf = conf_of()
    log_format = conf[conf.index("log_format") : conf.index("access_log")]
    assert "$request_id" in log_format
    assert "access_log /dev/stdout edge;" in conf


def test_conf_worker_processes_and_events() -> None:
    conf = conf_of()
    assert "worker_processes 2;" in conf
    assert "events {" in conf


def test_api_location_strips_prefix() -> None:
    assert locations(conf_of())["/api/"][0] == "proxy_pass http://api/;"


def test_root_location_passes_uri_unchanged() -> None:
    assert locations(conf_of())["/"][0] == "proxy_pass http://api;"


def test_health_location_maps_to_health_path() -> None:
    blocks = locations(conf_of(api={"healthPath": "/healthz"}))
    assert blocks["= /health"][0] == "proxy_pass http://api/healthz;"


def test_edge_health_answered_by_nginx() -> None:
    block = locations(conf_of())["= /nginx-health"]
    assert 'return 200 "ok\\n";' in block
    assert not any(line.startswith("proxy_pass") for line in block)


def test_every_proxied_location_sets_headers() -> None:
    blocks = locations(conf_of())
    proxied = {
        name: lines for name, lines in blocks.items() if any("proxy_pass" in x for x in lines)
    }
    assert set(proxied) == {"= /health", "^~ /metrics", "^~ /api/metrics", "/api/", "/"}
    for name, lines in proxied.items():
        for header in PROXY_HEADERS:
            assert header in lines, f"{name} lacks {header}"


@pytest.mark.parametrize("location", ["^~ /metrics", "^~ /api/metrics"])
def test_metrics_allow_each_cidr_then_deny(location: str) -> None:
    allow_list = ["10.0.0.0/8", "192.168.1.0/24", "fd00::/8"]
    lines = locations(conf_of(ingress={"edge": {"metricsAllowList": allow_list}}))[location]
    access = [line for line in lines if line.startswith(("allow ", "deny "))]
    assert access == [
        "allow 10.0.0.0/8;",
        "allow 192.168.1.0/24;",
        "allow fd00::/8;",
        "deny all;",
    ]
    assert lines.index("deny all;") < lines.index(next(x for x in lines if "proxy_pass" in x))


def test_metrics_default_allow_list() -> None:
    lines = locations(conf_of())["^~ /metrics"]
    assert [line for line in lines if line.startswith(("allow ", "deny "))] == [
        "allow 127.0.0.1/32;",
        "allow 10.0.0.0/8;",
        "allow 172.16.0.0/12;",
        "allow 192.168.0.0/16;",
        "deny all;",
    ]


def test_metrics_empty_allow_list_denies_all() -> None:
    lines = locations(conf_of(ingress={"edge": {"metricsAllowList": []}}))["^~ /metrics"]
    assert [line for line in lines if line.startswith(("allow ", "deny "))] == ["deny all;"]


def test_metrics_rejects_forwarded_requests() -> None:
    lines = locations(conf_of())["^~ /metrics"]
    assert lines[:3] == ["if ($http_x_forwarded_for) {", "return 403;", "}"]


def test_metrics_custom_path() -> None:
    blocks = locations(conf_of(api={"metricsPath": "/internal/metrics"}))
    assert "proxy_pass http://api;" in blocks["^~ /internal/metrics"]
    assert "proxy_pass http://api/internal/metrics;" in blocks["^~ /api/internal/metrics"]
    assert "^~ /metrics" not in blocks


def test_metrics_cidr_host_bits_cleared() -> None:
    lines = locations(conf_of(ingress={"edge": {"metricsAllowList": ["10.1.2.3/8", "10.9.9.9"]}}))
    assert "allow 10.0.0.0/8;" in lines["^~ /metrics"]
    assert "allow 10.9.9.9/32;" in lines["^~ /metrics"]


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not-a-cidr", "10.0.0.0/8; allow all"])
def test_metrics_invalid_cidr_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="metricsAllowList entry"):
        conf_of(ingress={"edge": {"metricsAllowList": [entry]}})


@pytest.mark.parametrize(
    ("field", "path"),
    [("healthPath", "/health;return"), ("healthPath", "/$host"), ("metricsPath", "/it's")],
)
def test_nginx_syntax_in_path_rejected(field: str, path: str) -> None:
    spec = spec_of(api={field: path})  # The model's own pattern accepts these paths.
    with pytest.raises(ValueError, match=re.escape(f"invalid spec.api.{field}")):
        render_nginx_conf(OWNER, spec)


@pytest.mark.parametrize("path", ["/", "/api/"])
def test_metrics_path_conflicting_location_rejected(path: str) -> None:
    with pytest.raises(ValueError, match=r"invalid spec\.api\.metricsPath"):
        conf_of(api={"metricsPath": path})


def test_edge_configmap_holds_conf() -> None:
    configmap = find(render(), "ConfigMap", "shop-edge")
    assert configmap["data"] == {"nginx.conf": conf_of()}
    assert configmap["metadata"]["labels"]["app.kubernetes.io/component"] == "edge"


def edge_checksum(**fields: Any) -> str:
    edge = find(render(**fields), "Deployment", "shop-edge")
    return str(edge["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM_ANNOTATION])


def test_edge_checksum_of_conf() -> None:
    assert edge_checksum() == checksum({"nginx.conf": conf_of()})


def test_edge_checksum_changes_with_conf() -> None:
    changed = edge_checksum(ingress={"edge": {"metricsAllowList": ["10.0.0.0/8"]}})
    assert changed != edge_checksum()


def test_edge_checksum_ignores_unrelated_fields() -> None:
    assert edge_checksum(api={"replicas": 5}, logLevel="DEBUG") == edge_checksum()


def test_edge_deployment() -> None:
    edge = find(
        render(ingress={"edge": {"replicas": 3, "image": "nginx:1.27.2"}}),
        "Deployment",
        "shop-edge",
    )
    assert edge["spec"]["replicas"] == 3
    pod = edge["spec"]["template"]["spec"]
    (nginx,) = pod["containers"]
    assert nginx["image"] == "nginx:1.27.2"
    assert nginx["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert nginx["readinessProbe"]["httpGet"] == {"path": "/nginx-health", "port": "http"}
    assert nginx["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 101
    assert nginx["volumeMounts"] == [
        {
            "name": "config",
            "mountPath": "/etc/nginx/nginx.conf",
            "subPath": "nginx.conf",
            "readOnly": True,
        },
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    assert pod["volumes"] == [
        {"name": "config", "configMap": {"name": "shop-edge"}},
        {"name": "tmp", "emptyDir": {}},
    ]


def test_edge_service() -> None:
    service = find(render(), "Service", "shop-edge")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


def test_edge_disabled_renders_no_edge() -> None:
    children = render(ingress={"edge": {"enabled": False}})
    assert not [c for c in children if c["metadata"]["name"] == "shop-edge"]


def test_edge_disabled_skips_nginx_validation() -> None:
    # The nginx-only checks do not apply when no nginx.conf is rendered.
    children = render(api={"metricsPath": "/"}, ingress={"edge": {"enabled": False}})
    assert find(children, "Deployment", "shop-api")


def test_no_ingress_without_host() -> None:
    assert not [child for child in render() if child["kind"] == "Ingress"]


def test_ingress_routes_to_edge() -> None:
    ingress = find(render(ingress={"host": "api.example.com"}), "Ingress", "shop")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"] == {
        "rules": [
            {
                "host": "api.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "shop-edge", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    }
    assert "annotations" not in ingress["metadata"]


def test_ingress_routes_to_api_without_edge() -> None:
    fields = {"host": "api.example.com", "edge": {"enabled": False}}
    ingress = find(render(ingress=fields), "Ingress", "shop")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "shop-api", "port": {"number": 8000}}}


def test_ingress_class_tls_and_annotations() -> None:
    fields = {
        "host": "api.example.com",
        "className": "nginx",
        "tlsSecretName": "api-tls",
        "annotations": {"z.example.com/b": "2", "a.example.com/a": "1"},
    }
    ingress = find(render(ingress=fields), "Ingress", "shop")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["api.example.com"], "secretName": "api-tls"}]
    assert list(ingress["metadata"]["annotations"].items()) == [
        ("a.example.com/a", "1"),
        ("z.example.com/b", "2"),
    ]
    assert ingress["metadata"]["labels"]["app.kubernetes.io/component"] == "ingress"


@pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not installed; the nginx contract tests install it and run the config",
)
def test_conf_passes_nginx_syntax_check(tmp_path: Path) -> None:
    conf = render_nginx_conf(
        OWNER,
        spec_of(api={"metricsPath": "/internal/metrics"}),
        api_upstream="127.0.0.1:18000",
        listen="127.0.0.1:18080",
        temp_dir=str(tmp_path),
    )
    path = tmp_path / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
