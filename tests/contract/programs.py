"""The three programs under contract test: nginx, PostgreSQL and Redis, run on 127.0.0.1.

Each server gets a free port and a temporary directory of its own. When the tests run as root,
the servers run as an unprivileged account, as they do in their containers.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.contract.servers import (
    LOCALHOST,
    START_TIMEOUT,
    ServerProcess,
    ServerUser,
    accepts_connections,
    free_port,
    give_to,
    postgres_bin_dir,
    run_checked,
    server_directory,
    server_user,
    start_server,
    wait_until_ready,
)

# Unprivileged accounts for the servers when the tests run as root. Debian's postgresql package
# creates `postgres`, and `nobody` exists on every Debian system.
POSTGRES_ACCOUNT = "postgres"
NGINX_ACCOUNT = "nobody"
REDIS_ACCOUNT = "nobody"
# The superuser that initdb creates, which sets up the roles that the tests log in as.
POSTGRES_ADMIN = "contract_admin"

# Renders nginx.conf from the server's temporary directory and its `listen` address.
RenderConf = Callable[[Path, str], str]


@dataclass(frozen=True)
class RunningNginx:
    """An nginx server started from a rendered nginx.conf."""

    port: int
    server: ServerProcess


class NginxRunner:
    """Tests and starts nginx configurations, each in a directory of its own."""

    def __init__(self, program: str, user: ServerUser) -> None:
        self._program = program
        self._user = user
        self._servers: list[ServerProcess] = []
        self._directories = contextlib.ExitStack()

    def check_config(self, render_conf: RenderConf) -> tuple[int, str]:
        """Run `nginx -t` on a rendered configuration and return its exit code and output."""
        directory, conf_path = self._write_conf(render_conf, listen=f"{LOCALHOST}:{free_port()}")
        # The output goes to a file that the server's user owns, as in start(), because nginx
        # reopens /dev/stdout for its access log, and an unprivileged user may not reopen a
        # pipe that root created.
        log_path = directory / "nginx-test.log"
        with log_path.open("wb") as log_file:
            give_to(self._user, log_path)
            result = subprocess.run(
                [*self._base_command(directory, conf_path), "-t"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=directory,
                timeout=START_TIMEOUT,
                check=False,
                **self._user.popen_options(),
            )
        return result.returncode, log_path.read_text(errors="replace")

    def start(self, render_conf: RenderConf) -> RunningNginx:
        """Start nginx in the foreground, as the edge container does, and wait for its port."""
        port = free_port()
        directory, conf_path = self._write_conf(render_conf, listen=f"{LOCALHOST}:{port}")
        server = start_server(
            "nginx",
            [*self._base_command(directory, conf_path), "-g", "daemon off;"],
            user=self._user,
            directory=directory,
            # SIGTERM is nginx's fast shutdown, the signal the kubelet sends first.
            stop_signal=signal.SIGTERM,
        )
        self._servers.append(server)
        wait_until_ready(
            server,
            lambda: accepts_connections(port),
            description=f"nginx to listen on {LOCALHOST}:{port}",
        )
        return RunningNginx(port=port, server=server)

    def stop_all(self) -> None:
        """Stop every started server and remove every directory."""
        for server in self._servers:
            server.stop()
        self._directories.close()

    def _write_conf(self, render_conf: RenderConf, *, listen: str) -> tuple[Path, Path]:
        directory = self._directories.enter_context(server_directory("nginx", self._user))
        conf_path = directory / "nginx.conf"
        conf_path.write_text(render_conf(directory, listen))
        give_to(self._user, conf_path)
        return directory, conf_path

    def _base_command(self, directory: Path, conf_path: Path) -> list[str]:
        # -e stderr keeps nginx from opening its compiled-in error log under /var/log before it
        # reads the configuration, which fails for an unprivileged user.
        return [self._program, "-e", "stderr", "-p", f"{directory}/", "-c", str(conf_path)]


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 that accepts only SCRAM passwords over TCP.

    The admin role connects through the Unix socket without a password to create the roles
    and databases that the tests connect to.
    """

    port: int
    socket_dir: Path
    bin_dir: Path

    def admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """Connect as the superuser through the Unix socket, in autocommit mode."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=POSTGRES_ADMIN,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def create_login(self, *, user: str, password: str, database: str) -> None:
        """Create or update a login role with `password` and a database that it owns."""
        with self.admin_connection() as connection:
            role_exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)
            ).fetchone()
            verb = "ALTER" if role_exists else "CREATE"
            # Utility statements take no bind parameters, so psycopg quotes the password into
            # the statement text on the client side.
            connection.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(user), sql.Literal(password)
                )
            )
            database_exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not database_exists:
                connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(user)
                    )
                )


def _pg_hba() -> str:
    # The admin uses the socket without a password. Every TCP client must authenticate with
    # SCRAM, so a wrong password fails as it does against the postgres image.
    lines = [
        f"local all {POSTGRES_ADMIN} trust",
        f"host all all {LOCALHOST}/32 scram-sha-256",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Initialize a fresh data directory, start PostgreSQL on it and stop it afterwards."""
    bin_dir = postgres_bin_dir()
    user = server_user(POSTGRES_ACCOUNT)
    with server_directory("postgres", user) as directory:
        server, port = _start_postgres(bin_dir, user, directory)
        try:
            postgres = PostgresServer(port=port, socket_dir=directory, bin_dir=bin_dir)

            def answers_queries() -> bool:
                with postgres.admin_connection() as connection:
                    return connection.execute("SELECT 1").fetchone() == (1,)

            wait_until_ready(server, answers_queries, description="PostgreSQL to answer queries")
            yield postgres
        finally:
            server.stop()


