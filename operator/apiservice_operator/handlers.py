"""Kopf registrations: what the operator watches and which reconcile each event leads to.

Every handler has an explicit id, because Kopf stores the id on the object and a renamed
function would otherwise change it. The handlers stay thin: they pick the ApiService that an
event concerns and hand it to the `Reconciler`, one pass at a time per ApiService.

A pass follows a change to an ApiService (create, update, resume at start), a change to one of
its children (drift, deletion, a Deployment becoming ready), or a change to a Secret or
ConfigMap that a spec refers to. A periodic resync adds one pass per ApiService every few
minutes. The children, the ApiServices and the digests of Secrets and ConfigMaps are kept in
Kopf indices, which Kopf fills before it calls any handler. So a pass reads nothing from the API
server, except a credentials Secret that the watch has not delivered yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, cast

import kopf
import structlog
from lightkube import AsyncClient

from apiservice_operator.model import GROUP, PLURAL, VERSION, ApiServiceSpec
from apiservice_operator.observability.events import EventLimiter
from apiservice_operator.observability.health import HEALTH
from apiservice_operator.observability.metrics import APISERVICES, RECONCILES
from apiservice_operator.observability.watches import login_with_watch_tracking
from apiservice_operator.reconcile.api import CHILD_KINDS, KubeApi
from apiservice_operator.reconcile.errors import TransientError
from apiservice_operator.reconcile.inputs import digest_data, spec_references
from apiservice_operator.reconcile.reconciler import ClusterView, Reconciler

logger = structlog.get_logger(__name__)

MANAGED_BY = {"app.kubernetes.io/managed-by": "apiservice-operator"}
OWNER_LABEL = "apiservice.dev/name"
CHILD_LABELS: dict[str, Any] = {**MANAGED_BY, OWNER_LABEL: kopf.PRESENT}
# Retry delays for transient failures: doubled after each failure, up to the maximum.
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 300.0
# Default seconds between two passes of every ApiService that no event asked for.
RESYNC_SECONDS = 600.0

OwnerKey = tuple[str, str]  # (namespace, name)


class Runtime:
    """State shared by the handlers of one operator process."""

    def __init__(self) -> None:
        self.reconciler: Reconciler | None = None
        self.client: AsyncClient | None = None
        self.locks: dict[OwnerKey, asyncio.Lock] = {}
        self.pending: set[OwnerKey] = set()
        self.retry_delay: dict[OwnerKey, float] = {}
        self.events = EventLimiter()
        self.ready_by_owner: dict[OwnerKey, str] = {}
        self.resync_task: asyncio.Task[None] | None = None
        self.resync_seconds = RESYNC_SECONDS

    def lock(self, key: OwnerKey) -> asyncio.Lock:
        """Return the lock that serializes passes of one ApiService."""
        return self.locks.setdefault(key, asyncio.Lock())


RUNTIME = Runtime()


def plain(value: Any) -> Any:
    """Copy Kopf's read-only body views into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what drift detection and status need, and drop the bulky managedFields."""
    copy = plain(body)
    copy.get("metadata", {}).pop("managedFields", None)
    return dict(copy)


# Indices: Kopf fills them from its watches before any handler runs.


