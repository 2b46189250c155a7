"""The user's Secrets and ConfigMaps that a spec refers to: presence checks and a checksum.

The operator keeps a digest of every key of every Secret and ConfigMap it can see (never the
values), so checking references and noticing their changes costs no API request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.reconcile.errors import Reason, StalledError

# Digests of one object's data: key -> sha256 of the value.
Digests = Mapping[str, str]


@dataclass(frozen=True)
class Reference:
    """One object, and optionally one key of it, that the spec needs."""

    kind: str  # Secret or ConfigMap
    name: str
    key: str | None
    field: str  # where in the spec the reference is, for the error message
    optional: bool = False


def digest_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """Hash each value of a Secret's or ConfigMap's data, so only digests are kept in memory."""
    return {key: hashlib.sha256(value.encode()).hexdigest() for key, value in (data or {}).items()}


def spec_references(spec: ApiServiceSpec) -> Iterator[Reference]:
    """List every Secret and ConfigMap that the spec refers to, with the field that names it."""
    for field, database in (("postgres", spec.postgres), ("redis", spec.redis)):
        if database.external is not None:
            ref = database.external.url_secret_ref
            yield Reference("Secret", ref.name, ref.key, f"spec.{field}.external.urlSecretRef")
    if spec.supabase is not None:
        for attribute in ("service_key_secret_ref", "anon_key_secret_ref"):
            ref = getattr(spec.supabase, attribute)
            if ref is not None:
                field = (
                    "serviceKeySecretRef" if attribute.startswith("service") else "anonKeySecretRef"
                )
                yield Reference("Secret", ref.name, ref.key, f"spec.supabase.{field}")
    if spec.hatchet is not None and spec.hatchet.token_secret_ref is not None:
        ref = spec.hatchet.token_secret_ref
        yield Reference("Secret", ref.name, ref.key, "spec.hatchet.tokenSecretRef")
    yield from _env_references(spec)


def _env_references(spec: ApiServiceSpec) -> Iterator[Reference]:
    for index, env in enumerate(spec.env):
        source = env.value_from
        if source is None:
            continue
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            field = f"spec.env[{index}].valueFrom.secretKeyRef"
            yield Reference("Secret", ref.name, ref.key, field, optional=bool(ref.optional))
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            field = f"spec.env[{index}].valueFrom.configMapKeyRef"
            yield Reference("ConfigMap", ref.name, ref.key, field, optional=bool(ref.optional))
    for index, env_from in enumerate(spec.env_from):
        if env_from.secret_ref is not None:
            field = f"spec.envFrom[{index}].secretRef"
            yield Reference("Secret", env_from.secret_ref.name, None, field)
        if env_from.config_map_ref is not None:
            field = f"spec.envFrom[{index}].configMapRef"
            yield Reference("ConfigMap", env_from.config_map_ref.name, None, field)


def check_references(
    namespace: str,
    spec: ApiServiceSpec,
    lookup: Mapping[tuple[str, str], Digests],
) -> dict[str, str]:
    """Check that every required reference exists, and return the digests of what it names.

    `lookup` maps (kind, name) in the ApiService's namespace to the object's digests. A missing
    object or key raises StalledError naming it: the operator cannot make progress until the
    user creates it, and it reconciles again as soon as the object appears.
    """
    found: dict[str, str] = {}
    for ref in spec_references(spec):
        digests = lookup.get((ref.kind, ref.name))
        if digests is None:
            if ref.optional:
                continue
            raise StalledError(
                Reason.MISSING_REFERENCE,
                f"{ref.kind} {namespace}/{ref.name} named by {ref.field} is not found: "
                f"create it in namespace {namespace}, or change {ref.field}.",
            )
        if ref.key is None:
            found.update({f"{ref.kind}/{ref.name}/{k}": v for k, v in digests.items()})
        elif ref.key in digests:
            found[f"{ref.kind}/{ref.name}/{ref.key}"] = digests[ref.key]
        elif not ref.optional:
            raise StalledError(
                Reason.MISSING_REFERENCE,
                f"{ref.kind} {namespace}/{ref.name} named by {ref.field} has no key "
                f"{ref.key!r}: add the key, or change {ref.field}.key.",
            )
    return found


def canonical(data: Mapping[str, str]) -> str:
    """Serialize a flat mapping the same way every time, for hashing."""
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
