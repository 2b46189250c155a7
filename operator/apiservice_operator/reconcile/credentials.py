"""Generated credentials: created once from a secure random source and never overwritten.

The credentials Secret survives the ApiService by default, so an existing one is always read
back before anything is generated: from the watch cache when it is there, otherwise straight
from the API server. A new Secret is created with a plain create, which fails instead of
overwriting when another pass created it first.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping
from typing import Any

from apiservice_operator.reconcile.api import KubeApi

POSTGRES_PASSWORD = "POSTGRES_PASSWORD"
REDIS_PASSWORD = "REDIS_PASSWORD"
JWT_SECRET = "JWT_SECRET"
GENERATED_KEYS = (POSTGRES_PASSWORD, REDIS_PASSWORD, JWT_SECRET)

# 43 letters and digits carry 256 bits, as much as 32 random bytes. Leaving out punctuation keeps
# every value safe in a URL, a shell word and a command line: redis-server would read a password
# that starts with "--" as an option name.
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 43


def generate_value() -> str:
    """Return a new random secret value from the system's secure random source."""
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def decode_data(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """Decode a Secret's base64 data into strings; a missing Secret decodes to nothing."""
    if not secret:
        return {}
    data = secret.get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def complete(existing: Mapping[str, str]) -> dict[str, str]:
    """Keep every existing generated value and generate only the missing ones."""
    return {key: existing.get(key) or generate_value() for key in GENERATED_KEYS}


async def read_existing(
    api: KubeApi, namespace: str, name: str, cached: Mapping[str, Any] | None
) -> dict[str, str]:
    """Return the stored credentials, reading the API server when the cache has no Secret."""
    if cached is not None:
        return decode_data(cached)
    return decode_data(await api.get("Secret", namespace, name))
