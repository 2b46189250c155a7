"""The rendered DATABASE_URL and readiness probe against a real PostgreSQL server.

The server plays the managed postgres container: it has the role and database that the
Deployment's environment names, with the password from the credentials Secret, and accepts
only SCRAM passwords over TCP.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from apiservice_operator.render import child_names, database_url
from tests.contract.programs import PostgresServer
from tests.contract.servers import LOCALHOST, free_port, postgres_bin_dir
from tests.contract.stack import (
    ESCAPING_PASSWORDS,
    Example,
    RenderedStack,
    example_params,
    render_stack,
)

MANAGED_POSTGRES_EXAMPLES = example_params(lambda spec: spec.postgres.managed is not None)
PROBE_TIMEOUT = 10.0
# The port of the postgres Service, which the rendered DATABASE_URL names.
SERVICE_PORT = 5432


def select_identity(url: URL) -> tuple[str, str]:
    """Connect through SQLAlchemy and return current_user and current_database()."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sqlalchemy.text("SELECT current_user, current_database()")
            ).one()
    finally:
        engine.dispose()
    return str(row[0]), str(row[1])


def local_url(rendered_url: str | URL, server: PostgresServer) -> URL:
    """Point a rendered URL at the local server and pick the psycopg (version 3) driver."""
    return make_url(rendered_url).set(
        host=LOCALHOST, port=server.port, drivername="postgresql+psycopg"
    )


def prepare_database(stack: RenderedStack, server: PostgresServer) -> dict[str, str]:
    """Create the role and database that the postgres Deployment's environment names.

    The postgres image's entrypoint does the same from POSTGRES_USER, POSTGRES_PASSWORD and
    POSTGRES_DB on its first start. Returns that environment.
    """
    env = stack.env(child_names(stack.example.name).postgres)
    server.create_login(
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"], database=env["POSTGRES_DB"]
    )
    return env


@pytest.mark.parametrize("example", MANAGED_POSTGRES_EXAMPLES)
def test_database_url_connects(example: Example, postgres_server: PostgresServer) -> None:
    stack = render_stack(example)
    env = prepare_database(stack, postgres_server)
    rendered = make_url(stack.secret_value("DATABASE_URL"))

    identity = select_identity(local_url(rendered, postgres_server))

    # The plain scheme, because every driver accepts it and the app picks its own driver.
    assert rendered.drivername == "postgresql"
    assert rendered.host == child_names(example.name).postgres
    assert rendered.port == SERVICE_PORT
    assert identity == (env["POSTGRES_USER"], env["POSTGRES_DB"])


@pytest.mark.parametrize("example", MANAGED_POSTGRES_EXAMPLES)
def test_database_url_with_wrong_password_fails(
    example: Example, postgres_server: PostgresServer
) -> None:
    stack = render_stack(example)
    prepare_database(stack, postgres_server)
    url = local_url(stack.secret_value("DATABASE_URL"), postgres_server)

    with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication failed"):
        select_identity(url.set(password="not-the-" + stack.credentials.postgres_password))


def run_readiness_probe(
    stack: RenderedStack, *, port: int, bin_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Run the postgres Deployment's readiness command with PGPORT set to `port`.

    The command names the host but not the port, so libpq reads the port from PGPORT.
    `bin_dir` comes first on PATH, so that `pg_isready` is the server's version.
    """
    probe = stack.container(child_names(stack.example.name).postgres)["readinessProbe"]
    return subprocess.run(
        probe["exec"]["command"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PGPORT": str(port),
        },
        timeout=PROBE_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("example", MANAGED_POSTGRES_EXAMPLES)
def test_readiness_probe_succeeds(example: Example, postgres_server: PostgresServer) -> None:
    stack = render_stack(example)
    env = prepare_database(stack, postgres_server)
    probe = stack.container(child_names(example.name).postgres)["readinessProbe"]

    result = run_readiness_probe(stack, port=postgres_server.port, bin_dir=postgres_server.bin_dir)

    command = probe["exec"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "pg_isready"
    assert options.get("-U") == env["POSTGRES_USER"]
    assert options.get("-d") == env["POSTGRES_DB"]
    assert options.get("-h") == LOCALHOST
    # A port in the command would override PGPORT, and the container's server uses the default.
    assert "-p" not in options
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("example", MANAGED_POSTGRES_EXAMPLES)
def test_readiness_probe_fails_without_server(example: Example) -> None:
    # Nothing listens on a free port, so pg_isready must report "no response" with code 2.
    result = run_readiness_probe(
        render_stack(example), port=free_port(), bin_dir=postgres_bin_dir()
    )

    assert result.returncode == 2, result.stdout + result.stderr


@pytest.mark.parametrize("password", ESCAPING_PASSWORDS)
def test_escaped_password_connects(password: str, postgres_server: PostgresServer) -> None:
    # An external server whose user supplies such a URL is reached the same way.
    user = "escaping_user"
    database = "escaping"
    postgres_server.create_login(user=user, password=password, database=database)
    url = database_url(
        user=user, password=password, host=LOCALHOST, port=postgres_server.port, database=database
    )

    via_sqlalchemy = select_identity(make_url(url).set(drivername="postgresql+psycopg"))
    with psycopg.connect(url, connect_timeout=5) as connection:
        via_libpq = connection.execute("SELECT current_user, current_database()").fetchone()

    assert via_sqlalchemy == (user, database)
    assert via_libpq == (user, database)
