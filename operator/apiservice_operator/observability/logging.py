"""structlog configuration for the operator and for Kopf's own log records.

Every record, ours and Kopf's, goes through the same processors: JSON lines in a cluster, and
aligned, coloured console output on a terminal. Kopf attaches the object a record is about as
`k8s_ref`; it becomes the `namespace` and `name` fields, the same ones our reconciles bind.
A redaction step removes passwords from URLs, drops fields named like secrets and the data of
Secret objects, also inside nested values and rendered tracebacks. It cannot recognize a bare
secret value inside a message, so no code may put one there.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor

# user:password@ inside a URL: the password is replaced, the rest of the URL is kept. The
# password runs to the last "@" before a space or a quote, because users put unescaped "/", ":"
# and "@" in passwords. A later "@" in the same URL, in its query for example, hides more text
# than the password, which is the safe side.
URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s\"'<>]*):[^\s\"'<>]*@"
)
SECRET_FIELD = re.compile(r"password|secret|token|api[_-]?key|credential", re.IGNORECASE)
REDACTED = "<redacted>"
# Fields of a Secret object that contain its values; its other fields, such as metadata, are kept.
SECRET_DATA_KEYS = ("data", "stringData")


def redact_text(text: str) -> str:
    """Replace the password of every URL in a text."""
    return URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)


def redact_value(key: str, value: Any) -> Any:
    """Redact one field: by its secret-looking name, or else inside its text, dicts and lists."""
    if SECRET_FIELD.search(key) and key != "credentials_secret":
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        secret = value.get("kind") == "Secret"
        return {
            item_key: REDACTED
            if secret and item_key in SECRET_DATA_KEYS
            else redact_value(str(item_key), item)
            for item_key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value("", item) for item in value]
    if isinstance(value, tuple):
        # A tuple stays a tuple: structlog reads exc_info as (type, exception, traceback).
        return tuple(redact_value("", item) for item in value)
    return value


def redact(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Drop secret-looking fields, a Secret's data, and URL passwords anywhere in a record."""
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(key, value)
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
            # Again after the traceback became text, since exception messages may carry URLs.
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP clients of Kopf and lightkube log every request and connection step at DEBUG,
    # which would bury the operator's own DEBUG lines.
    for name in ("aiohttp", "httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    logging.getLogger("kopf.objects").addFilter(quiet_event_handlers)


# Success lines of the watch handlers in handlers.py, by handler id: child_*, reference_*, and
# the one that notices deleted ApiServices.
WATCH_HANDLER_LINES = ("Handler 'child_", "Handler 'reference_", "Handler 'deleted'")


def quiet_event_handlers(record: logging.LogRecord) -> bool:
    """Demote Kopf's per-event success lines of watch handlers to DEBUG.

    Every status change of every child runs a watch handler, so a line for each success would
    bury the lines that matter. Failures keep their level.
    """
    message = record.getMessage()
    if (
        record.levelno == logging.INFO
        and message.startswith(WATCH_HANDLER_LINES)
        and "succeeded" in message
    ):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("kopf.objects").isEnabledFor(logging.DEBUG)
    return True
