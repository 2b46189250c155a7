"""The Ready, Reconciling and Stalled conditions, as kstatus and Argo CD read them.

`Ready` is always present. `Reconciling` is True while work is in flight. `Stalled` is True
when only a change from the user can unblock progress, and the two are never True together.
A condition's `lastTransitionTime` moves only when its status changes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apiservice_operator.reconcile.errors import Reason

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, RECONCILING, STALLED)


class Health(enum.Enum):
    """Outcome of one reconcile pass, from which all three conditions follow."""

    READY = "ready"
    PROGRESSING = "progressing"
    STALLED = "stalled"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a pass, with the reason and message shown to the user."""

    health: Health
    reason: Reason
    message: str


def desired_conditions(verdict: Verdict) -> dict[str, tuple[str, str, str]]:
    """Map each condition type to its (status, reason, message) for a verdict."""
    if verdict.health is Health.READY:
        return {
            READY: ("True", verdict.reason.value, verdict.message),
            RECONCILING: ("False", Reason.RECONCILED.value, "All components are ready."),
            STALLED: ("False", Reason.RECONCILED.value, "Nothing blocks progress."),
        }
    if verdict.health is Health.PROGRESSING:
        return {
            READY: ("False", verdict.reason.value, verdict.message),
            RECONCILING: ("True", Reason.PROGRESSING.value, verdict.message),
            STALLED: ("False", Reason.PROGRESSING.value, "Nothing blocks progress."),
        }
    if verdict.health is Health.STALLED:
        return {
            READY: ("False", verdict.reason.value, verdict.message),
            RECONCILING: (
                "False",
                Reason.STALLED.value,
                "Waiting for a change that unblocks progress: see the Stalled condition.",
            ),
            STALLED: ("True", verdict.reason.value, verdict.message),
        }
    return {
        READY: ("False", verdict.reason.value, verdict.message),
        RECONCILING: ("False", Reason.SUSPENDED.value, verdict.message),
        STALLED: ("False", Reason.SUSPENDED.value, verdict.message),
    }


def merge_conditions(
    current: Sequence[Mapping[str, Any]],
    verdict: Verdict,
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Build the new condition list, keeping `lastTransitionTime` where the status is unchanged."""
    previous = {condition.get("type"): condition for condition in current}
    merged = []
    for condition_type, (status, reason, message) in desired_conditions(verdict).items():
        old = previous.get(condition_type)
        unchanged = old is not None and old.get("status") == status
        merged.append(
            {
                "type": condition_type,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": old["lastTransitionTime"] if unchanged and old else now,
                "reason": reason,
                "message": message,
            }
        )
    return merged
