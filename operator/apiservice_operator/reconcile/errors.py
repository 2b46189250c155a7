"""Failures of a reconcile pass, split by whether waiting can fix them."""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Reasons of the Ready, Reconciling and Stalled conditions, as CamelCase words."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    COMPONENTS_NOT_READY = "ComponentsNotReady"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    MISSING_REFERENCE = "MissingReference"
    FORBIDDEN = "Forbidden"
    IMMUTABLE_FIELD = "ImmutableField"
    REJECTED = "Rejected"
    CREDENTIALS_LOST = "CredentialsLost"
    TRANSIENT_ERROR = "TransientError"
    RECONCILED = "Reconciled"
    STALLED = "Stalled"


class StalledError(Exception):
    """A failure that retrying cannot fix: the user must change the spec or the cluster."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TransientError(Exception):
    """A failure that may pass by itself, such as a conflict, a timeout or a 5xx response."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
