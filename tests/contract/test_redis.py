"""The rendered Redis command, REDIS_URL and readiness probe against a real redis-server.

The server runs the container's own `sh -c` command line with REDIS_PASSWORD in its
environment, as the pod does, changed only to run on a local port and directory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apiservice_operator.render import child_names, redis_url
from tests.contract.programs import RedisRunner
from tests.contract.servers import LOCALHOST, free_port
from tests.contract.stack import (
    ESCAPING_PASSWORDS,
    Example,
    RenderedStack,
    example_params,
    load_examples,
    render_stack,
)

MANAGED_REDIS_EXAMPLES = example_params(lambda spec: spec.redis.managed is not None)
PROBE_TIMEOUT = 10.0
CLIENT_TIMEOUT = 5.0
# The port of the redis Service, which the rendered REDIS_URL names.
SERVICE_PORT = 6379


def local_redis_command(
    command: list[str], *, data_mount: str, data_dir: Path, port: int, extra_args: str = ""
) -> list[str]:
    """Adapt the rendered `sh -c` command of the Redis container to a local server.

    The `--dir` of the data volume's mount path becomes `data_dir`, and `--port <port> --bind
    127.0.0.1` plus `extra_args` go at the end, where redis-server lets them override earlier
    options. Everything else, including the shell's expansion of "$REDIS_PASSWORD", runs as
    rendered. Raises AssertionError when the command is not `sh -c` with exactly one
    `--dir <data_mount>`, because the substitution would then run something else.
    """
    assert command[:2] == ["sh", "-c"], f"expected an sh -c command, got {command}"
    assert len(command) == 3, f"expected one script after sh -c, got {command}"
    script = command[2]
    dir_option = re.compile(rf"--dir {re.escape(data_mount)}(?=\s|$)")
    matches = dir_option.findall(script)
    assert len(matches) == 1, f"expected one '--dir {data_mount}' in {script!r}"
    local_script = dir_option.sub(lambda _: f"--dir {shlex.quote(str(data_dir))}", script)
    return ["sh", "-c", f"{local_script} --port {port} --bind {LOCALHOST} {extra_args}".rstrip()]


def local_ping_command(command: list[str], *, port: int) -> list[str]:
    """Add `-p <port>` to the redis-cli call of the rendered `sh -c` readiness command.

    The rendered command uses redis-cli's default host, 127.0.0.1, and port, 6379. Raises
    AssertionError when the script does not call redis-cli exactly once.
    """
    assert command[:2] == ["sh", "-c"], f"expected an sh -c command, got {command}"
    script = command[2]
    assert script.count("redis-cli ") == 1, f"expected one redis-cli call in {script!r}"
    return ["sh", "-c", script.replace("redis-cli ", f"redis-cli -p {port} ", 1)]


def redis_container(stack: RenderedStack) -> dict[str, Any]:
    """Return the container of the rendered redis Deployment."""
    return stack.container(child_names(stack.example.name).redis)


def data_mount_path(container: dict[str, Any]) -> str:
    """Return where the container mounts its data volume."""
    mounts = [mount for mount in container["volumeMounts"] if mount["name"] == "data"]
    assert len(mounts) == 1, f"expected one data volume mount, got {container['volumeMounts']}"
    return str(mounts[0]["mountPath"])


def local_url(rendered_url: str, port: int) -> str:
    """Replace the host and port of a redis:// URL with 127.0.0.1 and `port`.

    The URL itself is changed because redis-py's from_url lets the URL's host and port win
    over keyword arguments. The user, password and database stay as rendered.
    """
    parts = urlsplit(rendered_url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{LOCALHOST}:{port}"))


def client_for(url: str) -> redis.Redis:
    """Return a redis-py client of `url` with bounded socket timeouts and no retries."""
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=CLIENT_TIMEOUT,
        socket_connect_timeout=CLIENT_TIMEOUT,
        retry=Retry(NoBackoff(), retries=0),
    )
    return client


def start_rendered_redis(
    runner: RedisRunner,
    stack: RenderedStack,
    *,
    password: str,
    port: int,
    data_dir: Path | None = None,
    extra_args: str = "",
) -> Path:
    """Start the stack's rendered Redis command on `port` and return its data directory."""
    container = redis_container(stack)
    directory = data_dir if data_dir is not None else runner.new_directory()
    command = local_redis_command(
        container["command"],
        data_mount=data_mount_path(container),
        data_dir=directory,
        port=port,
        extra_args=extra_args,
    )
    runner.start(command, password=password, directory=directory, port=port)
    return directory


@pytest.mark.parametrize("example", MANAGED_REDIS_EXAMPLES)
def test_rendered_command_persists_and_requires_password(example: Example) -> None:
    container = redis_container(render_stack(example))
    script = container["command"][2]

    assert container["command"][:2] == ["sh", "-c"]
    assert "--appendonly yes" in script
    assert '--requirepass "$REDIS_PASSWORD"' in script
    # The append-only file must land on the data volume, or a new pod starts empty.
    assert f"--dir {data_mount_path(container)}" in script


@pytest.mark.parametrize("example", MANAGED_REDIS_EXAMPLES)
def test_redis_url_connects(example: Example, redis_runner: RedisRunner) -> None:
    stack = render_stack(example)
    env = stack.env(child_names(example.name).redis)
    port = free_port()
    start_rendered_redis(redis_runner, stack, password=env["REDIS_PASSWORD"], port=port)
    rendered = stack.secret_value("REDIS_URL")

    client = client_for(local_url(rendered, port))
    try:
        client.set("contract:key", "value")
        stored = client.get("contract:key")
    finally:
        client.close()

    parts = urlsplit(rendered)
    assert parts.scheme == "redis"
    assert parts.hostname == child_names(example.name).redis
    assert parts.port == SERVICE_PORT
    assert stored == b"value"


@pytest.mark.parametrize("example", MANAGED_REDIS_EXAMPLES)
def test_redis_url_with_wrong_password_fails(example: Example, redis_runner: RedisRunner) -> None:
    stack = render_stack(example)
    port = free_port()
    password = stack.env(child_names(example.name).redis)["REDIS_PASSWORD"]
    start_rendered_redis(redis_runner, stack, password=password, port=port)
    wrong_password_client = client_for(
        redis_url(password=f"not-the-{password}", host=LOCALHOST, port=port)
    )
    no_password_client = client_for(f"redis://{LOCALHOST}:{port}/0")

    try:
        with pytest.raises(redis.AuthenticationError):
            wrong_password_client.ping()
        with pytest.raises(redis.AuthenticationError):
            no_password_client.ping()
    finally:
        wrong_password_client.close()
        no_password_client.close()


@pytest.mark.parametrize("example", MANAGED_REDIS_EXAMPLES)
def test_key_survives_restart(example: Example, redis_runner: RedisRunner) -> None:
    # --save "" turns off RDB snapshots, which Redis would otherwise write at shutdown, so only
    # the append-only file can carry the key across the restart.
    stack = render_stack(example)
    password = stack.env(child_names(example.name).redis)["REDIS_PASSWORD"]
    port = free_port()
    url = local_url(stack.secret_value("REDIS_URL"), port)
    data_dir = start_rendered_redis(
        redis_runner, stack, password=password, port=port, extra_args="--save ''"
    )
    client = client_for(url)
    try:
        client.set("contract:persisted", "before-restart")
    finally:
        client.close()

    exit_code = redis_runner.stop_last()
    start_rendered_redis(
        redis_runner, stack, password=password, port=port, data_dir=data_dir, extra_args="--save ''"
    )
    client = client_for(url)
    try:
        restored = client.get("contract:persisted")
    finally:
        client.close()

    assert exit_code == 0, "redis-server did not shut down cleanly on SIGTERM"
    assert restored == b"before-restart"


def run_readiness_probe(
    stack: RenderedStack, *, password: str, port: int
) -> subprocess.CompletedProcess[str]:
    """Run the redis Deployment's readiness command against `port` with REDIS_PASSWORD set."""
    probe = redis_container(stack)["readinessProbe"]
    return subprocess.run(
        local_ping_command(probe["exec"]["command"], port=port),
        capture_output=True,
        text=True,
        env={**os.environ, "REDIS_PASSWORD": password},
        timeout=PROBE_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("example", MANAGED_REDIS_EXAMPLES)
def test_readiness_probe(example: Example, redis_runner: RedisRunner) -> None:
    stack = render_stack(example)
    password = stack.env(child_names(example.name).redis)["REDIS_PASSWORD"]
    port = free_port()
    start_rendered_redis(redis_runner, stack, password=password, port=port)

    ready = run_readiness_probe(stack, password=password, port=port)
    # redis-cli exits with 0 after an authentication error too, so only the grep for PONG
    # can fail this probe.
    wrong_password = run_readiness_probe(stack, password="not-" + password, port=port)

    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert wrong_password.returncode != 0, wrong_password.stdout + wrong_password.stderr


@pytest.mark.parametrize("password", ESCAPING_PASSWORDS)
def test_escaped_password_connects(password: str, redis_runner: RedisRunner) -> None:
    # The rendered command of the first example with managed Redis, started with this password,
    # so that the shell's expansion of "$REDIS_PASSWORD" is checked too. An external server
    # whose user supplies such a URL is reached the same way.
    example = next(example for example in load_examples() if example.spec().redis.managed)
    stack = render_stack(example)
    port = free_port()
    start_rendered_redis(redis_runner, stack, password=password, port=port)
    url = redis_url(password=password, host=LOCALHOST, port=port)

    client = client_for(url)
    try:
        answered = client.ping()
    finally:
        client.close()

    assert answered is True
