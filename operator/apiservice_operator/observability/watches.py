"""Start times of Kopf's watch requests, the heartbeat of each watch stream for the liveness probe.

Kopf ends every watch request after `settings.watching.server_timeout` seconds (the server
closes it) or after `client_timeout` at the latest (aiohttp cancels it), and starts the next
request for the same resource about 0.1 s later, on an idle cluster too. After a connection
error it watches again at once. After a 410 Gone response it lists the resource first, and it
repeats a list that fails with a connection error. So the start of a watch request, or of a list
request for a resource that is watched, is a heartbeat of its stream that costs no API request.

Kopf 1.45 has no hook for its watch requests and logs a routine restart nowhere. A login handler
may return `kopf.AiohttpSession`, an aiohttp session that Kopf then uses for all its requests,
so the operator builds that session itself, from the same `kopf.ConnectionInfo` and with the
same connector options as Kopf's own session, and adds aiohttp's request tracing to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import kopf
import structlog

logger = structlog.get_logger(__name__)


class WatchTracker:
    """Start times of the latest request of each watch stream, keyed by the request's URL path.

    The path names the resource and, for a namespaced watch, the namespace. The tracker is
    written on the operator's event loop and read by the health server's thread.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}

    def record(self, path: str, *, watch: bool) -> None:
        """Record that a request for this path starts now.

        A list request counts only for a path that was watched before: the same kind of request
        reads discovery documents and single objects, which are not streams.
        """
        with self._lock:
            if watch or path in self._started:
                self._started[path] = self.clock()

    def ages(self) -> dict[str, float]:
        """Return the seconds since the latest request of each watch stream started."""
        now = self.clock()
        with self._lock:
            return {path: now - started for path, started in self._started.items()}

    def trace_config(self) -> aiohttp.TraceConfig:
        """Build an aiohttp trace configuration that records when list and watch requests start."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_request_start)
        return config

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        if params.method.upper() == "GET":
            self.record(params.url.path, watch=params.url.query.get("watch") == "true")


WATCH_STREAMS = WatchTracker()


def traced_session(info: kopf.ConnectionInfo, tracker: WatchTracker) -> aiohttp.ClientSession:
    """Build the aiohttp session that Kopf would build for these credentials, with tracing."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[tracker.trace_config()],
    )


def connection_info(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Read the credentials as Kopf's built-in login does without a client library installed.

    The operator's image installs neither pykube-ng nor the kubernetes client, so these are the
    two logins Kopf would use there: the pod's service account, or else the kubeconfig.
    """
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return info


async def login_with_watch_tracking(**kwargs: Any) -> kopf.AiohttpSession | None:
    """Log in to the API server with a session that records the start of every watch request."""
    info = connection_info(**kwargs)
    if info is None:
        logger.error(
            "no credentials found: mount a service account token, or set KUBECONFIG to a "
            "kubeconfig file"
        )
        return None
    logger.info("logged in to the API server", server=info.server)
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=traced_session(info, WATCH_STREAMS),
    )
