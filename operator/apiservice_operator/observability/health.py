"""Liveness and readiness endpoints of the operator: /healthz and /readyz on --health-port.

The server runs aiohttp on its own thread and event loop, so it still responds, with a 500 and
the reason, while the operator's event loop is blocked. A server on that loop could not respond
at all, and the kubelet would only see a timeout.

/healthz (liveness) fails in two cases:

* The event loop is blocked: a heartbeat task on the operator's loop notes the time every
  second, and the probe fails when the last note is older than `loop_stall_limit` seconds.
* A watch stream has stalled: the latest list or watch request of a stream started more than
  twice `settings.watching.client_timeout` seconds ago. Kopf starts a new request for every
  stream at least once per client timeout, also on an idle cluster, and `watches.py` notes each
  start from inside Kopf's own HTTP session, so this check costs no API request. The other
  choice, one cheap request per probe, would show that the API server answers, but not that
  Kopf's watches still run.

/readyz (readiness) succeeds once Kopf's startup handlers have finished (Kopf raises the
`ready_flag` given to `kopf.operator`) and Kopf has called a handler other than an index
function. Kopf calls no such handler before the initial listing of every indexed resource is
complete, and handlers.py marks the first call of its event and ApiService handlers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
import structlog
from aiohttp import web

from apiservice_operator.observability.watches import WATCH_STREAMS, WatchTracker

logger = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 1.0
# A handler that blocks the loop this long also delays the handlers of every other object.
# With the kubelet's default liveness settings (3 failures, 10 s apart) the pod then restarts.
LOOP_STALL_LIMIT_SECONDS = 10.0
# The API server ends a watch without timeoutSeconds after --min-request-timeout (default
# 1800 s) times a random factor from 1 to 2 (k8s.io/apiserver, endpoints/handlers/get.go), so
# Kopf without a client timeout starts a new request at least this often.
UNSET_WATCH_TIMEOUT_SECONDS = 3600.0
SERVER_START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe: whether it passed, why not, and the measured values."""

    passed: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthMonitor:
    """State that the probes check, written on the operator's loop and read by the server thread."""

    settings: kopf.OperatorSettings | None = None
    watches: WatchTracker = WATCH_STREAMS
    clock: Callable[[], float] = time.monotonic
    loop_stall_limit: float = LOOP_STALL_LIMIT_SECONDS
    heartbeat_interval: float = HEARTBEAT_SECONDS
    # Kopf raises this flag after the startup handlers; a threading.Event suits both threads.
    started: threading.Event = field(default_factory=threading.Event)
    indexed: threading.Event = field(default_factory=threading.Event)
    last_beat: float | None = None

    def mark_indexed(self) -> None:
        """Note that Kopf called a handler, so its initial listing is complete."""
        self.indexed.set()

    async def run_heartbeat(self) -> None:
        """Note the time on the operator's event loop every heartbeat interval, until cancelled."""
        while True:
            self.last_beat = self.clock()
            await asyncio.sleep(self.heartbeat_interval)

    def watch_stall_limit(self) -> float:
        """Return the seconds after which a watch stream without a new request has stalled."""
        watching = self.settings.watching if self.settings is not None else None
        timeout = None
        if watching is not None:
            timeout = watching.client_timeout or watching.server_timeout
        return 2 * (timeout or UNSET_WATCH_TIMEOUT_SECONDS)

    def liveness(self) -> ProbeResult:
        """Check that the event loop runs and that every watch stream restarts in time."""
        heartbeat_age = None if self.last_beat is None else self.clock() - self.last_beat
        stream_ages = self.watches.ages()
        limit = self.watch_stall_limit()
        details: dict[str, Any] = {
            "event_loop_heartbeat_age_seconds": rounded(heartbeat_age),
            "watch_streams": len(stream_ages),
            "oldest_watch_request_seconds": rounded(max(stream_ages.values(), default=None)),
            "watch_stall_limit_seconds": limit,
        }
        if heartbeat_age is not None and heartbeat_age > self.loop_stall_limit:
            reason = (
                f"the event loop has not run its heartbeat for {heartbeat_age:.1f} s "
                f"(limit {self.loop_stall_limit:g} s)"
            )
            return ProbeResult(False, reason, details)
        # NOTE: Kopf also stops a watch on purpose when its resource disappears, such as after
        # the ApiService CRD is deleted. That stream counts as stalled here, so the operator
        # restarts once, and after the restart it no longer watches that resource.
        stalled = sorted(path for path, age in stream_ages.items() if age > limit)
        if stalled:
            reason = (
                f"no new watch request for over {limit:g} s on {len(stalled)} stream(s): "
                + ", ".join(stalled)
            )
            return ProbeResult(False, reason, details)
        return ProbeResult(True, "", details)

    def readiness(self) -> ProbeResult:
        """Check that the startup handlers finished and Kopf has listed every indexed resource."""
        details = {"started": self.started.is_set(), "indexed": self.indexed.is_set()}
        if not self.started.is_set():
            return ProbeResult(False, "the startup handlers have not finished", details)
        if not self.indexed.is_set():
            reason = "Kopf has not finished the initial listing of the watched resources"
            return ProbeResult(False, reason, details)
        return ProbeResult(True, "", details)


