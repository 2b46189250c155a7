"""The liveness and readiness checks, their HTTP server, and the watch-request tracing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml
from aiohttp import web

from apiservice_operator.observability.health import HealthMonitor, HealthServer
from apiservice_operator.observability.watches import (
    WatchTracker,
    login_with_watch_tracking,
    traced_session,
)
from tests.support.waiting import async_wait_for, wait_for


class FakeClock:
    """A monotonic clock that advances only when a test changes `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_with_client_timeout(seconds: float | None) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.client_timeout = seconds
    return settings


def get(url: str) -> tuple[int, dict[str, Any]]:
    """Send a GET request and return the status code and the JSON body, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def monitor(clock: FakeClock) -> HealthMonitor:
    return HealthMonitor(
        settings=settings_with_client_timeout(330),
        watches=WatchTracker(clock=clock),
        clock=clock,
    )


@pytest.fixture
def server(monitor: HealthMonitor) -> Iterator[HealthServer]:
    server = HealthServer(monitor, "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Readiness.


def test_readiness_waits_for_startup(monitor: HealthMonitor) -> None:
    result = monitor.readiness()

    assert not result.passed
    assert "startup" in result.reason


def test_readiness_waits_for_listing(monitor: HealthMonitor) -> None:
    monitor.started.set()

    result = monitor.readiness()

    assert not result.passed
    assert "initial listing" in result.reason


def test_readiness_passes_after_both(monitor: HealthMonitor) -> None:
    monitor.started.set()
    monitor.mark_indexed()

    result = monitor.readiness()

    assert result.passed
    assert result.reason == ""


# Liveness.


def test_liveness_passes_before_any_watch(monitor: HealthMonitor) -> None:
    result = monitor.liveness()

    assert result.passed
    assert result.details["watch_streams"] == 0


def test_liveness_fails_on_blocked_loop(monitor: HealthMonitor, clock: FakeClock) -> None:
    monitor.last_beat = clock.now
    clock.now += monitor.loop_stall_limit - 0.5
    assert monitor.liveness().passed

    clock.now += 1.0
    result = monitor.liveness()

    assert not result.passed
    assert "event loop" in result.reason


def test_liveness_fails_on_stalled_watch(monitor: HealthMonitor, clock: FakeClock) -> None:
    monitor.watches.record("/api/v1/secrets", watch=True)
    monitor.watches.record("/apis/apps/v1/deployments", watch=True)
    clock.now += 600
    monitor.watches.record("/apis/apps/v1/deployments", watch=True)
    clock.now += 59
    assert monitor.liveness().passed

    clock.now += 2
    result = monitor.liveness()

    assert not result.passed
    assert "/api/v1/secrets" in result.reason
    assert "deployments" not in result.reason
    assert result.details["watch_stall_limit_seconds"] == 660


def test_stall_limit_without_timeouts(monitor: HealthMonitor) -> None:
    monitor.settings = settings_with_client_timeout(None)

    assert monitor.watch_stall_limit() == 7200


def test_list_request_refreshes_watched_stream(clock: FakeClock) -> None:
    tracker = WatchTracker(clock=clock)
    tracker.record("/api/v1/secrets", watch=True)
    clock.now += 100

    tracker.record("/api/v1/secrets", watch=False)
    tracker.record("/apis/apps/v1", watch=False)

    assert tracker.ages() == {"/api/v1/secrets": 0.0}


# The HTTP server.


def test_healthz_answers_ok(server: HealthServer) -> None:
    status, body = get(f"http://127.0.0.1:{server.port}/healthz")

    assert status == 200
    assert body["status"] == "ok"


def test_healthz_answers_500_with_reason(
    server: HealthServer, monitor: HealthMonitor, clock: FakeClock
) -> None:
    monitor.watches.record("/api/v1/configmaps", watch=True)
    clock.now += 1000

    status, body = get(f"http://127.0.0.1:{server.port}/healthz")

    assert status == 500
    assert body["status"] == "failing"
    assert "/api/v1/configmaps" in body["reason"]


def test_readyz_turns_ready(server: HealthServer, monitor: HealthMonitor) -> None:
    url = f"http://127.0.0.1:{server.port}/readyz"
    before_status, before = get(url)
    monitor.started.set()
    monitor.mark_indexed()
    after_status, after = get(url)

    assert before_status == 503
    assert before["status"] == "not ready"
    assert before["reason"]
    assert after_status == 200
    assert after["status"] == "ready"


def test_busy_port_raises() -> None:
    first = HealthServer(HealthMonitor(), "127.0.0.1", 0)
    first.start()
    try:
        second = HealthServer(HealthMonitor(), "127.0.0.1", first.port)
        with pytest.raises(OSError, match="address already in use"):
            second.start()
    finally:
        first.stop()


async def test_healthz_fails_while_loop_blocked() -> None:
    # A real clock and a real event loop: the server thread must respond while this loop sleeps.
    monitor = HealthMonitor(loop_stall_limit=0.3, heartbeat_interval=0.02)
    server = HealthServer(monitor, "127.0.0.1", 0)
    server.start()
    heartbeat = asyncio.create_task(monitor.run_heartbeat())
    url = f"http://127.0.0.1:{server.port}/healthz"
    seen_during_block: list[object] = []

    def probe_until_failing() -> None:
        try:
            wait_for(lambda: get(url)[0] == 500, timeout=2.0, description="/healthz 500")
            seen_during_block.append(500)
        except AssertionError as error:
            seen_during_block.append(error)

    try:
        await asyncio.sleep(0)  # Lets the heartbeat task note its first beat.
        assert get(url)[0] == 200
        prober = threading.Thread(target=probe_until_failing)
        prober.start()
        time.sleep(2.5)  # noqa: ASYNC251 - blocking the event loop is the condition under test
        prober.join()
        recovered = await async_wait_for(
            lambda: asyncio.to_thread(lambda: get(url)[0] == 200),
            timeout=2.0,
            description="/healthz 200 after the block",
        )
    finally:
        heartbeat.cancel()
        server.stop()

    assert seen_during_block == [500]
    assert recovered


# Watch-request tracing in Kopf's session.


@pytest.fixture
async def api_stub() -> AsyncIterator[str]:
    """Serve empty JSON lists on 127.0.0.1, standing in for the API server's collections."""

    async def collection(_: web.Request) -> web.Response:
        return web.json_response({"items": []})

    app = web.Application()
    app.add_routes([web.get("/{path:.*}", collection)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_traced_session_records_watches(api_stub: str) -> None:
    tracker = WatchTracker()
    session = traced_session(kopf.ConnectionInfo(server=api_stub), tracker)
    try:
        for query in ("", "?watch=true&timeoutSeconds=300"):
            async with session.get(f"{api_stub}/apis/apps/v1/deployments{query}") as response:
                assert response.status == 200
        async with session.get(f"{api_stub}/apis/apps/v1") as response:
            assert response.status == 200
    finally:
        await session.close()

    assert set(tracker.ages()) == {"/apis/apps/v1/deployments"}


async def test_login_returns_traced_session(
    api_stub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "stub",
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
                "clusters": [{"name": "stub", "cluster": {"server": api_stub}}],
                "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    result = await login_with_watch_tracking(settings=kopf.OperatorSettings(), logger=None)

    assert isinstance(result, kopf.AiohttpSession)
    session = result.aiohttp_session
    try:
        assert result.server == api_stub
        assert session.headers["Authorization"] == "Bearer stub-token"
        assert len(session.trace_configs) == 1
        assert isinstance(session.trace_configs[0], aiohttp.TraceConfig)
    finally:
        await session.close()
