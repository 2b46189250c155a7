"""The Helm chart lints, renders in its main configurations, and agrees with manifests/.

These tests run the helm binary from the binary cache (`hack/build-binaries.sh helm`) and are
skipped when it has not been built. `--update-golden` rewrites the golden default rendering.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import ROOT
from tests.support.helm import (
    CHART_DIR,
    find,
    render_chart,
    render_chart_text,
    run_helm,
    template_args,
)

GOLDEN_DEFAULT = ROOT / "tests" / "unit" / "golden" / "chart-default.yaml"
CRD_PATH = ROOT / "crds" / "apiservice.dev_apiservices.yaml"
MANIFESTS_DEPLOYMENT = ROOT / "manifests" / "deployment.yaml"
KEEP = "helm.sh/resource-policy"
FULL_VALUES: dict[str, Any] = {
    "watchNamespaces": ["team-a", "team-b"],
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "crds": {"keep": True},
}


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = find(objects, kind)
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_chart_lints() -> None:
    result = run_helm("lint", "--strict", str(CHART_DIR))
    assert "0 chart(s) failed" in result.stdout


def test_default_rendering_matches_golden(tmp_path: Path, update_golden: bool) -> None:
    rendered = render_chart_text(None, tmp_path)
    if update_golden:
        GOLDEN_DEFAULT.write_text(rendered)
    assert GOLDEN_DEFAULT.exists(), "golden file missing: run pytest with --update-golden"
    assert rendered == GOLDEN_DEFAULT.read_text(), "run pytest with --update-golden to refresh"


def test_default_rendering_kinds(tmp_path: Path) -> None:
    objects = render_chart(None, tmp_path)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]


def test_default_deployment_runs_cluster_wide(tmp_path: Path) -> None:
    objects = render_chart(None, tmp_path)
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = container(objects)["args"]
    assert "--log-format=json" in args
    assert "--bind-address=0.0.0.0" in args
    assert not any(arg.startswith("--namespace") for arg in args)


def test_deployment_matches_manifests(tmp_path: Path) -> None:
    chart_pod = only(render_chart(None, tmp_path), "Deployment")["spec"]["template"]["spec"]
    manifests_pod = yaml.safe_load(MANIFESTS_DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    assert chart_pod["securityContext"] == manifests_pod["securityContext"]
    assert chart_pod["volumes"] == manifests_pod["volumes"]
    chart_container = chart_pod["containers"][0]
    manifests_container = manifests_pod["containers"][0]
    for field in (
        "args",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    ):
        assert chart_container[field] == manifests_container[field], field


def test_long_release_name_fits_labels(tmp_path: Path) -> None:
    # Helm accepts release names of up to 53 characters; a Service name is a 63-character label.
    objects = render_chart(FULL_VALUES, tmp_path, release="r" * 53)
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            name = obj["metadata"]["name"]
            assert len(name) <= 63, f"{obj['kind']} name {name} is longer than 63 characters"
            assert not name.endswith("-"), f"{obj['kind']} name {name} ends with a dash"


def test_probes_use_health_port(tmp_path: Path) -> None:
    objects = render_chart({"health": {"port": 9091}}, tmp_path)
    operator = container(objects)
    assert "--health-port=9091" in operator["args"]
    health = [port for port in operator["ports"] if port["name"] == "health"]
    assert health == [{"name": "health", "containerPort": 9091, "protocol": "TCP"}]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_watch_namespaces_render(tmp_path: Path) -> None:
    objects = render_chart(FULL_VALUES, tmp_path)
    args = container(objects)["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    roles = find(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    bindings = find(objects, "RoleBinding")
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == [
        "team-a",
        "team-b",
    ]


def test_service_monitor_selects_metrics_service(tmp_path: Path) -> None:
    objects = render_chart(FULL_VALUES, tmp_path)
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["apiservice-operator-system"]}


def test_metrics_service_selects_operator_pod(tmp_path: Path) -> None:
    objects = render_chart(None, tmp_path)
    service = only(objects, "Service")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_service_monitor_needs_metrics_service(tmp_path: Path) -> None:
    values = {"serviceMonitor": {"enabled": True}, "metrics": {"service": {"enabled": False}}}
    result = run_helm(*template_args(values, tmp_path), check=False)
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs metrics.service.enabled" in result.stderr


def test_crd_matches_generated_crd(tmp_path: Path) -> None:
    rendered = only(render_chart(None, tmp_path), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_PATH.read_text())
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["name"] == source["metadata"]["name"]
    assert rendered["metadata"]["labels"]["app.kubernetes.io/name"] == "apiservice-operator"


@pytest.mark.parametrize(("keep", "expected"), [(True, "keep"), (False, None)])
def test_crd_keep_annotation(tmp_path: Path, keep: bool, expected: str | None) -> None:
    objects = render_chart({"crds": {"keep": keep}}, tmp_path)
    annotations = only(objects, "CustomResourceDefinition")["metadata"].get("annotations") or {}
    assert annotations.get(KEEP) == expected


def test_crds_disabled_renders_no_crd(tmp_path: Path) -> None:
    objects = render_chart({"crds": {"enabled": False}}, tmp_path)
    assert find(objects, "CustomResourceDefinition") == []


def test_image_tag_defaults_to_app_version(tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert container(render_chart(None, tmp_path))["image"] == (
        f"apiservice-operator:{chart['appVersion']}"
    )
    values = {"image": {"repository": "registry.example/ops/apiservice-operator", "tag": "1.2.3"}}
    assert container(render_chart(values, tmp_path))["image"] == (
        "registry.example/ops/apiservice-operator:1.2.3"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "/replicaCount"),
        ({"logLevel": "TRACE"}, "/logLevel"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"metrics": {"port": 0}}, "/metrics/port"),
        ({"serviceMonitor": {"enabled": "yes"}}, "/serviceMonitor/enabled"),
        ({"crds": {"keep": "no"}}, "/crds/keep"),
        ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
    ],
    ids=[
        "two-replicas",
        "log-level",
        "log-format",
        "namespace-name",
        "port-zero",
        "monitor-flag-type",
        "keep-type",
        "misspelt-key",
    ],
)
def test_schema_rejects_invalid_values(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    result = run_helm(*template_args(values, tmp_path), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def schema_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Return the dotted paths of a schema's properties, down to free-form objects."""
    keys = set()
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        keys.add(path)
        keys |= schema_keys(child, f"{path}.")
    return keys


