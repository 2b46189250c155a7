"""Run the operator as a real process against the test cluster, as `make run` does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cluster import ROOT, Cluster
from tests.support.waiting import wait_for

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    """One operator process; its JSON logs go to a file that tests can read."""

    cluster: Cluster
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    # More command line options, such as ("--log-level", "DEBUG").
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the operator and wait until /readyz reports the initial listing complete."""
        self.launch()
        wait_for(self.ready, timeout=STARTUP_TIMEOUT, description="the operator's /readyz")

    def launch(self) -> None:
        """Start the operator process without waiting for it."""
        env = {**self.cluster.env, "PYTHONPATH": str(ROOT / "operator")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apiservice_operator",
                "--log-format",
                "json",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(self.health_port),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def healthy(self) -> bool:
        """Tell whether the liveness endpoint returns 200; a dead process fails the wait."""
        return self.probe("/healthz")[0] == 200

    def ready(self) -> bool:
        """Tell whether the readiness endpoint returns 200; a dead process fails the wait."""
        return self.probe("/readyz")[0] == 200

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """Return the status code and JSON body of a health endpoint, failures included."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}; log:\n{self.logs()[-3000:]}"
            )
        url = f"http://127.0.0.1:{self.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), json.loads(error.read())

    def metrics(self) -> str:
        """Return the text of the /metrics endpoint."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self, *, kill: bool = False) -> None:
        """Stop the operator: SIGTERM and a graceful exit, or SIGKILL as a crash would."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop the operator gracefully and start a new process with the same ports."""
        self.stop()
        self.start()

    def logs(self) -> str:
        """Return everything the operator has logged so far."""
        return self.log_path.read_text(errors="replace")
