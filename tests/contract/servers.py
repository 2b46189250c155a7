"""Local server processes for the contract tests: found, started, waited for and stopped.

Every server listens on 127.0.0.1 on a free port, keeps its files in a temporary directory of its
own and runs in its own session, so that teardown can kill it and every child it forked. When the
tests run as root, the servers run as an unprivileged user instead, as they do in their
containers: PostgreSQL refuses to start as root, and nginx as root would hide file permission
errors that the non-root edge container would hit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 30
INSTALL_HINT = "run `make contract-deps`, which installs it from Debian's packages"


class ServerStartError(AssertionError):
    """Failure of a server to start or to become ready in time, with the end of its log."""


def find_program(name: str, *, package: str, extra_dirs: Sequence[str] = ()) -> str:
    """Return the path of an installed program, or skip the test when it is missing.

    `extra_dirs` are searched after PATH, for programs that Debian installs outside of a
    non-root user's PATH, such as /usr/sbin/nginx.
    """
    path = shutil.which(name)
    if path is None:
        for directory in extra_dirs:
            candidate = Path(directory) / name
            if os.access(candidate, os.X_OK):
                path = str(candidate)
                break
    if path is None:
        pytest.skip(f"{name} is missing (Debian package {package}): {INSTALL_HINT}")
    return path


def postgres_bin_dir() -> Path:
    """Return the directory of initdb, postgres and pg_isready, or skip the test without them.

    Debian keeps the server programs under /usr/lib/postgresql/<major>/bin, off PATH, so that
    several major versions can be installed together. The newest one is used.
    """
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        pytest.skip(f"PostgreSQL's initdb is missing (Debian package postgresql): {INSTALL_HINT}")
    newest = max(candidates, key=lambda path: _major_version(Path(path).parents[1].name))
    return Path(newest).parent


def _major_version(name: str) -> int:
    return int(name) if name.isdigit() else -1


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that no socket is bound to right now.

    NOTE: another process may take the port between this call and the server's bind. The
    server then fails to start, and the error shows its log.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ServerUser:
    """Account that a server process runs as: `name` when the tests run as root, else ours."""

    name: str | None
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        """Return the subprocess options that switch a child process to this account."""
        if self.name is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_user(unprivileged_name: str) -> ServerUser:
    """Return the account for a server: `unprivileged_name` as root, else the current user.

    Raises ServerStartError when running as root and the account does not exist.
    """
    if os.geteuid() != 0:
        return ServerUser(name=None, uid=os.geteuid(), gid=os.getegid())
    try:
        entry = pwd.getpwnam(unprivileged_name)
    except KeyError as error:
        raise ServerStartError(
            f"user {unprivileged_name!r} not found: the tests run as root, and the server must "
            f"run as an unprivileged user; create it with `useradd --system {unprivileged_name}`"
        ) from error
    return ServerUser(name=unprivileged_name, uid=entry.pw_uid, gid=entry.pw_gid)


@contextlib.contextmanager
def server_directory(prefix: str, user: ServerUser) -> Iterator[Path]:
    """Create a private temporary directory owned by `user`, and remove it afterwards.

    It lives directly in the system temporary directory rather than under pytest's tmp_path,
    because pytest makes its base directory readable by the current user only, so a server
    running as another user could not reach anything inside.
    """
    directory = Path(tempfile.mkdtemp(prefix=f"apiservice-contract-{prefix}-"))
    try:
        os.chown(directory, user.uid, user.gid)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def give_to(user: ServerUser, *paths: Path) -> None:
    """Make `user` the owner of files that the tests created for its server."""
    for path in paths:
        os.chown(path, user.uid, user.gid)


@dataclass
class ServerProcess:
    """A running server, its log file and how it shuts down."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals
    _log_file: Any = field(repr=False)

    @property
    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last `lines` lines of the server's combined stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(log {self.log_path} unreadable: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Send the stop signal, wait up to `timeout` seconds, then kill the process group.

        Returns the exit code. Killing the group also ends the children a server forked, such
        as nginx's workers and PostgreSQL's backends. Stopping a stopped server does nothing.
        """
        if self._log_file.closed:
            return int(self.process.returncode)
        if self.running:
            self.process.send_signal(self.stop_signal)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        # The group outlives its leader when a child is still running, so it is killed even
        # after the leader exited. Its id is the leader's pid, which start_new_session set.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if code is None:
            code = self.process.wait(timeout=timeout)
        self._log_file.close()
        return code


def start_server(
    name: str,
    command: Sequence[str],
    *,
    user: ServerUser,
    directory: Path,
    env: Mapping[str, str] | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> ServerProcess:
    """Start `command` in its own session with its output in a log file under `directory`.

    `env` is added to the current environment, with HOME set to `directory`. The caller must
    stop the server, normally through a fixture's teardown.
    """
    log_path = directory / f"{name}.log"
    log_file = log_path.open("ab")
    give_to(user, log_path)
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env={**os.environ, "HOME": str(directory), **(env or {})},
        start_new_session=True,
        **user.popen_options(),
    )
    return ServerProcess(
        name=name,
        process=process,
        log_path=log_path,
        stop_signal=stop_signal,
        _log_file=log_file,
    )


def wait_until_ready(
    server: ServerProcess,
    probe: Callable[[], bool],
    *,
    description: str,
    timeout: float = START_TIMEOUT,
) -> None:
    """Call `probe` until it returns True, failing at once when the server exits.

    An exception from `probe` counts as not ready yet. Raises ServerStartError with the end of
    the server's log when the server exits or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if not server.running:
            raise ServerStartError(
                f"{server.name} exited with code {server.process.returncode} before "
                f"{description}; its log ends with:\n{server.log_tail()}"
            )
        try:
            if probe():
                return
        except Exception as error:  # Any failure of the probe means "not ready yet".
            last = error
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"timed out after {timeout}s waiting for {description}, last error: {last!r}. "
                f"{server.name}'s log ends with:\n{server.log_tail()}"
            )
        time.sleep(POLL_INTERVAL)


def accepts_connections(port: int, host: str = LOCALHOST) -> bool:
    """Tell whether a TCP connection to host:port succeeds."""
    with socket.create_connection((host, port), timeout=1.0):
        return True


def run_checked(
    command: Sequence[str],
    *,
    user: ServerUser,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a setup command as `user`, raising ServerStartError with its output on failure."""
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd), **(env or {})},
        timeout=timeout,
        check=False,
        **user.popen_options(),
    )
    if result.returncode != 0:
        raise ServerStartError(
            f"{' '.join(command)} failed with code {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result
