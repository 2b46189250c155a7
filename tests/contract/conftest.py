"""Fixtures of the contract tier: real nginx, PostgreSQL and Redis on 127.0.0.1.

Each server runs from Debian's packages on a free port with its files in a temporary directory,
and teardown stops it, killing its process group when it does not exit in time. A missing
program skips its tests with the package to install. `make contract-deps` installs them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.programs import (
    NGINX_ACCOUNT,
    REDIS_ACCOUNT,
    NginxRunner,
    PostgresServer,
    RedisRunner,
    running_postgres,
)
from tests.contract.servers import find_program, server_user
from tests.contract.upstream import UpstreamStub

CONTRACT_DIR = Path(__file__).resolve().parent
# Seconds one contract test may take, including the servers that its fixtures start.
TEST_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test under tests/contract/ runs real servers, so it carries the marker that selects
    # the tier, and a deadline well below the global one.
    for item in items:
        if item.path.is_relative_to(CONTRACT_DIR):
            item.add_marker(pytest.mark.contract)
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxRunner]:
    """Yield a runner of nginx configurations, which stops their servers after the module."""
    program = find_program("nginx", package="nginx", extra_dirs=["/usr/sbin"])
    runner = NginxRunner(program, server_user(NGINX_ACCOUNT))
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamStub]:
    """Yield the stub api that the edge proxy forwards to."""
    stub = UpstreamStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Yield a PostgreSQL server from a fresh data directory, shared by the session."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def redis_runner() -> Iterator[RedisRunner]:
    """Yield a starter of Redis servers, which stops them when the test ends."""
    find_program("redis-server", package="redis-server")
    find_program("redis-cli", package="redis-tools")
    runner = RedisRunner(server_user(REDIS_ACCOUNT))
    try:
        yield runner
    finally:
        runner.stop_all()