def value_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Return the dotted paths of values.yaml, descending only where the schema has properties."""
    keys = set()
    for name, value in values.items():
        path = f"{prefix}{name}"
        keys.add(path)
        child = schema.get("properties", {}).get(name, {})
        if isinstance(value, dict) and "properties" in child:
            keys |= value_keys(value, child, f"{path}.")
    return keys


def test_schema_and_values_have_same_keys() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert value_keys(values, schema) == schema_keys(schema)


def undocumented_values(text: str) -> list[str]:
    """Return the dotted paths of values.yaml leaves that no `# --` comment describes.

    A `# --` comment documents the key right below it and everything nested under that key,
    which is how helm-docs reads the file.
    """
    documented_paths: list[tuple[int, str]] = []  # (indent, path) of documented ancestors
    stack: list[tuple[int, str]] = []
    missing = []
    lines = text.splitlines()
    key_pattern = re.compile(r"^( *)([A-Za-z][A-Za-z0-9_]*):(.*)$")
    for number, line in enumerate(lines):
        match = key_pattern.match(line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        while documented_paths and documented_paths[-1][0] >= indent:
            documented_paths.pop()
        path = ".".join([*(name for _, name in stack), key])
        comment_above = []
        previous = number - 1
        while previous >= 0 and lines[previous].strip().startswith("#"):
            comment_above.insert(0, lines[previous].strip())
            previous -= 1
        if comment_above and comment_above[0].startswith("# --"):
            documented_paths.append((indent, path))
        stack.append((indent, key))
        is_leaf = rest != ""
        if not is_leaf:
            following = next((line for line in lines[number + 1 :] if line.strip()), "")
            is_leaf = len(following) - len(following.lstrip()) <= indent
        if is_leaf and not documented_paths:
            missing.append(path)
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART_DIR / "values.yaml").read_text()) == []


def test_undocumented_value_is_found() -> None:
    text = "# -- Documented.\na: 1\nparent:\n  # -- Documented child.\n  b: 2\n  c: 3\nd: {}\n"
    assert undocumented_values(text) == ["parent.c", "d"]
