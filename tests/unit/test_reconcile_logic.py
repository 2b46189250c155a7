"""Pure parts of the reconcile layer: drift comparison, conditions, status roll-up, inputs."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError
from lightkube.models.meta_v1 import Status

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.reconcile import credentials as creds
from apiservice_operator.reconcile.api import translate_error
from apiservice_operator.reconcile.comparison import contains
from apiservice_operator.reconcile.conditions import (
    Health,
    Verdict,
    desired_conditions,
    merge_conditions,
)
from apiservice_operator.reconcile.errors import Reason, StalledError, TransientError
from apiservice_operator.reconcile.inputs import check_references, digest_data
from apiservice_operator.reconcile.status import deployment_progress, merge_patch, roll_up


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ({"l": [{"x": 1, "y": 2}]}, {"l": [{"x": 1}]}, True),
        ({"l": [{"x": 1}, {"x": 2}]}, {"l": [{"x": 1}]}, False),
        ({"l": [{"x": 2}]}, {"l": [{"x": 1}]}, False),
        (None, {"a": 1}, False),
        ({"a": {}}, {"a": {}}, True),
        ({"a": "1"}, {"a": 1}, False),
    ],
)
def test_contains_cases(live: Any, desired: Any, expected: bool) -> None:
    assert contains(live, desired) is expected


VERDICTS = {
    Health.READY: Verdict(Health.READY, Reason.READY, "ok"),
    Health.PROGRESSING: Verdict(Health.PROGRESSING, Reason.COMPONENTS_NOT_READY, "wait"),
    Health.STALLED: Verdict(Health.STALLED, Reason.MISSING_REFERENCE, "missing"),
    Health.SUSPENDED: Verdict(Health.SUSPENDED, Reason.SUSPENDED, "suspended"),
}


@pytest.mark.parametrize("health", list(Health))
def test_conditions_never_reconciling_and_stalled(health: Health) -> None:
    conditions = desired_conditions(VERDICTS[health])
    assert set(conditions) == {"Ready", "Reconciling", "Stalled"}
    both_true = conditions["Reconciling"][0] == "True" == conditions["Stalled"][0]
    assert not both_true


def test_ready_true_only_when_ready() -> None:
    for health, verdict in VERDICTS.items():
        ready = desired_conditions(verdict)["Ready"][0]
        assert (ready == "True") is (health is Health.READY)


def test_transition_time_kept_without_change() -> None:
    first = merge_conditions([], VERDICTS[Health.PROGRESSING], generation=1, now="T1")
    second = merge_conditions(first, VERDICTS[Health.PROGRESSING], generation=2, now="T2")
    assert [c["lastTransitionTime"] for c in second] == ["T1", "T1", "T1"]
    assert all(c["observedGeneration"] == 2 for c in second)


def test_transition_time_moves_on_change() -> None:
    first = merge_conditions([], VERDICTS[Health.PROGRESSING], generation=1, now="T1")
    second = merge_conditions(first, VERDICTS[Health.READY], generation=1, now="T2")
    by_type = {c["type"]: c for c in second}
    assert by_type["Ready"]["lastTransitionTime"] == "T2"
    assert by_type["Reconciling"]["lastTransitionTime"] == "T2"
    # Stalled stays False, so its transition time stays.
    assert by_type["Stalled"]["lastTransitionTime"] == "T1"


def deployment(name: str, component: str, **status: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "generation": 2,
            "labels": {"app.kubernetes.io/component": component},
        },
        "spec": {"replicas": 2},
        "status": status,
    }


def test_rollout_complete() -> None:
    live = deployment(
        "x-api",
        "api",
        observedGeneration=2,
        replicas=2,
        updatedReplicas=2,
        readyReplicas=2,
        availableReplicas=2,
    )
    assert deployment_progress(live) == (2, 2, True)


def test_rollout_pending_on_old_generation() -> None:
    live = deployment(
        "x-api",
        "api",
        observedGeneration=1,
        replicas=2,
        updatedReplicas=2,
        readyReplicas=2,
        availableReplicas=2,
    )
    assert deployment_progress(live)[2] is False


def test_rollout_pending_with_old_pods() -> None:
    live = deployment(
        "x-api",
        "api",
        observedGeneration=2,
        replicas=3,
        updatedReplicas=2,
        readyReplicas=3,
        availableReplicas=3,
    )
    assert deployment_progress(live)[2] is False


def test_roll_up_counts_missing_as_waiting() -> None:
    rendered = [deployment("x-api", "api"), deployment("x-worker", "worker")]
    live = {
        ("Deployment", "x-api"): deployment(
            "x-api",
            "api",
            observedGeneration=2,
            replicas=2,
            updatedReplicas=2,
            readyReplicas=2,
            availableReplicas=2,
        )
    }
    components, waiting = roll_up(rendered, live)
    assert components["api"] == {"desiredReplicas": 2, "readyReplicas": 2}
    assert components["worker"] == {"desiredReplicas": 2, "readyReplicas": 0}
    assert waiting == ["worker 0/2"]


def test_merge_patch_removes_keys() -> None:
    old = {"a": 1, "b": {"c": 1, "d": 2}, "e": 5}
    new = {"a": 1, "b": {"c": 2}}
    assert merge_patch(old, new) == {"b": {"c": 2, "d": None}, "e": None}


def test_merge_patch_empty_when_equal() -> None:
    status = {"observedGeneration": 3, "conditions": [{"type": "Ready"}]}
    assert merge_patch(status, dict(status)) == {}


EXTERNAL = {
    "image": "x",
    "postgres": {"external": {"urlSecretRef": {"name": "pg", "key": "url"}}},
    "env": [
        {
            "name": "A",
            "valueFrom": {"configMapKeyRef": {"name": "opt", "key": "a", "optional": True}},
        }
    ],
}


def test_missing_secret_names_field() -> None:
    spec = ApiServiceSpec.model_validate(EXTERNAL)
    with pytest.raises(StalledError) as raised:
        check_references("ns", spec, {})
    assert raised.value.reason is Reason.MISSING_REFERENCE
    assert "Secret ns/pg" in raised.value.message
    assert "spec.postgres.external.urlSecretRef" in raised.value.message


def test_missing_key_names_key() -> None:
    spec = ApiServiceSpec.model_validate(EXTERNAL)
    lookup = {("Secret", "pg"): digest_data({"other": "x"})}
    with pytest.raises(StalledError) as raised:
        check_references("ns", spec, lookup)
    assert "'url'" in raised.value.message


def test_present_references_give_digests() -> None:
    spec = ApiServiceSpec.model_validate(EXTERNAL)
    lookup = {("Secret", "pg"): digest_data({"url": "postgresql://u:p@h/db"})}
    found = check_references("ns", spec, lookup)
    assert list(found) == ["Secret/pg/url"]
    assert "postgresql" not in found["Secret/pg/url"]


def test_generated_values_are_kept() -> None:
    existing = {creds.POSTGRES_PASSWORD: "kept"}
    values = creds.complete(existing)
    assert values[creds.POSTGRES_PASSWORD] == "kept"
    assert len(values[creds.REDIS_PASSWORD]) == creds.SECRET_LENGTH
    assert values[creds.REDIS_PASSWORD] != values[creds.JWT_SECRET]


def test_generated_values_are_url_safe() -> None:
    value = creds.generate_value()
    assert value.isalnum()


def api_error(code: int, message: str) -> ApiError:
    return ApiError(status=Status(code=code, message=message))


@pytest.mark.parametrize(
    ("code", "message", "kind", "reason"),
    [
        (403, "forbidden", StalledError, Reason.FORBIDDEN),
        (422, "field is immutable", StalledError, Reason.IMMUTABLE_FIELD),
        (422, "invalid value", StalledError, Reason.REJECTED),
        (409, "conflict", TransientError, None),
        (500, "boom", TransientError, None),
        (429, "slow down", TransientError, None),
    ],
)
def test_api_errors_are_classified(
    code: int, message: str, kind: type[Exception], reason: Reason | None
) -> None:
    error = translate_error(api_error(code, message), action="applying", target="Deployment a/b")
    assert isinstance(error, kind)
    if reason is not None:
        assert isinstance(error, StalledError)
        assert error.reason is reason
    assert "Deployment a/b" in str(error)
