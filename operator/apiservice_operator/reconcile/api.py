"""Kubernetes access for the reconcile layer: server-side apply under one field manager.

Every call is asynchronous, so no request blocks the operator's event loop. API failures are
translated into `StalledError` (retrying cannot help) or `TransientError` (retrying can).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from apiservice_operator.model import GROUP, KIND, PLURAL, VERSION
from apiservice_operator.observability.metrics import API_ERRORS
from apiservice_operator.reconcile.errors import Reason, StalledError, TransientError

FIELD_MANAGER = "apiservice-operator"


@dataclass(frozen=True)
class KindInfo:
    """API location of one kind of object: group, version, kind and plural."""

    group: str
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        """Return the apiVersion string, such as apps/v1 or v1."""
        return f"{self.group}/{self.version}" if self.group else self.version


# Every kind of child the operator creates. RBAC in the chart and manifests grants exactly these.
CHILD_KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo("", "v1", "Secret", "secrets"),
        KindInfo("", "v1", "ConfigMap", "configmaps"),
        KindInfo("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        KindInfo("", "v1", "Service", "services"),
        KindInfo("apps", "v1", "Deployment", "deployments"),
        KindInfo("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        KindInfo("networking.k8s.io", "v1", "Ingress", "ingresses"),
    )
}
APISERVICE = KindInfo(GROUP, VERSION, KIND, PLURAL)

_RESOURCES: dict[str, Any] = {}


def resource_class(info: KindInfo) -> Any:
    """Return lightkube's generic resource class for a kind, which reads and writes plain dicts."""
    if info.kind not in _RESOURCES:
        _RESOURCES[info.kind] = create_namespaced_resource(
            info.group, info.version, info.kind, info.plural
        )
    return _RESOURCES[info.kind]


def describe(kind: str, namespace: str, name: str) -> str:
    """Name an object the way error messages and logs show it."""
    return f"{kind} {namespace}/{name}"


def translate_error(error: Exception, *, action: str, target: str) -> Exception:
    """Turn an API or connection failure into a StalledError or a TransientError."""
    if isinstance(error, httpx.HTTPError) and not isinstance(error, ApiError):
        API_ERRORS.labels(code="0").inc()
        return TransientError(f"{action} {target} failed: {error}; retrying")
    if not isinstance(error, ApiError):
        return error
    code = error.status.code or 0
    message = error.status.message or str(error)
    API_ERRORS.labels(code=str(code)).inc()
    if code == 403:
        return StalledError(
            Reason.FORBIDDEN,
            f"{action} {target} is forbidden: {message}. Grant the operator's ServiceAccount "
            "this permission (see the chart's RBAC), then the next change retries.",
        )
    if code in (400, 422) and "immutable" in message:
        return StalledError(
            Reason.IMMUTABLE_FIELD,
            f"{action} {target} failed because a field is immutable: {message}. Delete {target} "
            "so the operator recreates it, or revert the spec change.",
        )
    if code in (400, 422):
        return StalledError(Reason.REJECTED, f"{action} {target} was rejected: {message}")
    return TransientError(
        f"{action} {target} failed ({code}): {message}; retrying", status_code=code
    )


@contextlib.contextmanager
def translated(*, action: str, target: str, tolerate: int | None = None) -> Iterator[None]:
    """Translate API and connection failures inside the block.

    An API error with the status code `tolerate` raises ExpectedStatusError instead, for the
    caller to handle as a normal outcome, such as 404 on delete or 409 on create.
    """
    try:
        yield
    except ApiError as error:
        if tolerate is not None and error.status.code == tolerate:
            raise ExpectedStatusError from error
        raise translate_error(error, action=action, target=target) from error
    except httpx.HTTPError as error:
        raise translate_error(error, action=action, target=target) from error


class ExpectedStatusError(Exception):
    """An expected API status, such as 404 on delete, that the caller handles."""


class KubeApi:
    """The few API calls the reconcile layer makes, over lightkube's asynchronous client."""

    def __init__(self, client: AsyncClient, *, field_manager: str = FIELD_MANAGER) -> None:
        self.client = client
        self.field_manager = field_manager

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply an object, taking over fields that others changed (drift repair)."""
        info = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        with translated(
            action="applying", target=describe(info.kind, meta["namespace"], meta["name"])
        ):
            result = await self.client.patch(
                resource_class(info),
                meta["name"],
                obj,
                namespace=meta["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=self.field_manager,
                force=True,
            )
        return dict(result.to_dict())

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create an object; return None when it already exists, so nothing is overwritten."""
        info = CHILD_KINDS[obj["kind"]]
        meta = obj["metadata"]
        target = describe(info.kind, meta["namespace"], meta["name"])
        try:
            with translated(action="creating", target=target, tolerate=409):
                result = await self.client.create(
                    resource_class(info)(obj), field_manager=self.field_manager
                )
        except ExpectedStatusError:
            return None
        return dict(result.to_dict())

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Read an object; return None when it does not exist."""
        info = CHILD_KINDS[kind]
        try:
            with translated(action="reading", target=describe(kind, namespace, name), tolerate=404):
                result = await self.client.get(resource_class(info), name, namespace=namespace)
        except ExpectedStatusError:
            return None
        return dict(result.to_dict())

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete an object; an object that is already gone counts as deleted."""
        info = CHILD_KINDS[kind]
        try:
            with translated(
                action="deleting", target=describe(kind, namespace, name), tolerate=404
            ):
                await self.client.delete(resource_class(info), name, namespace=namespace)
        except ExpectedStatusError:
            return

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource of an ApiService."""
        with translated(action="updating the status of", target=describe(KIND, namespace, name)):
            await self.client.patch(
                resource_class(APISERVICE).Status,
                name,
                {"status": status},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
