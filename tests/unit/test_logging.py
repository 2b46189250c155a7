"""Redaction of secrets and the shape of the JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from apiservice_operator.observability.logging import (
    REDACTED,
    configure_logging,
    quiet_event_handlers,
    redact,
    redact_text,
)

PASSWORD = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"postgresql://orders:{PASSWORD}@db.example:5432/orders",
            f"postgresql://orders:{REDACTED}@db.example:5432/orders",
        ),
        (
            f"redis://:{PASSWORD}@cache.example:6379/0",
            f"redis://:{REDACTED}@cache.example:6379/0",
        ),
        (
            f"rediss://:{PASSWORD}@cache.example:6380/0?ssl_cert_reqs=required",
            f"rediss://:{REDACTED}@cache.example:6380/0?ssl_cert_reqs=required",
        ),
        # Unescaped "/", ":" and "@" in the password.
        (
            "postgresql://orders:ab/c:d@e@db.example/orders",
            f"postgresql://orders:{REDACTED}@db.example/orders",
        ),
        (
            f"connect to 'postgresql://u:{PASSWORD}@h/db' failed, see 'mailto:ops@example.org'",
            f"connect to 'postgresql://u:{REDACTED}@h/db' failed, see 'mailto:ops@example.org'",
        ),
        (
            f"two URLs: redis://:{PASSWORD}@a:6379/0 and postgresql://u:{PASSWORD}@b/db",
            f"two URLs: redis://:{REDACTED}@a:6379/0 and postgresql://u:{REDACTED}@b/db",
        ),
        ("https://api.example:8443/healthz", "https://api.example:8443/healthz"),
        ("postgresql://orders@db.example/orders", "postgresql://orders@db.example/orders"),
    ],
)
def test_redact_text_masks_url_passwords(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_drops_secret_named_fields() -> None:
    event = {"event": "x", "password": PASSWORD, "jwt_secret": PASSWORD, "api_key": PASSWORD}

    redacted = redact(None, "info", event)

    assert redacted["password"] == REDACTED
    assert redacted["jwt_secret"] == REDACTED
    assert redacted["api_key"] == REDACTED
    assert redacted["event"] == "x"


def test_redact_walks_nested_values() -> None:
    event = {
        "event": "applied",
        "urls": [f"redis://:{PASSWORD}@cache:6379/0"],
        "settings": {"DATABASE_URL": f"postgresql://u:{PASSWORD}@db/app", "REDIS_PASSWORD": "x"},
        "pair": ("plain", f"postgresql://u:{PASSWORD}@db/app"),
    }

    redacted = redact(None, "info", event)

    assert PASSWORD not in repr(redacted)
    assert redacted["settings"]["REDIS_PASSWORD"] == REDACTED
    assert isinstance(redacted["pair"], tuple)
    assert redacted["pair"][0] == "plain"


def test_redact_hides_secret_object_data() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "orders-postgres"},
        "data": {"url": "cG9zdGdyZXNxbDovL3U6cEBo"},
        "stringData": {"url": "plain-text-value"},
    }

    redacted = redact(None, "debug", {"event": "seen", "body": secret})

    assert redacted["body"]["data"] == REDACTED
    assert redacted["body"]["stringData"] == REDACTED
    assert redacted["body"]["metadata"] == {"name": "orders-postgres"}


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Configure JSON logging at DEBUG into a buffer, and restore the previous setup afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(json_output=True, level="DEBUG")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line]

    try:
        yield read
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("kopf.objects").removeFilter(quiet_event_handlers)
        structlog.reset_defaults()


def test_json_lines_carry_bound_fields(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    fields = {"namespace": "shop", "name": "orders", "uid": "u-1", "generation": 2}
    with structlog.contextvars.bound_contextvars(**fields, handler="update"):
        structlog.get_logger("test").info("reconciled", applied=3)

    (line,) = json_logs()

    assert line["event"] == "reconciled"
    assert line["level"] == "info"
    assert line["logger"] == "test"
    assert line["timestamp"].endswith("Z")
    assert line["applied"] == 3
    for key, value in {**fields, "handler": "update"}.items():
        assert line[key] == value


def test_kopf_records_get_object_fields(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    reference = {"namespace": "shop", "name": "orders", "uid": "u-1", "kind": "ApiService"}
    logging.getLogger("kopf.objects").warning(
        "Handler 'update' failed temporarily.", extra={"k8s_ref": reference}
    )

    (line,) = json_logs()

    assert line["namespace"] == "shop"
    assert line["name"] == "orders"
    assert line["uid"] == "u-1"
    assert line["level"] == "warning"


def test_tracebacks_are_redacted(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    logger = structlog.get_logger("test")
    try:
        raise ConnectionError(f"cannot reach postgresql://u:{PASSWORD}@db/app")
    except ConnectionError:
        logger.exception("reconcile failed")
    try:
        raise ConnectionError(f"cannot reach redis://:{PASSWORD}@cache:6379/0")
    except ConnectionError:
        logging.getLogger("kopf.objects").exception("Handler 'update' failed with an exception.")

    lines = json_logs()

    assert len(lines) == 2
    for line in lines:
        assert "ConnectionError" in line["exception"]
        assert PASSWORD not in json.dumps(line)


def test_debug_level_reaches_kopf(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("kopf.objects").debug("Updating diff: ()")

    (line,) = json_logs()

    assert line["event"] == "Updating diff: ()"
    assert line["level"] == "debug"


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Handler 'child_deployments' succeeded.", logging.DEBUG),
        ("Handler 'reference_secrets_changed' succeeded.", logging.DEBUG),
        ("Handler 'deleted' succeeded.", logging.DEBUG),
        ("Handler 'update' succeeded.", logging.INFO),
        ("Handler 'child_deployments' failed temporarily: timed out.", logging.INFO),
    ],
)
def test_watch_handler_success_is_debug(message: str, level: int) -> None:
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, (), None)

    quiet_event_handlers(record)

    assert record.levelno == level
    assert record.levelname == logging.getLevelName(level)
