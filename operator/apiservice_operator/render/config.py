"""The settings ConfigMap, the credentials Secret and the URLs that the app connects to.

The api and worker read their settings from environment variables, as pydantic-settings does:
plain settings come from the ConfigMap and every password or URL that contains one comes from
a Secret.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from apiservice_operator.model import ApiServiceSpec, ExternalService
from apiservice_operator.render.meta import (
    API_SERVICE_PORT,
    EDGE_SERVICE_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    Manifest,
    Owner,
    child_names,
    object_meta,
)
from apiservice_operator.render.retention import retains_credentials

POSTGRES_PASSWORD_KEY = "POSTGRES_PASSWORD"
REDIS_PASSWORD_KEY = "REDIS_PASSWORD"
JWT_SECRET_KEY = "JWT_SECRET"
DATABASE_URL_KEY = "DATABASE_URL"
REDIS_URL_KEY = "REDIS_URL"

# Keys of the credentials Secret that contain generated values, which reconcile reads back.
CREDENTIAL_KEYS: tuple[str, ...] = (POSTGRES_PASSWORD_KEY, REDIS_PASSWORD_KEY, JWT_SECRET_KEY)


@dataclass(frozen=True)
class Credentials:
    """Generated secrets of one ApiService, created once and kept in the credentials Secret.

    The fields are left out of repr() so that a logged or printed object shows no secret.
    """

    postgres_password: str = field(repr=False)
    redis_password: str = field(repr=False)
    jwt_secret: str = field(repr=False)


def database_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """Build a postgresql:// URL, percent-escaping the user, password and database name."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(database, safe='')}"
    )


def redis_url(password: str, host: str, port: int, db: int = 0) -> str:
    """Build a redis:// URL with an empty user name and the percent-escaped password."""
    return f"redis://:{quote(password, safe='')}@{host}:{port}/{db}"


def settings_data(owner: Owner, spec: ApiServiceSpec) -> dict[str, str]:
    """Return the settings ConfigMap's data, sorted by key."""
    data = {
        "PROJECT_NAME": owner.name,
        "ENVIRONMENT": spec.environment,
        "LOG_LEVEL": spec.log_level,
        # pydantic-settings parses a list-typed setting from a JSON array.
        "ALLOWED_ORIGINS": json.dumps(spec.cors_origins),
    }
    if spec.supabase is not None:
        data["SUPABASE_URL"] = spec.supabase.url
    if spec.hatchet is not None:
        data["HATCHET_SERVER_URL"] = spec.hatchet.server_url
    return dict(sorted(data.items()))


def render_settings_configmap(owner: Owner, spec: ApiServiceSpec) -> Manifest:
    """Build the ConfigMap of non-secret settings that the api and worker load with envFrom."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(owner, name=child_names(owner.name).config, component="config"),
        "data": settings_data(owner, spec),
    }


def credentials_values(
    owner: Owner, spec: ApiServiceSpec, credentials: Credentials
) -> dict[str, str]:
    """Return the credentials Secret's values as plain text, sorted by key.

    DATABASE_URL and REDIS_URL are present only for managed servers, because an external
    server's URL stays in the user's own Secret.
    """
    names = child_names(owner.name)
    values = {
        POSTGRES_PASSWORD_KEY: credentials.postgres_password,
        REDIS_PASSWORD_KEY: credentials.redis_password,
        JWT_SECRET_KEY: credentials.jwt_secret,
    }
    postgres = spec.postgres.managed
    if postgres is not None:
        values[DATABASE_URL_KEY] = database_url(
            user=postgres.user,
            password=credentials.postgres_password,
            host=names.postgres,
            port=POSTGRES_PORT,
            database=postgres.database,
        )
    if spec.redis.managed is not None:
        values[REDIS_URL_KEY] = redis_url(
            password=credentials.redis_password, host=names.redis, port=REDIS_PORT
        )
    return dict(sorted(values.items()))


def render_credentials_secret(
    owner: Owner, spec: ApiServiceSpec, credentials: Credentials
) -> Manifest:
    """Build the credentials Secret.

    The values go in `data` as base64 rather than in `stringData`, because the API server
    converts `stringData` into `data`, so an applied `stringData` never matches what is read
    back.
    """
    values = credentials_values(owner, spec, credentials)
    meta = object_meta(
        owner,
        name=child_names(owner.name).credentials,
        component="credentials",
        owned=not retains_credentials(spec),
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {key: _base64(value) for key, value in values.items()},
    }


def decode_credentials(data: Mapping[str, str]) -> Credentials:
    """Read Credentials back from the base64 `data` of the credentials Secret.

    Raises ValueError naming the key when a key of CREDENTIAL_KEYS is missing or is not valid
    base64 UTF-8 text.
    """
    return Credentials(
        postgres_password=_decode_key(data, key=POSTGRES_PASSWORD_KEY),
        redis_password=_decode_key(data, key=REDIS_PASSWORD_KEY),
        jwt_secret=_decode_key(data, key=JWT_SECRET_KEY),
    )


def url_secret_key(
    *,
    managed: bool,
    external: ExternalService | None,
    credentials_secret: str,
    key: str,
    field: str,
) -> dict[str, str]:
    """Return the secretKeyRef of a server's connection URL: ours when managed, else the user's.

    Raises ValueError when the spec sets both or neither of managed and external, which the
    CRD's validation rejects but a spec built in Python may still contain.
    """
    if managed and external is None:
        return {"name": credentials_secret, "key": key}
    if external is not None and not managed:
        return {"name": external.url_secret_ref.name, "key": external.url_secret_ref.key}
    raise ValueError(f"invalid {field}: set exactly one of managed or external")


def stack_url(owner: Owner, spec: ApiServiceSpec) -> str:
    """Return the URL at which the API is served, for the ApiService's status.

    That is the Ingress host when there is one, https when it has a TLS Secret. Without a host,
    or with a wildcard host that names no single address, it is the in-cluster URL of the edge
    proxy's Service, or of the api's Service when the edge proxy is off.
    """
    host = spec.ingress.host
    if host is not None and not host.startswith("*."):
        scheme = "https" if spec.ingress.tls_secret_name is not None else "http"
        return f"{scheme}://{host}"
    names = child_names(owner.name)
    if spec.ingress.edge.enabled:
        return f"http://{names.edge}.{owner.namespace}.svc:{EDGE_SERVICE_PORT}"
    return f"http://{names.api}.{owner.namespace}.svc:{API_SERVICE_PORT}"


def _base64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def _decode_key(data: Mapping[str, str], *, key: str) -> str:
    if key not in data:
        raise ValueError(
            f"credentials Secret has no key {key}: restore the key, because a retained database "
            "volume may still need the old password"
        )
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(
            f"credentials Secret key {key} is not base64 UTF-8 text: {error}"
        ) from error