@kopf.index(GROUP, VERSION, PLURAL, id="apiservices")
def index_apiservices(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[OwnerKey, dict[str, Any]]:
    """Index every ApiService by namespace and name."""
    return {(namespace or "", name): trimmed(body)}


def index_child(
    *, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[OwnerKey, str]:
    """Index a child by the ApiService it belongs to, as its owner label names it.

    The body is kept as compact JSON: a dict of a Deployment takes several times the memory
    of its text, and a pass parses only the dozen children of one ApiService.
    """
    compact = json.dumps(trimmed(body), separators=(",", ":"))
    return {(namespace or "", labels[OWNER_LABEL]): compact}


def index_references(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[str, tuple[tuple[str, str], dict[str, str]]]:
    """Index the digests of a Secret's or ConfigMap's keys by namespace; values are not kept."""
    data = {**(body.get("data") or {}), **(body.get("binaryData") or {})}
    return {namespace or "": ((str(body.get("kind")), name), digest_data(data))}


for _info in CHILD_KINDS.values():
    kopf.index(
        _info.group, _info.version, _info.plural, id=f"children_{_info.plural}", labels=CHILD_LABELS
    )(index_child)
kopf.index("", "v1", "secrets", id="reference_secrets")(index_references)
kopf.index("", "v1", "configmaps", id="reference_configmaps")(index_references)


def cluster_view(key: OwnerKey, indices: Mapping[str, Any]) -> ClusterView:
    """Assemble what the indices know about one ApiService's children and references."""
    children: dict[tuple[str, str], Mapping[str, Any]] = {}
    for info in CHILD_KINDS.values():
        for compact in indices[f"children_{info.plural}"].get(key, []):
            child = json.loads(compact)
            children[(info.kind, child["metadata"]["name"])] = child
    references: dict[tuple[str, str], Mapping[str, str]] = {}
    for index_id in ("reference_secrets", "reference_configmaps"):
        for reference, digests in indices[index_id].get(key[0], []):
            references[reference] = digests
    return ClusterView(children=children, references=references)


# Startup and shutdown.

# Kopf sends its requests through this login's session, which notes each watch request for /healthz.
kopf.on.login(id="login")(login_with_watch_tracking)


@kopf.on.startup(id="startup")
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Connect to the API server and tune Kopf for a quiet, single-instance operator."""
    # Our own Events are rate-limited and name what changed, so Kopf's per-handler ones would
    # only repeat them.
    # Kopf 1.45 turns log lines into Events only with `posting.loggers`, while
    # `posting.enabled = False` would also drop every kopf.event() call, ours included.
    settings.posting.loggers = False
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    RUNTIME.client = AsyncClient()
    RUNTIME.reconciler = Reconciler(KubeApi(RUNTIME.client))
    logger.info("operator started")


@kopf.on.cleanup(id="cleanup")
async def cleanup(**_: Any) -> None:
    """Stop the periodic resync and close the API client when the operator stops."""
    if RUNTIME.resync_task is not None:
        RUNTIME.resync_task.cancel()
    if RUNTIME.client is not None:
        await RUNTIME.client.close()
    logger.info("operator stopped")


# ApiService changes. Kopf retries a handler that raises TemporaryError after its delay.


async def reconcile_now(body: Mapping[str, Any], indices: Mapping[str, Any], handler: str) -> None:
    """Run one pass for an ApiService body, serialized with other passes of the same object."""
    reconciler = RUNTIME.reconciler
    if reconciler is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    with structlog.contextvars.bound_contextvars(**log_fields(body, handler)):
        async with RUNTIME.lock(key):
            RUNTIME.pending.discard(key)
            logger.debug("reconcile started")
            sink = event_sink(body)
            try:
                outcome = await reconciler.reconcile(body, cluster_view(key, indices), sink)
            except TransientError as error:
                delay = next_retry_delay(key)
                logger.warning("reconcile failed, retrying", error=error.message, delay=delay)
                raise kopf.TemporaryError(error.message, delay=delay) from error
            except Exception as error:
                # A bug, not a cluster condition: log it with its traceback and retry with
                # backoff, so one bad object neither stops nor floods the operator.
                delay = next_retry_delay(key)
                RECONCILES.labels(result="error").inc()
                logger.exception("reconcile failed unexpectedly, retrying", delay=delay)
                raise kopf.TemporaryError(f"unexpected error: {error!r}", delay=delay) from error
            RUNTIME.retry_delay.pop(key, None)
            record_readiness(key, outcome.verdict.health.value)
            if outcome.applied or outcome.deleted or outcome.status_written:
                logger.info(
                    "reconciled",
                    health=outcome.verdict.health.value,
                    reason=outcome.verdict.reason.value,
                    applied=len(outcome.applied),
                    deleted=len(outcome.deleted),
                )


def log_fields(body: Mapping[str, Any], handler: str) -> dict[str, Any]:
    """Return the fields that every log line about one pass of an ApiService carries."""
    meta = body["metadata"]
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "generation": meta.get("generation"),
        "handler": handler,
    }


def next_retry_delay(key: OwnerKey) -> float:
    """Return the delay before the next retry of an ApiService, doubling it for the one after."""
    delay = RUNTIME.retry_delay.get(key, FIRST_RETRY_SECONDS)
    RUNTIME.retry_delay[key] = min(delay * 2, MAX_RETRY_SECONDS)
    return delay


def record_readiness(key: OwnerKey, health: str) -> None:
    """Keep the per-status gauge of ApiServices in step with the latest pass."""
    RUNTIME.ready_by_owner[key] = "true" if health == "ready" else "false"
    refresh_readiness_gauge()


def refresh_readiness_gauge() -> None:
    """Count the known ApiServices by the status of their Ready condition."""
    for value in ("true", "false"):
        count = sum(1 for ready in RUNTIME.ready_by_owner.values() if ready == value)
        APISERVICES.labels(ready=value).set(count)


def event_sink(body: Mapping[str, Any]) -> Any:
    """Return a function that posts rate-limited Events about this ApiService."""
    reference = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ApiService",
        "metadata": {
            "name": body["metadata"]["name"],
            "namespace": body["metadata"]["namespace"],
            "uid": body["metadata"]["uid"],
        },
    }
    uid = str(body["metadata"]["uid"])

    def post(*, type: str, reason: str, message: str) -> None:
        if RUNTIME.events.allow(uid, type, reason, message):
            kopf.event(cast(kopf.Body, reference), type=type, reason=reason, message=message)

    return post


@kopf.on.resume(GROUP, VERSION, PLURAL, id="resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="update")
async def apiservice_changed(body: kopf.Body, reason: str, **kwargs: Any) -> None:
    """Reconcile an ApiService that was created, changed, or found at start."""
    HEALTH.mark_indexed()
    if RUNTIME.resync_task is None:
        RUNTIME.resync_task = asyncio.get_running_loop().create_task(resync_forever(kwargs))
    # Kopf's reason (create, update, resume) names the handler in the logs.
    await reconcile_now(plain(body), kwargs, handler=reason)


async def resync_forever(indices: Mapping[str, Any]) -> None:
    """Schedule a pass of every ApiService every `RUNTIME.resync_seconds`.

    Watch events cover nearly every change, but not all: a child whose owner label was removed
    leaves the index without an event that names its ApiService. A pass of a stack that is as
    it should be makes no API request, so the resync costs only CPU time.
    """
    while True:
        await asyncio.sleep(RUNTIME.resync_seconds)
        keys = list(indices["apiservices"])
        logger.debug("resync", apiservices=len(keys))
        for key in keys:
            schedule(key, indices, cause="resync")


@kopf.on.event(GROUP, VERSION, PLURAL, id="deleted")
async def apiservice_deleted(
    *, event: kopf.RawEvent, namespace: str | None, name: str, uid: str, body: kopf.Body, **_: Any
) -> None:
    """Forget a deleted ApiService; garbage collection removes the children it owns."""
    # Kopf calls an on.delete handler only while a finalizer holds the object, and a finalizer
    # would block deletion whenever the operator is down, so the DELETED watch event is used.
    if event.get("type") != "DELETED":
        return
    key = (namespace or "", name)
    RUNTIME.ready_by_owner.pop(key, None)
    RUNTIME.retry_delay.pop(key, None)
    RUNTIME.events.forget(uid)
    if RUNTIME.reconciler is not None:
        RUNTIME.reconciler.forget(uid)
    refresh_readiness_gauge()
    logger.info("apiservice deleted; retained data is kept", **log_fields(body, "delete"))


# Children and references: a change leads to a pass of the ApiService concerned.


def schedule(key: OwnerKey, indices: Mapping[str, Any], *, cause: str) -> None:
    """Start a pass for an ApiService unless one is already waiting to run."""
    if key in RUNTIME.pending:
        return
    stores = indices["apiservices"].get(key)
    if not stores:
        return
    RUNTIME.pending.add(key)
    asyncio.get_running_loop().create_task(run_scheduled(key, indices, cause=cause))


async def run_scheduled(key: OwnerKey, indices: Mapping[str, Any], *, cause: str) -> None:
    """Run a scheduled pass with the freshest body, retrying transient failures with backoff."""
    stores = indices["apiservices"].get(key)
    if not stores:
        RUNTIME.pending.discard(key)
        return
    body = next(iter(stores))
    try:
        await reconcile_now(body, indices, handler=cause)
    except kopf.TemporaryError as error:
        # reconcile_now has logged the failure and chosen the delay.
        await asyncio.sleep(error.delay or FIRST_RETRY_SECONDS)
        schedule(key, indices, cause=cause)


async def child_changed(
    *, event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, **kwargs: Any
) -> None:
    """Repair or re-read an ApiService's child that changed or disappeared."""
    # Events without a type come from the initial listing: resume handles those ApiServices.
    # ADDED counts, since a child that reappears (a restored Secret) may unblock a pass.
    if event.get("type") is None:
        return
    schedule((namespace or "", labels[OWNER_LABEL]), kwargs, cause="child")


for _info in CHILD_KINDS.values():
    kopf.on.event(
        _info.group, _info.version, _info.plural, id=f"child_{_info.plural}", labels=CHILD_LABELS
    )(child_changed)


async def reference_changed(
    *, event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, **kwargs: Any
) -> None:
    """Reconcile every ApiService in the namespace whose spec names this Secret or ConfigMap."""
    # Kopf calls this only after its initial listing, and kube-controller-manager puts the
    # ConfigMap kube-root-ca.crt in every namespace (Kubernetes 1.21 and later), so the first
    # call shows /readyz that the listing is complete.
    HEALTH.mark_indexed()
    if event.get("type") is None:
        return
    kind = str(body.get("kind"))
    for (owner_namespace, owner_name), stores in kwargs["apiservices"].items():
        if owner_namespace != namespace:
            continue
        for owner in stores:
            if refers_to(owner.get("spec") or {}, kind, name):
                schedule((owner_namespace, owner_name), kwargs, cause="reference")


def refers_to(spec: Mapping[str, Any], kind: str, name: str) -> bool:
    """Tell whether a spec names a Secret or ConfigMap; an invalid spec names nothing."""
    try:
        parsed = ApiServiceSpec.model_validate(spec)
    except ValueError:
        return False
    return any(ref.kind == kind and ref.name == name for ref in spec_references(parsed))


kopf.on.event("", "v1", "secrets", id="reference_secrets_changed")(reference_changed)
kopf.on.event("", "v1", "configmaps", id="reference_configmaps_changed")(reference_changed)
