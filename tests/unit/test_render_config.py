"""Tests of the settings ConfigMap, the credentials Secret, connection URLs and the stack URL."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from sqlalchemy.engine import make_url

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    CREDENTIAL_KEYS,
    Credentials,
    Owner,
    database_url,
    decode_credentials,
    redis_url,
    render_credentials_secret,
    render_settings_configmap,
    stack_url,
)

OWNER = Owner(name="shop", namespace="team-a", uid="uid-1")
HARD_PASSWORD = "p@ss:w/rd%"
CREDENTIALS = Credentials(
    postgres_password=HARD_PASSWORD, redis_password="r3d!s#pass", jwt_secret="jwt-secret"
)
EXTERNAL = {
    "postgres": {"external": {"urlSecretRef": {"name": "rds", "key": "url"}}},
    "redis": {"external": {"urlSecretRef": {"name": "cache", "key": "url"}}},
}


def spec_of(**fields: Any) -> ApiServiceSpec:
    return ApiServiceSpec.model_validate({"image": "ghcr.io/acme/api:1.0.0", **fields})


def secret_values(spec: ApiServiceSpec) -> dict[str, str]:
    data = render_credentials_secret(OWNER, spec, CREDENTIALS)["data"]
    return {key: base64.b64decode(value).decode("utf-8") for key, value in data.items()}


def test_database_url_escapes_password() -> None:
    url = database_url(user="app", password=HARD_PASSWORD, host="db", port=5432, database="app")
    assert url == "postgresql://app:p%40ss%3Aw%2Frd%25@db:5432/app"


def test_database_url_escapes_user() -> None:
    url = database_url(user="a@b:c", password="pw", host="db", port=5432, database="app")
    assert url == "postgresql://a%40b%3Ac:pw@db:5432/app"


def test_database_url_parses_back_in_sqlalchemy() -> None:
    url = database_url(user="u:1", password=HARD_PASSWORD, host="db", port=5432, database="app")
    parsed = make_url(url)
    assert parsed.username == "u:1"
    assert parsed.password == HARD_PASSWORD
    assert parsed.host == "db"
    assert parsed.port == 5432
    assert parsed.database == "app"


def test_redis_url_escapes_password() -> None:
    assert redis_url(password=HARD_PASSWORD, host="cache", port=6379) == (
        "redis://:p%40ss%3Aw%2Frd%25@cache:6379/0"
    )


def test_redis_url_database_number() -> None:
    assert redis_url(password="pw", host="cache", port=6379, db=3) == "redis://:pw@cache:6379/3"


def test_redis_url_parses_back_in_redis_py() -> None:
    pool = redis.ConnectionPool.from_url(redis_url(password=HARD_PASSWORD, host="cache", port=6379))
    assert pool.connection_kwargs["password"] == HARD_PASSWORD
    assert pool.connection_kwargs["host"] == "cache"
    assert pool.connection_kwargs["port"] == 6379
    assert pool.connection_kwargs["db"] == 0


def test_secret_uses_base64_data() -> None:
    secret = render_credentials_secret(OWNER, spec_of(), CREDENTIALS)
    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert secret["data"]["POSTGRES_PASSWORD"] == base64.b64encode(b"p@ss:w/rd%").decode()


def test_secret_keys_for_managed_servers() -> None:
    values = secret_values(spec_of())
    assert list(values) == sorted(values)
    assert values == {
        "DATABASE_URL": "postgresql://app:p%40ss%3Aw%2Frd%25@shop-postgres:5432/app",
        "JWT_SECRET": "jwt-secret",
        "POSTGRES_PASSWORD": HARD_PASSWORD,
        "REDIS_PASSWORD": "r3d!s#pass",
        "REDIS_URL": "redis://:r3d%21s%23pass@shop-redis:6379/0",
    }


def test_secret_url_uses_managed_user_and_database() -> None:
    spec = spec_of(postgres={"managed": {"user": "owner", "database": "shop"}})
    url = secret_values(spec)["DATABASE_URL"]
    assert url == "postgresql://owner:p%40ss%3Aw%2Frd%25@shop-postgres:5432/shop"


def test_secret_has_no_urls_for_external_servers() -> None:
    values = secret_values(spec_of(**EXTERNAL))
    assert set(values) == set(CREDENTIAL_KEYS)


def test_credential_keys() -> None:
    assert CREDENTIAL_KEYS == ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")


def test_decode_credentials_round_trip() -> None:
    secret = render_credentials_secret(OWNER, spec_of(), CREDENTIALS)
    assert decode_credentials(secret["data"]) == CREDENTIALS


@pytest.mark.parametrize("missing", CREDENTIAL_KEYS)
def test_decode_credentials_missing_key(missing: str) -> None:
    data = dict(render_credentials_secret(OWNER, spec_of(), CREDENTIALS)["data"])
    del data[missing]
    with pytest.raises(ValueError, match=f"no key {missing}"):
        decode_credentials(data)


def test_decode_credentials_invalid_base64() -> None:
    data = dict(render_credentials_secret(OWNER, spec_of(), CREDENTIALS)["data"])
    data["JWT_SECRET"] = "not base64!"
    with pytest.raises(ValueError, match="JWT_SECRET is not base64"):
        decode_credentials(data)


def test_credentials_repr_hides_secrets() -> None:
    text = repr(CREDENTIALS)
    assert HARD_PASSWORD not in text
    assert "jwt-secret" not in text


def test_settings_defaults() -> None:
    configmap = render_settings_configmap(OWNER, spec_of())
    assert configmap["metadata"]["name"] == "shop-config"
    assert configmap["data"] == {
        "ALLOWED_ORIGINS": '["*"]',
        "ENVIRONMENT": "dev",
        "LOG_LEVEL": "INFO",
        "PROJECT_NAME": "shop",
    }


def test_settings_values_are_plain_strings() -> None:
    # Enum members would serialize as "Environment.DEV" in some writers and fail in others.
    for value in render_settings_configmap(OWNER, spec_of())["data"].values():
        assert type(value) is str


def test_settings_allowed_origins_is_json_list() -> None:
    origins = ["https://a.example.com", "https://b.example.com"]
    data = render_settings_configmap(OWNER, spec_of(corsOrigins=origins))["data"]
    assert json.loads(data["ALLOWED_ORIGINS"]) == origins


def test_settings_integrations_when_set() -> None:
    spec = spec_of(
        environment="prod",
        logLevel="ERROR",
        supabase={"url": "https://x.supabase.co"},
        hatchet={"serverUrl": "https://hatchet.example.com"},
    )
    data = render_settings_configmap(OWNER, spec)["data"]
    assert list(data) == sorted(data)
    assert data["ENVIRONMENT"] == "prod"
    assert data["LOG_LEVEL"] == "ERROR"
    assert data["SUPABASE_URL"] == "https://x.supabase.co"
    assert data["HATCHET_SERVER_URL"] == "https://hatchet.example.com"


def test_settings_hold_no_secret() -> None:
    data = render_settings_configmap(OWNER, spec_of())["data"]
    for secret in (HARD_PASSWORD, "r3d!s#pass", "jwt-secret"):
        assert secret not in json.dumps(data)


@pytest.mark.parametrize(
    ("ingress", "expected"),
    [
        ({"host": "api.example.com", "tlsSecretName": "tls"}, "https://api.example.com"),
        ({"host": "api.example.com"}, "http://api.example.com"),
        ({"host": "*.example.com"}, "http://shop-edge.team-a.svc:80"),
        ({}, "http://shop-edge.team-a.svc:80"),
        ({"edge": {"enabled": False}}, "http://shop-api.team-a.svc:8000"),
    ],
)
def test_stack_url(ingress: dict[str, Any], expected: str) -> None:
    assert stack_url(OWNER, spec_of(ingress=ingress)) == expected