def _start_postgres(bin_dir: Path, user: ServerUser, directory: Path) -> tuple[ServerProcess, int]:
    data_dir = directory / "data"
    run_checked(
        [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            POSTGRES_ADMIN,
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            # The data is thrown away after the session, so it need not reach the disk.
            "--no-sync",
            "--no-instructions",
        ],
        user=user,
        cwd=directory,
    )
    (data_dir / "pg_hba.conf").write_text(_pg_hba())
    port = free_port()
    server = start_server(
        "postgres",
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-c",
            f"listen_addresses={LOCALHOST}",
            "-c",
            f"port={port}",
            "-c",
            f"unix_socket_directories={directory}",
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            "fsync=off",
        ],
        user=user,
        directory=directory,
        # SIGINT is PostgreSQL's fast shutdown: it ends the sessions and writes a checkpoint.
        stop_signal=signal.SIGINT,
    )
    return server, port


class RedisRunner:
    """Starts Redis servers and stops all of them at the end of the test."""

    def __init__(self, user: ServerUser) -> None:
        self.user = user
        self.servers: list[ServerProcess] = []
        self._directories = contextlib.ExitStack()

    def new_directory(self) -> Path:
        """Create an empty data directory that the server's user owns."""
        return self._directories.enter_context(server_directory("redis", self.user))

    def start(self, command: list[str], *, password: str, directory: Path, port: int) -> None:
        """Start `command` with REDIS_PASSWORD in its environment and wait until it responds.

        The server counts as ready once it responds to a command, even with an authentication
        error, so that a password that the command mangled fails in the test, not here.
        """
        server = start_server(
            "redis",
            command,
            user=self.user,
            directory=directory,
            env={"REDIS_PASSWORD": password},
            # SIGTERM, the kubelet's first stop signal, makes Redis flush the append-only file
            # and exit.
            stop_signal=signal.SIGTERM,
        )
        self.servers.append(server)
        wait_until_ready(
            server,
            lambda: _answers_commands(port),
            description=f"Redis to respond on {LOCALHOST}:{port}",
        )

    def stop_last(self) -> int:
        """Stop the most recently started server and return its exit code."""
        return self.servers[-1].stop()

    def stop_all(self) -> None:
        """Stop every server and remove every data directory."""
        for server in self.servers:
            server.stop()
        self._directories.close()


def _answers_commands(port: int) -> bool:
    # No retries: redis-py retries a refused connection with backoff by default, which would
    # add seconds to every start, and wait_until_ready already polls.
    client = redis.Redis(
        host=LOCALHOST,
        port=port,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), retries=0),
    )
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return True
    finally:
        client.close()
