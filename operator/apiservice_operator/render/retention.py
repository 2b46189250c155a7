"""Retention: the children that outlive their ApiService, so that stored data survives.

Retained children carry no ownerReferences, so the garbage collector leaves them when the
ApiService is deleted. Reconcile should also never prune a child that lacks the ApiService's
ownerReference, because that child is kept on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiservice_operator.model import ApiServiceSpec, RetentionPolicy
from apiservice_operator.render.meta import child_names


@dataclass(frozen=True)
class ChildRef:
    """The identity of one child object in the ApiService's namespace."""

    api_version: str
    kind: str
    name: str


def retains_postgres_data(spec: ApiServiceSpec) -> bool:
    """Return whether the managed PostgreSQL volume outlives the ApiService."""
    managed = spec.postgres.managed
    return managed is not None and managed.retention_policy == RetentionPolicy.RETAIN


def retains_redis_data(spec: ApiServiceSpec) -> bool:
    """Return whether the managed Redis volume outlives the ApiService."""
    managed = spec.redis.managed
    return managed is not None and managed.retention_policy == RetentionPolicy.RETAIN


def retains_credentials(spec: ApiServiceSpec) -> bool:
    """Return whether the credentials Secret outlives the ApiService.

    It does whenever a managed database keeps its volume, because that volume's data can only
    be opened with the password in the Secret.
    """
    return retains_postgres_data(spec) or retains_redis_data(spec)


def retained_children(owner_name: str, spec: ApiServiceSpec) -> tuple[ChildRef, ...]:
    """Return the children that are kept when the ApiService is deleted, in apply order."""
    names = child_names(owner_name)
    retained: list[ChildRef] = []
    if retains_credentials(spec):
        retained.append(ChildRef(api_version="v1", kind="Secret", name=names.credentials))
    if retains_postgres_data(spec):
        retained.append(
            ChildRef(api_version="v1", kind="PersistentVolumeClaim", name=names.postgres_data)
        )
    if retains_redis_data(spec):
        retained.append(
            ChildRef(api_version="v1", kind="PersistentVolumeClaim", name=names.redis_data)
        )
    return tuple(retained)
