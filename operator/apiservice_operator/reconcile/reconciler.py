"""One reconcile pass of an ApiService: render, apply what drifted, prune, report status.

The pass is level-based: it starts from the spec and what the watches have delivered, never from
the event that triggered it, so it may run any number of times with the same result. Children
that already contain every rendered field are not written, and the status is patched only when
it changed, so an idle ApiService costs no API request at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pydantic
import structlog

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.observability.metrics import (
    CHILD_APPLIES,
    RECONCILE_DURATION,
    RECONCILES,
)
from apiservice_operator.reconcile import credentials as creds
from apiservice_operator.reconcile.api import KubeApi
from apiservice_operator.reconcile.comparison import (
    contains,
    with_live_replicas,
    with_render_digest,
)
from apiservice_operator.reconcile.conditions import Health, Verdict, merge_conditions
from apiservice_operator.reconcile.errors import Reason, StalledError, TransientError
from apiservice_operator.reconcile.inputs import Digests, check_references
from apiservice_operator.reconcile.status import merge_patch, readiness_verdict, roll_up
from apiservice_operator.render import (
    Credentials,
    Owner,
    checksum,
    child_names,
    credentials_values,
    render_children,
    render_settings_configmap,
    stack_url,
)

logger = structlog.get_logger(__name__)

ChildKey = tuple[str, str]  # (kind, name)

# Kinds that may be deleted and created again when the API server rejects an update of a child
# that someone edited by hand. Secrets and PersistentVolumeClaims hold data and never are.
RECREATABLE_KINDS = frozenset(
    {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "Ingress"}
)


class EventSink(Protocol):
    """Records a Kubernetes Event on the ApiService being reconciled."""

    def __call__(self, *, type: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class ClusterView:
    """Snapshot of the watched objects that one ApiService's pass needs.

    `children` contains the live objects labelled as this ApiService's children, by (kind, name).
    `references` contains the digests of the Secrets and ConfigMaps in its namespace, by
    (kind, name).
    """

    children: Mapping[ChildKey, Mapping[str, Any]]
    references: Mapping[ChildKey, Digests]


@dataclass
class Outcome:
    """Record of one pass: its verdict, the children it wrote, and whether it wrote status."""

    verdict: Verdict
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_written: bool = False


def utc_now() -> str:
    """Return the current time in RFC 3339, at the second precision that conditions use."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_spec(raw: Mapping[str, Any] | None) -> ApiServiceSpec:
    """Validate the spec again in the operator, for rules the schema cannot express."""
    try:
        return ApiServiceSpec.model_validate(raw or {})
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"spec.{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise StalledError(Reason.INVALID_SPEC, f"Invalid spec: {problems}.") from error