HEALTH = HealthMonitor()


def rounded(seconds: float | None) -> float | None:
    """Round a duration to milliseconds for the probe's JSON body."""
    return None if seconds is None else round(seconds, 3)


class HealthServer:
    """Serves /healthz and /readyz from its own thread and event loop."""

    def __init__(self, monitor: HealthMonitor, host: str, port: int) -> None:
        self.monitor = monitor
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self._serve, name="health-server", daemon=True)
        self._bound = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: OSError | None = None
        self._last_passed: dict[str, bool] = {}

    def start(self) -> None:
        """Start the server thread and wait until it listens; raise OSError if it cannot bind."""
        self._thread.start()
        if not self._bound.wait(timeout=SERVER_START_TIMEOUT_SECONDS):
            raise TimeoutError(
                f"the health server did not listen on {self.host}:{self.port} within "
                f"{SERVER_START_TIMEOUT_SECONDS:g} s"
            )
        if self._error is not None:
            raise self._error
        logger.info("health server started", address=self.host, port=self.port)

    def stop(self) -> None:
        """Stop the server and wait for its thread to end."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
        logger.info("health server stopped", address=self.host, port=self.port)

    def application(self) -> web.Application:
        """Build the aiohttp application with the two probe routes."""
        app = web.Application()
        app.add_routes([web.get("/healthz", self.get_healthz), web.get("/readyz", self.get_readyz)])
        return app

    async def get_healthz(self, _: web.Request) -> web.Response:
        """Respond to the liveness probe: 200 when alive, 500 with the reason otherwise."""
        result = self.monitor.liveness()
        self.log_change("liveness", result)
        status = 200 if result.passed else 500
        body = {"status": "ok" if result.passed else "failing", "reason": result.reason}
        return web.json_response({**body, **result.details}, status=status)

    async def get_readyz(self, _: web.Request) -> web.Response:
        """Respond to the readiness probe: 200 when ready, 503 with the reason otherwise."""
        result = self.monitor.readiness()
        self.log_change("readiness", result)
        status = 200 if result.passed else 503
        body = {"status": "ready" if result.passed else "not ready", "reason": result.reason}
        return web.json_response({**body, **result.details}, status=status)

    def log_change(self, probe: str, result: ProbeResult) -> None:
        """Log a probe's result when it differs from the previous one, so repeats stay quiet."""
        previous = self._last_passed.get(probe)
        self._last_passed[probe] = result.passed
        if previous == result.passed or (previous is None and result.passed):
            return
        if result.passed:
            logger.info("probe passing", probe=probe)
        elif probe == "liveness":
            logger.error("probe failing", probe=probe, reason=result.reason)
        else:
            logger.info("probe failing", probe=probe, reason=result.reason)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.application(), handle_signals=False, access_log=None)
        try:
            loop.run_until_complete(self._listen(runner))
        except OSError as error:
            self._error = error
            self._bound.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._loop = loop
        self._bound.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _listen(self, runner: web.AppRunner) -> None:
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        # With port 0 the system picks a free port; tests read it from here.
        self.port = int(runner.addresses[0][1])
