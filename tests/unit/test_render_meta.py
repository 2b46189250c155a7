"""Tests of names, labels, selectors, ownerReferences and checksums of rendered children."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    MAX_OWNER_NAME_LENGTH,
    Credentials,
    Owner,
    checksum,
    child_names,
    common_labels,
    render_children,
    selector_labels,
    validate_owner_name,
)

OWNER = Owner(name="shop", namespace="team-a", uid="uid-1")
CREDENTIALS = Credentials(postgres_password="pg", redis_password="rd", jwt_secret="jwt")
COMPONENTS = ("api", "worker", "postgres", "redis", "edge", "config", "credentials", "ingress")
FULL_SPEC = {
    "image": "ghcr.io/acme/api:1.0.0",
    "api": {"autoscaling": {"enabled": True}},
    "ingress": {"host": "api.example.com"},
}


def render(spec: dict[str, Any], owner: Owner = OWNER) -> list[dict[str, Any]]:
    return render_children(owner, ApiServiceSpec.model_validate(spec), CREDENTIALS, "sum")


def workloads(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [child for child in children if child["kind"] == "Deployment"]


def test_child_names_prefix_owner_name() -> None:
    names = child_names("shop")
    assert names.credentials == "shop-credentials"
    assert names.config == "shop-config"
    assert names.edge_config == "shop-edge"
    assert names.postgres_data == "shop-postgres-data"
    assert names.redis_data == "shop-redis-data"
    assert names.api == "shop-api"
    assert names.worker == "shop-worker"
    assert names.postgres == "shop-postgres"
    assert names.redis == "shop-redis"
    assert names.edge == "shop-edge"
    assert names.ingress == "shop"


@pytest.mark.parametrize("component", COMPONENTS)
def test_common_labels_values(component: str) -> None:
    assert common_labels("shop", component) == {
        "app.kubernetes.io/name": "apiservice",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/managed-by": "apiservice-operator",
        "apiservice.dev/name": "shop",
    }


@pytest.mark.parametrize("component", COMPONENTS)
def test_selector_labels_subset_of_common(component: str) -> None:
    selector = selector_labels("shop", component)
    assert selector == {"apiservice.dev/name": "shop", "app.kubernetes.io/component": component}
    assert selector.items() <= common_labels("shop", component).items()


def test_no_child_has_instance_label() -> None:
    for child in render(FULL_SPEC) + render({"image": "x"}):
        assert "app.kubernetes.io/instance" not in child["metadata"]["labels"], child["kind"]
    for deployment in workloads(render(FULL_SPEC)):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert "app.kubernetes.io/instance" not in pod_labels


def test_every_child_has_common_labels() -> None:
    for child in render(FULL_SPEC):
        labels = child["metadata"]["labels"]
        component = labels["app.kubernetes.io/component"]
        assert component in COMPONENTS
        assert labels == common_labels("shop", component)


def test_deployment_selectors_match_pod_labels() -> None:
    for deployment in workloads(render(FULL_SPEC)):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector == selector_labels("shop", component)
        assert selector.items() <= pod_labels.items()


def test_service_selectors_match_deployment_pods() -> None:
    children = render(FULL_SPEC)
    pods = {
        deployment["metadata"]["name"]: deployment["spec"]["template"]["metadata"]["labels"]
        for deployment in workloads(children)
    }
    services = [child for child in children if child["kind"] == "Service"]
    assert {service["metadata"]["name"] for service in services} <= pods.keys()
    for service in services:
        selector = service["spec"]["selector"]
        assert selector.items() <= pods[service["metadata"]["name"]].items()


def test_every_child_in_owner_namespace() -> None:
    for child in render(FULL_SPEC):
        assert child["metadata"]["namespace"] == "team-a"


def test_child_names_unique_per_kind() -> None:
    keys = [(child["kind"], child["metadata"]["name"]) for child in render(FULL_SPEC)]
    assert len(keys) == len(set(keys))


def test_owner_reference_fields() -> None:
    config = next(child for child in render(FULL_SPEC) if child["kind"] == "ConfigMap")
    assert config["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apiservice.dev/v1alpha1",
            "kind": "ApiService",
            "name": "shop",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_validate_owner_name_accepts_longest() -> None:
    validate_owner_name("a" * MAX_OWNER_NAME_LENGTH)
    validate_owner_name("shop-2")


@pytest.mark.parametrize(
    "name",
    ["a" * (MAX_OWNER_NAME_LENGTH + 1), "2shop", "shop.v2", "Shop", "shop-", ""],
)
def test_validate_owner_name_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="invalid ApiService name"):
        validate_owner_name(name)


def test_longest_owner_name_fits_services() -> None:
    owner = Owner(name="a" * MAX_OWNER_NAME_LENGTH, namespace="team-a", uid="uid-1")
    for child in render(FULL_SPEC, owner=owner):
        if child["kind"] == "Service":
            assert len(child["metadata"]["name"]) <= 63


def test_render_children_rejects_long_owner_name() -> None:
    owner = Owner(name="a" * (MAX_OWNER_NAME_LENGTH + 1), namespace="team-a", uid="uid-1")
    with pytest.raises(ValueError, match="DNS-1035"):
        render(FULL_SPEC, owner=owner)


def test_checksum_is_sha256_hex() -> None:
    value = checksum({"a": "1"})
    assert len(value) == 64
    assert set(value) <= set("0123456789abcdef")


def test_checksum_same_for_same_input() -> None:
    assert checksum({"a": "1", "b": "2"}, {"c": "3"}) == checksum({"a": "1", "b": "2"}, {"c": "3"})


def test_checksum_ignores_key_order() -> None:
    assert checksum({"a": "1", "b": "2"}) == checksum({"b": "2", "a": "1"})


def test_checksum_changes_with_value() -> None:
    assert checksum({"a": "1"}) != checksum({"a": "2"})


def test_checksum_changes_with_key() -> None:
    assert checksum({"a": "1"}) != checksum({"b": "1"})


def test_checksum_keeps_parts_apart() -> None:
    assert checksum({"a": "1"}, {"b": "2"}) != checksum({"a": "1", "b": "2"})
    assert checksum({"a": "1"}, {"b": "2"}) != checksum({"b": "2"}, {"a": "1"})


def test_checksum_hashes_canonical_json() -> None:
    canonical = b'[{"a":"1","b":"\xc3\xa9"},{"c":"3"}]'
    assert checksum({"b": "\u00e9", "a": "1"}, {"c": "3"}) == hashlib.sha256(canonical).hexdigest()