class Reconciler:
    """Runs reconcile passes and remembers the last status it wrote, to skip equal writes."""

    def __init__(self, api: KubeApi, *, clock: Callable[[], str] = utc_now) -> None:
        self.api = api
        self.clock = clock
        self.written_status: dict[str, dict[str, Any]] = {}

    async def reconcile(
        self, body: Mapping[str, Any], view: ClusterView, events: EventSink
    ) -> Outcome:
        """Run one pass for an ApiService body and write its status when it changed."""
        started = time.monotonic()
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        generation = int(meta.get("generation", 1))
        # The status we wrote last is newer than a body that the watch has not refreshed yet.
        old_status = dict(self.written_status.get(owner.uid) or body.get("status") or {})
        outcome = Outcome(verdict=Verdict(Health.PROGRESSING, Reason.PROGRESSING, "Starting."))
        extra: dict[str, Any] = {}
        transient: TransientError | None = None
        try:
            spec = parse_spec(body.get("spec"))
            if spec.suspend:
                outcome.verdict = Verdict(
                    Health.SUSPENDED,
                    Reason.SUSPENDED,
                    "spec.suspend is true: no changes are applied until it is set to false.",
                )
            else:
                extra = await self.converge(owner, spec, view, outcome, events)
        except StalledError as error:
            outcome.verdict = Verdict(Health.STALLED, error.reason, error.message)
            events(type="Warning", reason=error.reason.value, message=error.message)
            logger.warning("reconcile stalled", reason=error.reason.value, error=error.message)
        except TransientError as error:
            transient = error
            outcome.verdict = Verdict(Health.PROGRESSING, Reason.TRANSIENT_ERROR, error.message)
            events(type="Warning", reason=Reason.TRANSIENT_ERROR.value, message=error.message)

        new_status = self.build_status(old_status, outcome.verdict, generation, extra)
        await self.write_status(owner, old_status, new_status, outcome)
        RECONCILE_DURATION.observe(time.monotonic() - started)
        result = "error" if transient else outcome.verdict.health.value
        RECONCILES.labels(result=result).inc()
        if transient is not None:
            raise transient
        return outcome

    async def converge(
        self,
        owner: Owner,
        spec: ApiServiceSpec,
        view: ClusterView,
        outcome: Outcome,
        events: EventSink,
    ) -> dict[str, Any]:
        """Apply every child that drifted, prune the ones no longer wanted, and roll up status."""
        names = child_names(owner.name)
        references = check_references(owner.namespace, spec, view.references)

        # Credentials come first: every other child depends on them, and they are never replaced.
        cached_secret = view.children.get(("Secret", names.credentials))
        existing = await creds.read_existing(
            self.api, owner.namespace, names.credentials, cached_secret
        )
        values = creds.complete(existing)
        credentials = Credentials(
            postgres_password=values[creds.POSTGRES_PASSWORD],
            redis_password=values[creds.REDIS_PASSWORD],
            jwt_secret=values[creds.JWT_SECRET],
        )

        # The checksum on the pod templates covers everything the pods read at start: the
        # settings, the credentials with the URLs built from them, and the referenced objects.
        try:
            settings = render_settings_configmap(owner, spec)
            secret_values = credentials_values(owner, spec, credentials)
            inputs_checksum = checksum(settings.get("data") or {}, secret_values, references)
            rendered = render_children(owner, spec, credentials, inputs_checksum)
            # The digest covers the render only, so a change of the live replica count alone
            # never leads to a write.
            desired = [
                with_live_replicas(
                    with_render_digest(child),
                    view.children.get((child["kind"], child["metadata"]["name"])),
                )
                for child in rendered
            ]
        except ValueError as error:
            # Render rejects what the schema cannot express, such as an unusable owner name.
            raise StalledError(Reason.INVALID_SPEC, str(error)) from error

        if not existing:
            check_no_orphaned_database(owner, spec, view)
            await self.create_credentials(desired, names.credentials, outcome, events)
        live = await self.apply_drifted(desired, view, outcome, events)
        await self.prune(owner, desired, view, outcome, events)

        deployments = [child for child in desired if child["kind"] == "Deployment"]
        components, waiting = roll_up(deployments, live)
        outcome.verdict = readiness_verdict(waiting)
        return {
            "components": components,
            "url": stack_url(owner, spec),
            "credentialsSecretName": names.credentials,
        }

    async def create_credentials(
        self,
        desired: list[dict[str, Any]],
        name: str,
        outcome: Outcome,
        events: EventSink,
    ) -> None:
        """Create the credentials Secret with a plain create, which never replaces one."""
        secret = next(c for c in desired if c["kind"] == "Secret" and c["metadata"]["name"] == name)
        created = await self.api.create(secret)
        if created is None:
            # Another pass created it between our read and this create: start over from it.
            raise TransientError(f"Secret {name} was created concurrently; reading it again")
        CHILD_APPLIES.labels(kind="Secret", outcome="created").inc()
        outcome.applied.append(f"Secret/{name}")
        events(
            type="Normal", reason="Created", message=f"Created Secret {name} with new credentials."
        )
        logger.info("created credentials secret", child=f"Secret/{name}")

    async def apply_drifted(
        self,
        desired: list[dict[str, Any]],
        view: ClusterView,
        outcome: Outcome,
        events: EventSink,
    ) -> dict[ChildKey, Mapping[str, Any]]:
        """Apply each child whose live copy lacks a rendered field; return the freshest copies."""
        live: dict[ChildKey, Mapping[str, Any]] = dict(view.children)
        for child in desired:
            key = (child["kind"], child["metadata"]["name"])
            label = f"{key[0]}/{key[1]}"
            if label in outcome.applied or contains(live.get(key), child):
                CHILD_APPLIES.labels(kind=key[0], outcome="unchanged").inc()
                continue
            try:
                live[key] = await self.apply_or_recreate(child, existed=key in live, events=events)
            except (StalledError, TransientError):
                CHILD_APPLIES.labels(kind=key[0], outcome="failed").inc()
                raise
            CHILD_APPLIES.labels(kind=key[0], outcome="applied").inc()
            outcome.applied.append(label)
            verb = "Updated" if key in view.children else "Created"
            events(type="Normal", reason=verb, message=f"{verb} {key[0]} {key[1]}.")
            logger.info("applied child", child=label, action=verb.lower())
        return live

    async def apply_or_recreate(
        self, child: dict[str, Any], *, existed: bool, events: EventSink
    ) -> dict[str, Any]:
        """Apply a child, and recreate it when the update is rejected and it stores no data.

        A hand edit can leave a child that no apply can repair, such as a Service port changed
        under the same port name, which makes the merged list invalid. Deleting and creating
        it again restores it, and only kinds without data are treated so.
        """
        try:
            return await self.api.apply(child)
        except StalledError as error:
            kind, name = child["kind"], child["metadata"]["name"]
            repairable = error.reason in (Reason.REJECTED, Reason.IMMUTABLE_FIELD)
            if not (existed and repairable and kind in RECREATABLE_KINDS):
                raise
            logger.warning(
                "recreating a child whose update was rejected",
                child=f"{kind}/{name}",
                error=error.message,
            )
            events(
                type="Warning",
                reason="Recreated",
                message=f"Recreated {kind} {name}: the API server rejected its update.",
            )
            await self.api.delete(kind, child["metadata"]["namespace"], name)
            return await self.api.apply(child)

    async def prune(
        self,
        owner: Owner,
        desired: list[dict[str, Any]],
        view: ClusterView,
        outcome: Outcome,
        events: EventSink,
    ) -> None:
        """Delete children that the spec no longer requests, such as a disabled worker.

        Only objects that this very ApiService controls are deleted: retained data carries no
        ownerReference, so a PersistentVolumeClaim or the credentials Secret is never pruned.
        """
        wanted = {(child["kind"], child["metadata"]["name"]) for child in desired}
        for key, live in view.children.items():
            if key in wanted or not controlled_by(live, owner.uid):
                continue
            await self.api.delete(key[0], owner.namespace, key[1])
            CHILD_APPLIES.labels(kind=key[0], outcome="deleted").inc()
            outcome.deleted.append(f"{key[0]}/{key[1]}")
            events(type="Normal", reason="Deleted", message=f"Deleted {key[0]} {key[1]}.")
            logger.info("deleted child", child=f"{key[0]}/{key[1]}")

    def build_status(
        self,
        old_status: Mapping[str, Any],
        verdict: Verdict,
        generation: int,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Build the full status: conditions for this generation plus the rolled-up fields."""
        status: dict[str, Any] = {
            key: old_status[key]
            for key in ("components", "url", "credentialsSecretName")
            if key in old_status
        }
        status.update(extra)
        status["observedGeneration"] = generation
        status["conditions"] = merge_conditions(
            old_status.get("conditions") or [], verdict, generation=generation, now=self.clock()
        )
        return status

    async def write_status(
        self,
        owner: Owner,
        old_status: Mapping[str, Any],
        new_status: dict[str, Any],
        outcome: Outcome,
    ) -> None:
        """Patch the status subresource unless it already contains exactly this status."""
        patch = merge_patch(old_status, new_status)
        if not patch:
            self.written_status[owner.uid] = new_status
            return
        await self.api.patch_status(owner.namespace, owner.name, patch)
        self.written_status[owner.uid] = new_status
        outcome.status_written = True

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted ApiService."""
        self.written_status.pop(uid, None)


def check_no_orphaned_database(owner: Owner, spec: ApiServiceSpec, view: ClusterView) -> None:
    """Refuse to generate new credentials while a kept database volume needs the old ones.

    PostgreSQL sets the password only when it initialises an empty data directory, so a new
    password would lock the app out of the data on a volume that outlived its Secret.
    """
    if spec.postgres.managed is None:
        return
    names = child_names(owner.name)
    claim = view.children.get(("PersistentVolumeClaim", names.postgres_data))
    if claim is None or (claim.get("metadata") or {}).get("deletionTimestamp"):
        return
    raise StalledError(
        Reason.CREDENTIALS_LOST,
        f"Secret {owner.namespace}/{names.credentials} is missing, and PersistentVolumeClaim "
        f"{owner.namespace}/{names.postgres_data} holds a database set up with its password: "
        f"restore the Secret from a backup, or delete the PersistentVolumeClaim to start with "
        f"an empty database.",
    )


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Tell whether an object's controller ownerReference points at the given uid."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in references)
