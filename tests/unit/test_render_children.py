"""Tests of render_children as a whole: order, determinism and what survives a deletion."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    CHILD_KINDS,
    ChildRef,
    Credentials,
    Owner,
    render_children,
    retained_children,
    retains_credentials,
)

OWNER = Owner(name="shop", namespace="team-a", uid="uid-1")
CREDENTIALS = Credentials(postgres_password="pg", redis_password="rd", jwt_secret="jwt")
FULL: dict[str, Any] = {
    "image": "ghcr.io/acme/api:1.0.0",
    "api": {"autoscaling": {"enabled": True}},
    "ingress": {"host": "api.example.com", "tlsSecretName": "tls"},
    "supabase": {"url": "https://x.supabase.co"},
}
EXTERNAL = {
    "postgres": {"external": {"urlSecretRef": {"name": "rds", "key": "url"}}},
    "redis": {"external": {"urlSecretRef": {"name": "cache", "key": "url"}}},
}


def retention(postgres: str | None, redis: str | None) -> dict[str, Any]:
    """Build a spec whose servers are managed with the given policies, or external for None."""
    fields: dict[str, Any] = {"image": "ghcr.io/acme/api:1.0.0"}
    for server, policy in (("postgres", postgres), ("redis", redis)):
        if policy is None:
            fields[server] = EXTERNAL[server]
        else:
            fields[server] = {"managed": {"retentionPolicy": policy}}
    return fields


def render(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return render_children(OWNER, ApiServiceSpec.model_validate(spec), CREDENTIALS, "sum")


def unowned(children: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (child["kind"], child["metadata"]["name"])
        for child in children
        if "ownerReferences" not in child["metadata"]
    ]


def test_children_in_apply_order() -> None:
    kinds = [(child["apiVersion"], child["kind"]) for child in render(FULL)]
    ranks = [CHILD_KINDS.index(kind) for kind in kinds]
    assert ranks == sorted(ranks)
    assert kinds[0] == ("v1", "Secret")


def test_full_spec_child_list() -> None:
    names = [(child["kind"], child["metadata"]["name"]) for child in render(FULL)]
    assert names == [
        ("Secret", "shop-credentials"),
        ("ConfigMap", "shop-config"),
        ("ConfigMap", "shop-edge"),
        ("PersistentVolumeClaim", "shop-postgres-data"),
        ("PersistentVolumeClaim", "shop-redis-data"),
        ("Service", "shop-postgres"),
        ("Service", "shop-redis"),
        ("Service", "shop-api"),
        ("Service", "shop-edge"),
        ("Deployment", "shop-postgres"),
        ("Deployment", "shop-redis"),
        ("Deployment", "shop-api"),
        ("Deployment", "shop-worker"),
        ("Deployment", "shop-edge"),
        ("HorizontalPodAutoscaler", "shop-api"),
        ("Ingress", "shop"),
    ]


def test_minimal_spec_child_list() -> None:
    kinds = [child["kind"] for child in render({"image": "ghcr.io/acme/api:1.0.0"})]
    assert "HorizontalPodAutoscaler" not in kinds
    assert "Ingress" not in kinds
    assert len(kinds) == 14


def test_render_is_byte_identical() -> None:
    first = json.dumps(render(FULL))
    second = json.dumps(render(json.loads(json.dumps(FULL))))
    assert first == second


def test_render_ignores_input_key_order() -> None:
    reordered = dict(reversed(list(FULL.items())))
    reordered["ingress"] = dict(reversed(list(FULL["ingress"].items())))
    assert json.dumps(render(reordered)) == json.dumps(render(FULL))


def test_render_does_not_share_objects() -> None:
    # Reconcile may edit one child before applying it, which must not change another.
    children = render(FULL)
    children[1]["metadata"]["labels"]["edited"] = "yes"
    assert "edited" not in children[2]["metadata"]["labels"]
    assert "edited" not in render(FULL)[1]["metadata"]["labels"]


def test_output_is_plain_data() -> None:
    # safe_dump rejects anything but plain dicts, lists, strings, numbers and booleans.
    yaml.safe_dump_all(render(FULL))
    yaml.safe_dump_all(render({"image": "ghcr.io/acme/api:1.0.0"}))


def test_every_rendered_kind_listed() -> None:
    rendered = {(child["apiVersion"], child["kind"]) for child in render(FULL)}
    assert rendered == set(CHILD_KINDS)


@pytest.mark.parametrize(
    ("postgres", "redis", "expected"),
    [
        (
            "Retain",
            "Retain",
            [
                ("Secret", "shop-credentials"),
                ("PersistentVolumeClaim", "shop-postgres-data"),
                ("PersistentVolumeClaim", "shop-redis-data"),
            ],
        ),
        ("Delete", "Delete", []),
        (
            "Retain",
            "Delete",
            [("Secret", "shop-credentials"), ("PersistentVolumeClaim", "shop-postgres-data")],
        ),
        (
            "Delete",
            "Retain",
            [("Secret", "shop-credentials"), ("PersistentVolumeClaim", "shop-redis-data")],
        ),
        (None, None, []),
        (
            None,
            "Retain",
            [("Secret", "shop-credentials"), ("PersistentVolumeClaim", "shop-redis-data")],
        ),
    ],
)
def test_unowned_children_by_retention(
    postgres: str | None, redis: str | None, expected: list[tuple[str, str]]
) -> None:
    assert unowned(render(retention(postgres, redis))) == expected


@pytest.mark.parametrize(
    ("postgres", "redis"),
    [
        ("Retain", "Retain"),
        ("Delete", "Delete"),
        ("Retain", "Delete"),
        (None, "Retain"),
        (None, None),
    ],
)
def test_retained_children_match_unowned(postgres: str | None, redis: str | None) -> None:
    fields = retention(postgres, redis)
    refs = retained_children("shop", ApiServiceSpec.model_validate(fields))
    assert [(ref.kind, ref.name) for ref in refs] == unowned(render(fields))


def test_retained_children_refs() -> None:
    refs = retained_children("shop", ApiServiceSpec.model_validate({"image": "x"}))
    assert refs == (
        ChildRef(api_version="v1", kind="Secret", name="shop-credentials"),
        ChildRef(api_version="v1", kind="PersistentVolumeClaim", name="shop-postgres-data"),
        ChildRef(api_version="v1", kind="PersistentVolumeClaim", name="shop-redis-data"),
    )


def test_default_retains_credentials() -> None:
    assert retains_credentials(ApiServiceSpec.model_validate({"image": "x"})) is True


def test_external_servers_do_not_retain_credentials() -> None:
    spec = ApiServiceSpec.model_validate(retention(None, None))
    assert retains_credentials(spec) is False
