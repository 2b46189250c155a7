"""structlog configuration for the operator and for Kopf's own log records.

Every record, ours and Kopf's, goes through the same processors: JSON lines in a cluster, and
aligned, coloured console output on a terminal. Kopf attaches the object a record is about as
`k8s_ref`; it becomes the `namespace` and `name` fields, the same ones our reconciles bind.
A redaction step removes passwords from URLs and drops fields named like secrets, so a secret
value never reaches a log even when it slips into a message.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor

# user:password@ inside a URL: the password is replaced, the rest of the URL is kept.
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
SECRET_FIELD = re.compile(r"password|secret|token|api[_-]?key|credential", re.IGNORECASE)
REDACTED = "<redacted>"


def redact_text(text: str) -> str:
    """Replace the password of every URL in a text."""
    return URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)


def redact(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Drop secret-looking fields and mask URL passwords in every string value."""
    for key, value in list(event_dict.items()):
        if SECRET_FIELD.search(key) and key != "credentials_secret":
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


def add_kopf_reference(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Turn the `k8s_ref` that Kopf attaches to its records into namespace and name fields."""
    record = event_dict.get("_record")
    reference = getattr(record, "k8s_ref", None)
    if isinstance(reference, MutableMapping):
        event_dict.setdefault("namespace", reference.get("namespace"))
        event_dict.setdefault("name", reference.get("name"))
        event_dict.setdefault("uid", reference.get("uid"))
    return event_dict


def shared_processors() -> list[Processor]:
    """Return the processors that both structlog and stdlib records pass through."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_kopf_reference,
        redact,
    ]


def configure_logging(*, json_output: bool, level: str = "INFO") -> None:
    """Route structlog and stdlib logging (Kopf's included) to one handler on stderr."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Kopf's HTTP client logs every request at DEBUG; keep those out unless asked for.
    logging.getLogger("aiohttp").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("httpx2").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("kopf.objects").addFilter(quiet_event_handlers)


def quiet_event_handlers(record: logging.LogRecord) -> bool:
    """Demote Kopf's per-event success lines of watch handlers to DEBUG.

    Every status change of every child runs a watch handler, and a line for each success would
    bury the lines that matter; failures keep their level.
    """
    message = record.getMessage()
    if (
        record.levelno == logging.INFO
        and message.startswith("Handler '")
        and ("succeeded" in message and ("'child_" in message or "'reference_" in message))
    ):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("kopf.objects").isEnabledFor(logging.DEBUG)
    return True
